/**
 * The seam between the HTTP server and inference engines. The server only ever sees `ServedModel`; an engine for
 * ordinary model folders (./engine.ts) and one for many LoRA adapters over one base implement it.
 */
export interface Prediction {
  label: string;
  scores: number[] /* probabilities aligned with labels */;
}
export interface ServedModel {
  readonly name: string;
  readonly version: number;
  readonly labels: readonly string[];
  predict(texts: readonly string[], opts?: { signal?: AbortSignal }): Promise<Prediction[]>;
  release(): Promise<void>;
}
