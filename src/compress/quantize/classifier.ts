/**
 * Quantizing a Tailor text classifier (a `models` Model with tokenizer and labels) end to end: calibration and eval
 * texts become feeds through the model's own tokenizer, the chosen quantizer runs on the ONNX graph, and the result
 * is a Tailor Model again whose parameter table describes the quantized graph (see `quantizedTailorModel`).
 */
import { ConfigError } from '../../errors.ts';
import { textFeeds } from '../../models/text.ts';
import { toOnnxModel, type Model, type Parameter } from '../../models/model.ts';
import { type Feeds, type ProviderSpec } from '../../runtime/session.ts';
import type { CalibrationMethod } from './calibrate.ts';
import type { ModulePattern } from './common.ts';
import { quantizeDynamic, type DynamicFormat, type QuantizeResult } from './dynamic.ts';
import { quantizeInt4 } from './int4.ts';
import { quantizationReport, type QuantizationReport } from './report.ts';
import { quantizeStatic } from './static.ts';

export type QuantizeMode = 'dynamic' | 'static' | 'int4';
export const QUANTIZE_MODES: readonly QuantizeMode[] = ['dynamic', 'static', 'int4'];

export interface ClassifierQuantizeOptions {
  mode: QuantizeMode;
  /** dynamic only (default 'matmul-integer'). */
  format?: DynamicFormat;
  /** static: domain texts to calibrate activation ranges on (required for static). */
  calibrationTexts?: readonly string[];
  calibrationMethod?: CalibrationMethod;
  percentile?: number;
  include?: readonly ModulePattern[];
  exclude?: readonly ModulePattern[];
  /** int4 (default 32). */
  blockSize?: number;
  /** int4: asymmetric blocks with stored zero points (default symmetric). */
  asymmetric?: boolean;
  /** int4: MatMulNBits accuracy_level (default 4). */
  accuracyLevel?: 0 | 1 | 2 | 3 | 4;
  /** Skip weights with fewer elements (default: 0; int4: 4096). */
  minWeightElements?: number;
  /** Store embedding tables as int8 (default true). */
  embeddings?: boolean;
  /** Labelled texts for accuracy before/after (label = index into the model's labels; -1 rows are ignored). */
  eval?: { texts: readonly string[]; labels: readonly number[] };
  /** Token sequence length (default 64). */
  maxLength?: number;
  /** Texts per calibration/eval batch (default 32). */
  batchSize?: number;
  /** Timed runs at batch 1 (default 30; 0 = no timing) and at the throughput batch (default 6). */
  iterations?: number;
  throughputIterations?: number;
  throughputBatchSize?: number;
  intraOpThreads?: number;
  /** Execution providers for the measurement sessions (default CPU). */
  providers?: ProviderSpec[];
}

export interface ClassifierQuantizeResult {
  model: Model;
  result: QuantizeResult;
  report: QuantizationReport;
}

/**
 * The Tailor model for a quantized graph: the source's tokenizer, labels and config, the quantizer's graph and
 * opsets, and a parameter table holding only the float tensors still in the graph (norms, biases, excluded layers),
 * all marked non-trainable — the int8/int4 tensors that replaced the weights are not parameters anyone can train.
 */
export function quantizedTailorModel(source: Model, result: QuantizeResult): Model {
  const graph = result.model.graph;
  const params = new Map<string, Parameter>();
  for (const [k, p] of source.params) {
    if (graph.initializers.has(p.initializer)) params.set(k, p.trainable ? { ...p, trainable: false } : p);
  }
  return { ...source, graph, params, opsets: result.model.opsetImports.map((o) => ({ ...o })) };
}

function batches(model: Model, texts: readonly string[], size: number, maxLength: number): Feeds[] {
  const out: Feeds[] = [];
  for (let i = 0; i < texts.length; i += size) out.push(textFeeds(model, texts.slice(i, i + size), { maxLength }));
  return out;
}

/** Quantizes a text classifier and measures it against the float model. The input model is not modified. */
export async function quantizeClassifier(
  source: Model,
  opts: ClassifierQuantizeOptions,
): Promise<ClassifierQuantizeResult> {
  if (!QUANTIZE_MODES.includes(opts.mode))
    throw new ConfigError(`unknown quantization mode '${String(opts.mode)}' (modes: ${QUANTIZE_MODES.join(', ')})`, {
      field: 'mode',
      value: String(opts.mode),
    });
  const maxLength = opts.maxLength ?? 64;
  const bs = opts.batchSize ?? 32;
  const fp32 = toOnnxModel(source);
  const select = {
    ...(opts.include?.length ? { include: opts.include } : {}),
    ...(opts.exclude?.length ? { exclude: opts.exclude } : {}),
    ...(opts.embeddings === false ? { embeddings: false } : {}),
    ...(opts.minWeightElements !== undefined ? { minWeightElements: opts.minWeightElements } : {}),
  };
  let result: QuantizeResult;
  if (opts.mode === 'dynamic') {
    result = quantizeDynamic(fp32, { ...select, ...(opts.format ? { format: opts.format } : {}) });
  } else if (opts.mode === 'int4') {
    result = quantizeInt4(fp32, {
      ...select,
      blockSize: opts.blockSize ?? 32,
      symmetric: !opts.asymmetric,
      ...(opts.accuracyLevel !== undefined ? { accuracyLevel: opts.accuracyLevel } : {}),
    });
  } else {
    const texts = opts.calibrationTexts ?? [];
    if (texts.length === 0)
      throw new ConfigError('static quantization needs calibration text (--calibration FILE)', {
        field: 'calibration',
      });
    result = await quantizeStatic(fp32, {
      ...select,
      calibration: batches(source, texts, bs, maxLength),
      method: opts.calibrationMethod ?? 'minmax',
      ...(opts.percentile !== undefined ? { percentile: opts.percentile } : {}),
    });
  }
  const evalSet =
    opts.eval && opts.eval.texts.length
      ? (() => {
          const keep = opts.eval.labels.map((_, i) => i).filter((i) => opts.eval!.labels[i] >= 0);
          return {
            batches: batches(
              source,
              keep.map((i) => opts.eval!.texts[i]),
              bs,
              maxLength,
            ),
            labels: keep.map((i) => opts.eval!.labels[i]),
            output: 'logits',
            ...(source.labels ? { labelNames: source.labels } : {}),
          };
        })()
      : undefined;
  const sample = opts.eval?.texts.length
    ? opts.eval.texts
    : opts.calibrationTexts?.length
      ? opts.calibrationTexts
      : ['hello'];
  const iterations = opts.iterations ?? 30;
  const report = await quantizationReport(fp32, result, {
    ...(evalSet && evalSet.labels.length ? { eval: evalSet } : {}),
    ...(!evalSet && opts.calibrationTexts?.length
      ? { probe: batches(source, opts.calibrationTexts.slice(0, bs), bs, maxLength) }
      : {}),
    ...(iterations > 0
      ? {
          feedsFor: (n: number) =>
            textFeeds(
              source,
              Array.from({ length: n }, (_, i) => sample[i % sample.length]),
              { maxLength },
            ),
        }
      : {}),
    iterations,
    throughputIterations: opts.throughputIterations ?? 6,
    throughputBatchSize: opts.throughputBatchSize ?? 32,
    ...(opts.intraOpThreads !== undefined ? { intraOpThreads: opts.intraOpThreads } : {}),
    ...(opts.providers ? { providers: opts.providers } : {}),
  });
  return { model: quantizedTailorModel(source, result), result, report };
}
