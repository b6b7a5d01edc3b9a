/** Seeded stratified train/validation split. */
import { ConfigError } from '../errors.ts';
import { createRng } from '../util/rng.ts';

export interface SplitOptions {
  /** Fraction of each class that goes to validation, in [0, 1). */
  fraction: number;
  seed: number | string;
}

/**
 * Splits per class so every class keeps its share in both parts. Each class with at least two examples
 * gets at least one validation and one train example (so no class is missing from either side); a class
 * with one example stays in train. Both outputs keep the input order, so the result reads like the source.
 */
export function stratifiedSplit<T extends { label: string }>(
  examples: T[],
  options: SplitOptions,
): { train: T[]; validation: T[] } {
  const { fraction } = options;
  if (!(fraction >= 0 && fraction < 1)) {
    throw new ConfigError(`validation fraction must be in [0, 1), got ${fraction}`, {
      field: 'validationFraction',
      value: String(fraction),
    });
  }
  const byLabel = new Map<string, number[]>();
  examples.forEach((e, i) => {
    const list = byLabel.get(e.label);
    if (list) list.push(i);
    else byLabel.set(e.label, [i]);
  });
  const rng = createRng(options.seed);
  const inValidation = new Uint8Array(examples.length);
  // Sorted label order makes the random draws independent of which class happened to appear first.
  for (const label of [...byLabel.keys()].sort()) {
    const idx = byLabel.get(label)!;
    const classRng = rng.fork();
    if (fraction === 0 || idx.length < 2) continue;
    const n = Math.min(idx.length - 1, Math.max(1, Math.round(idx.length * fraction)));
    const shuffled = classRng.shuffle([...idx]);
    for (let k = 0; k < n; k++) inValidation[shuffled[k]] = 1;
  }
  const train: T[] = [];
  const validation: T[] = [];
  examples.forEach((e, i) => (inValidation[i] ? validation : train).push(e));
  return { train, validation };
}
