/**
 * One error hierarchy for the whole library. Every error carries what a user needs to fix the problem
 * (file, line/field, node, expected vs found) in its message and in structured fields, so that the CLI can
 * print it and exit non-zero while library callers can branch on the class.
 */
export interface ErrorContext {
  /** File the problem was found in. */
  file?: string;
  /** 1-based line number in a text file. */
  line?: number;
  /** Column or field name. */
  field?: string;
  /** Graph node name. */
  node?: string;
  /** ONNX op type of the node. */
  op?: string;
  /** Offending value (stringified). */
  value?: string;
  /** Any additional machine-readable details. */
  details?: Record<string, unknown>;
}

export class TailorError extends Error {
  readonly context: ErrorContext;
  constructor(message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.context = context;
  }
}

/** Bad user data: CSV/JSONL/Parquet rows, labels, columns. */
export class DataError extends TailorError {}
/** A model file that cannot be read or is inconsistent (ONNX, safetensors, config.json, tokenizer). */
export class ModelFileError extends TailorError {}
/** A graph that is structurally wrong: unknown op, cycle, shape or dtype mismatch. */
export class GraphError extends TailorError {}
/** Shape/dtype inference found values that disagree. */
export class ShapeError extends GraphError {}
/** ONNX Runtime refused or failed to run something. */
export class RuntimeError extends TailorError {}
/** Training diverged or was misconfigured. */
export class TrainingError extends TailorError {}
/** Registry / artifact store inconsistency or bad request. */
export class RegistryError extends TailorError {}
/** Invalid option or argument given by the user (API or CLI). */
export class ConfigError extends TailorError {}
/** A model measured outside a budget it was held to (fairness limits, flip rates): the report says which and by how much. */
export class GateError extends TailorError {}
/** The job queue (Redis) is unreachable or refused a request, or a job is unknown. */
export class QueueError extends TailorError {}
