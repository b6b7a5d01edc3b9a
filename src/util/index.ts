/** Small shared pieces: the seeded random streams, the string hash, the table renderer. */
export { createRng, mulberry32, seedFromString, TrainRng, type Rng, type RngState } from './rng.ts';
export { fnv1a, seedFor } from './hash.ts';
export { renderTable, type Align } from './table.ts';
export { parseDuration, formatDuration } from './duration.ts';
