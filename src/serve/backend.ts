/**
 * What the HTTP layer serves: a model that turns texts into label probabilities. Implementations: a plain
 * per-model one for ordinary (merged or quantized) artifact folders, and `MultiAdapterEngine`'s models, whose
 * predictions go through one shared dynamic batcher with mixed-adapter batches over one base.
 */
import { TailorError } from '../errors.ts';

export interface Prediction {
  label: string;
  /** Probabilities aligned with the model's `labels`. */
  scores: number[];
}

export interface ServedModel {
  readonly name: string;
  readonly version: number;
  readonly labels: readonly string[];
  predict(texts: readonly string[], opts?: { signal?: AbortSignal }): Promise<Prediction[]>;
  release(): Promise<void>;
}

/**
 * The server cannot take the request now (its queue is full): the HTTP layer answers 503 with a `Retry-After` of
 * `retryAfterSeconds`. Nothing of the request was queued.
 */
export class ServerBusyError extends TailorError {
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterSeconds: number, context: TailorError['context'] = {}) {
    super(message, context);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** The model cannot serve (released, or its weights failed to load): 503 for this model only. */
export class ModelUnavailableError extends TailorError {}
