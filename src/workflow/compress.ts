/**
 * Compression workflows, one call each from a model reference to a registered, measured, smaller model (behind
 * `tailor quantize` and `tailor distill`): every input is checked before anything is written, the new classifier
 * folder is written atomically with its report, and the new version is registered with lineage to its source.
 */
import path from 'node:path';
import { distillTextClassifier } from '../compress/distill/index.ts';
import { quantizeClassifier } from '../compress/quantize/index.ts';
import { ConfigError } from '../errors.ts';
import { assertFreshOut, writeClassifier, writeFolderAtomic } from '../models/artifact.ts';
import { writeFileSynced } from '../onnx/io.ts';
import type { ProviderSpec } from '../runtime/session.ts';
import { loadSource, nameFromOut, profileText, readLabelled, readTexts, registerDerived } from './sources.ts';
import type { WorkflowProgress } from './tailor.ts';

export interface QuantizeModelOptions {
  model: string;
  mode: 'dynamic' | 'static' | 'int4';
  format?: 'matmul-integer' | 'dynamic-quantize-matmul';
  calibration?: string;
  calibrationMethod: 'minmax' | 'percentile' | 'entropy';
  calibrationSize: number;
  percentile?: number;
  include?: string[];
  exclude?: string[];
  blockSize: number;
  asymmetric?: boolean;
  minWeightElements?: number;
  accuracyLevel?: number;
  embeddings: boolean;
  eval?: string;
  textColumn: string;
  labelColumn: string;
  out: string;
  name?: string;
  alias?: string[];
  latencyIterations: number;
  /** Registry folder (default TAILOR_HOME or ./.tailor). */
  home?: string;
  providers?: ProviderSpec[];
  /** Also return ONNX Runtime's per-op profile of the new model at batch 1. */
  profile?: boolean;
  progress?: WorkflowProgress;
}

/** Quantizes a classifier (see the module comment); returns the report, where it was written and the new version. */
export async function quantizeModel(o: QuantizeModelOptions) {
  const progress = o.progress;
  const out = path.resolve(o.out);
  // Every input is checked before anything is written: out folder, flags, model, calibration and eval files.
  await assertFreshOut(out);
  if (o.mode === 'static' && !o.calibration)
    throw new ConfigError('--mode static needs --calibration FILE (domain text to calibrate activation ranges on)', {
      field: 'calibration',
    });
  if (o.mode !== 'static' && o.calibration)
    throw new ConfigError(`--calibration is for --mode static; --mode ${o.mode} needs no calibration`, {
      field: 'calibration',
    });
  if (o.format && o.mode !== 'dynamic')
    throw new ConfigError(`--format is for --mode dynamic, not ${o.mode}`, { field: 'format' });
  if (o.mode === 'int4' && (o.blockSize & (o.blockSize - 1)) !== 0)
    throw new ConfigError(`--block-size must be a power of two >= 16, got ${o.blockSize}`, {
      field: 'block-size',
      value: String(o.blockSize),
    });
  for (const [flag, list] of [
    ['include', o.include],
    ['exclude', o.exclude],
  ] as const) {
    for (const p of list ?? []) {
      try {
        new RegExp(p);
      } catch (e) {
        throw new ConfigError(`--${flag} '${p}' is not a regular expression: ${(e as Error).message}`, {
          field: flag,
          value: p,
        });
      }
    }
  }
  const src = await loadSource(o.model, o.home, '--model');
  const labels = src.info.labels;
  const calibrationTexts = o.calibration
    ? await readTexts(o.calibration, o.textColumn, 'calibration', o.calibrationSize)
    : undefined;
  const evalSet = o.eval ? await readLabelled(o.eval, o.textColumn, o.labelColumn, labels, 'eval') : undefined;
  progress?.log?.(
    `quantizing ${o.model} (${o.mode}${o.mode === 'static' ? `, ${o.calibrationMethod} calibration on ${calibrationTexts!.length} texts` : ''})`,
  );
  const {
    model: qModel,
    result,
    report,
  } = await quantizeClassifier(src.model, {
    mode: o.mode,
    ...(o.format ? { format: o.format } : {}),
    ...(calibrationTexts ? { calibrationTexts, calibrationMethod: o.calibrationMethod } : {}),
    ...(o.percentile !== undefined ? { percentile: o.percentile } : {}),
    ...(o.include ? { include: o.include } : {}),
    ...(o.exclude ? { exclude: o.exclude } : {}),
    blockSize: o.blockSize,
    asymmetric: o.asymmetric === true,
    ...(o.accuracyLevel !== undefined ? { accuracyLevel: o.accuracyLevel as 0 | 1 | 2 | 3 | 4 } : {}),
    ...(o.minWeightElements !== undefined ? { minWeightElements: o.minWeightElements } : {}),
    embeddings: o.embeddings,
    ...(evalSet ? { eval: evalSet } : {}),
    maxLength: src.info.maxLength,
    iterations: o.latencyIterations,
    providers: o.providers,
  });
  const settings = {
    mode: o.mode,
    format: o.mode === 'dynamic' ? (o.format ?? 'matmul-integer') : null,
    calibration: o.calibration ? path.resolve(o.calibration) : null,
    calibration_method: o.mode === 'static' ? o.calibrationMethod : null,
    percentile: o.percentile ?? null,
    include: o.include ?? [],
    exclude: o.exclude ?? [],
    block_size: o.mode === 'int4' ? o.blockSize : null,
    asymmetric: o.mode === 'int4' ? o.asymmetric === true : null,
    accuracy_level: o.accuracyLevel ?? null,
    min_weight_elements: o.minWeightElements ?? null,
    embeddings: o.embeddings,
  };
  await writeFolderAtomic(out, async (tmp) => {
    await writeClassifier(qModel, tmp, {
      ...src.info,
      strategy: `${src.info.strategy}+${result.mode}`,
      quantization: {
        ...settings,
        from: o.model,
        quantized: result.quantized.length,
        embeddings: result.embeddings.length,
        skipped: result.skipped.length,
      },
    });
    await writeFileSynced(
      path.join(tmp, 'quantization.json'),
      new TextEncoder().encode(`${JSON.stringify(report, null, 2)}\n`),
    );
  });
  const reg = await registerDerived({
    home: o.home,
    out,
    name: o.name ?? nameFromOut(out),
    aliases: o.alias,
    sourceRef: o.model,
    sourceDir: src.dir,
    relation: 'quantized-from',
    experiment: 'quantize',
    params: settings,
    description: `${result.mode} of ${o.model}`,
    metrics: {
      size_ratio: report.sizeRatio,
      bytes_float: report.float.bytes,
      bytes_quantized: report.quantized.bytes,
      ...(report.speedupBatch1 !== undefined
        ? { speedup_batch1: report.speedupBatch1, speedup_throughput: report.speedupThroughput! }
        : {}),
      ...(report.quantized.accuracy !== undefined
        ? {
            accuracy: report.quantized.accuracy,
            macro_f1: report.quantized.macroF1!,
            accuracy_float: report.float.accuracy!,
            accuracy_delta: report.accuracyDelta!,
          }
        : {}),
    },
    metadata: {
      mode: result.mode,
      size_ratio: report.sizeRatio,
      ...(report.quantized.accuracy !== undefined
        ? { accuracy: report.quantized.accuracy, accuracy_delta: report.accuracyDelta! }
        : {}),
    },
  });
  const profile = o.profile
    ? await profileText(qModel, evalSet?.texts[0] ?? calibrationTexts?.[0] ?? 'hello', src.info.maxLength, o.providers)
    : undefined;
  return { ...report, source: o.model, out, run_id: reg.runId, model: reg.model, ...(profile ? { profile } : {}) };
}

export interface DistillModelOptions {
  teacher: string;
  studentLayers: number;
  studentHidden?: number;
  studentHeads?: number;
  studentIntermediate?: number;
  temperature: number;
  alpha: number;
  hiddenWeight: number;
  epochs: number;
  lr: number;
  batchSize: number;
  train?: string;
  unlabelled?: string[];
  validation?: string;
  eval?: string;
  textColumn: string;
  labelColumn: string;
  maxLength?: number;
  seed: number;
  out: string;
  name?: string;
  alias?: string[];
  latencyIterations: number;
  /** Registry folder (default TAILOR_HOME or ./.tailor). */
  home?: string;
  providers?: ProviderSpec[];
  /** Also return ONNX Runtime's per-op profile of the new model at batch 1. */
  profile?: boolean;
  progress?: WorkflowProgress;
}

/** One line saying where the student's weights came from. */
function initLine(init: {
  kind: string;
  teacherLayers: number[] | null;
  copiedParams: number;
  hidden: number;
  layers: number;
  removedLayers?: number[];
  intermediate?: number;
}): string {
  if (init.kind === 'teacher-graph') {
    return `student: the teacher's own graph with layer${init.removedLayers!.length > 1 ? 's' : ''} ${init.removedLayers!.join(', ')} removed (kept ${init.teacherLayers!.join(', ')}${init.intermediate !== undefined ? `, FFN narrowed to ${init.intermediate} units` : ''}); all ${init.copiedParams} parameters from the teacher`;
  }
  if (init.kind === 'teacher-layers')
    return `student: a ${init.layers}-layer zoo BERT (hidden ${init.hidden}) holding teacher layers ${init.teacherLayers!.join(', ')}; ${init.copiedParams} parameters copied`;
  return `student: a freshly initialised ${init.layers}-layer zoo BERT (hidden ${init.hidden})`;
}

/** Distils a classifier teacher into a smaller student (see the module comment). */
export async function distillModel(o: DistillModelOptions) {
  const progress = o.progress;
  const out = path.resolve(o.out);
  // Every input is checked before anything is written: out folder, transfer text, teacher, data files.
  await assertFreshOut(out);
  if (!o.train && !o.unlabelled?.length)
    throw new ConfigError('distill needs transfer text: --train FILE (labelled) and/or --unlabelled FILE', {
      field: 'train',
    });
  const t = await loadSource(o.teacher, o.home, '--teacher');
  const labels = t.info.labels;
  const maxLength = o.maxLength ?? t.info.maxLength;
  const train = o.train ? await readLabelled(o.train, o.textColumn, o.labelColumn, labels, 'train') : undefined;
  const unlabelled: string[] = [];
  for (const f of o.unlabelled ?? []) unlabelled.push(...(await readTexts(f, o.textColumn, 'unlabelled')));
  const validation = o.validation
    ? await readLabelled(o.validation, o.textColumn, o.labelColumn, labels, 'validation')
    : undefined;
  const evalSet = o.eval ? await readLabelled(o.eval, o.textColumn, o.labelColumn, labels, 'eval') : undefined;
  progress?.log?.(
    `distilling ${o.teacher} into a ${o.studentLayers}-layer student on ${(train?.texts.length ?? 0) + unlabelled.length} texts (${train?.texts.length ?? 0} labelled)`,
  );
  const r = await distillTextClassifier(t.model, {
    layers: o.studentLayers,
    ...(o.studentHidden !== undefined ? { hidden: o.studentHidden } : {}),
    ...(o.studentHeads !== undefined ? { heads: o.studentHeads } : {}),
    ...(o.studentIntermediate !== undefined ? { intermediate: o.studentIntermediate } : {}),
    ...(train ? { train } : {}),
    unlabelled,
    ...(validation ? { validation } : {}),
    ...(evalSet ? { eval: evalSet } : {}),
    temperature: o.temperature,
    alpha: o.alpha,
    hiddenWeight: o.hiddenWeight,
    epochs: o.epochs,
    lr: o.lr,
    batchSize: o.batchSize,
    maxLength,
    seed: o.seed,
    iterations: o.latencyIterations,
    providers: o.providers,
    throughputIterations: Math.max(2, Math.ceil(o.latencyIterations / 6)),
    onEpoch: (e) =>
      progress?.log?.(
        `epoch ${e.epoch + 1}: train loss ${e.trainLoss.toFixed(4)}${e.metrics.accuracy !== undefined ? `, validation accuracy ${(e.metrics.accuracy * 100).toFixed(2)}%` : ''}`,
      ),
  });
  const settings = {
    student_layers: o.studentLayers,
    student_intermediate: o.studentIntermediate ?? null,
    student_hidden: r.init.hidden,
    student_heads: r.init.heads,
    init: r.init.kind,
    teacher_layers: r.init.teacherLayers,
    temperature: o.temperature,
    alpha: o.alpha,
    hidden_weight: o.hiddenWeight,
    epochs: o.epochs,
    lr: o.lr,
    batch_size: o.batchSize,
    max_length: maxLength,
    seed: o.seed,
    train: o.train ? path.resolve(o.train) : null,
    unlabelled: (o.unlabelled ?? []).map((f) => path.resolve(f)),
    validation: o.validation ? path.resolve(o.validation) : null,
  };
  const report = { ...r.report, reportOn: r.reportOn, init: r.init, train: r.train, config: r.config };
  await writeFolderAtomic(out, async (tmp) => {
    await writeClassifier(r.student, tmp, {
      labels,
      maxLength,
      strategy: 'distilled',
      base: o.teacher,
      distillation: { ...settings, teacher: o.teacher },
    });
    await writeFileSynced(
      path.join(tmp, 'distillation.json'),
      new TextEncoder().encode(`${JSON.stringify(report, null, 2)}\n`),
    );
  });
  const reg = await registerDerived({
    home: o.home,
    out,
    name: o.name ?? nameFromOut(out),
    aliases: o.alias,
    sourceRef: o.teacher,
    sourceDir: t.dir,
    relation: 'distilled-from',
    experiment: 'distill',
    params: settings,
    description: `${o.studentLayers}-layer student distilled from ${o.teacher}`,
    metrics: {
      accuracy: r.report.student.accuracy,
      macro_f1: r.report.student.macroF1,
      teacher_accuracy: r.report.teacher.accuracy,
      accuracy_delta: r.report.accuracyDelta,
      agreement: r.report.agreement,
      speedup_batch1: r.report.speedupBatch1,
      speedup_throughput: r.report.speedupThroughput,
      params: r.report.student.params,
    },
    metadata: {
      strategy: 'distilled',
      accuracy: r.report.student.accuracy,
      teacher_accuracy: r.report.teacher.accuracy,
      report_on: r.reportOn,
    },
  });
  const sample = evalSet?.texts[0] ?? train?.texts[0] ?? unlabelled[0];
  const profile = o.profile ? await profileText(r.student, sample, maxLength, o.providers) : undefined;
  return {
    ...report,
    teacherRef: o.teacher,
    out,
    run_id: reg.runId,
    model: reg.model,
    initLine: initLine(r.init),
    ...(profile ? { profile } : {}),
  };
}
