/**
 * Knowledge distillation: a smaller student learns to reproduce a teacher's soft predictions.
 *
 * loss = alpha · T² · KL(softmax(teacher/T) ‖ softmax(student/T)) + (1 − alpha) · CE(student, labels)
 *        [+ hiddenWeight · MSE(student final hidden states, teacher final hidden states)]
 *
 * The teacher only runs forward, once, over the transfer set (`teacherOutputs`); its logits (and hidden states
 * when matched) are cached as tensors and fed to the student's training graph as data. Rows without a label (-1)
 * take the teacher's argmax as their hard label, so unlabelled domain text is usable as-is.
 * Students: `studentFromTeacher` keeps alternate encoder layers of a BERT teacher (DistilBERT's initialisation); for
 * any other teacher whose graph has module-scoped layers (USE-lite, customize's classifier folders) it keeps
 * alternate layers of the teacher's own graph (`teacherGraphStudent`, src/models/layers.ts); with a width of its
 * own it builds a fresh zoo BERT. Any other classifier Model with a `logits` output works too. The teacher can be
 * any classifier with a `logits` output.
 */
import { ConfigError } from '../../errors.ts';
import { klDivergence, mse, softmaxCrossEntropy } from '../../autodiff/losses.ts';
import type { GraphBuilder } from '../../onnx/builder.ts';
import { bertConfig, buildBert, dropLayers, type BertConfig } from '../../models/index.ts';
import { layerScopes, pruneFfn, removeLayers } from '../../models/layers.ts';
import { toOnnxModel, type Model, type Parameter } from '../../models/model.ts';
import type { Graph } from '../../onnx/ir.ts';
import { Session, ort } from '../../runtime/session.ts';
import { tensorData, Trainer, type TrainData, type TrainerConfig, type TrainResult } from '../../train/trainer.ts';
import { logitsAccuracy } from '../../train/metrics.ts';

/** Model inputs by name (first axis = examples), plus optional gold labels (-1 = unlabelled). */
export interface TransferSet {
  inputs: Record<string, ort.Tensor>;
  labels?: BigInt64Array;
}

/** The teacher's cached outputs over a transfer set. */
export interface TeacherCache {
  /** [N, C] */
  logits: Float32Array;
  classes: number;
  /** Final encoder hidden states [N, seq, H] when requested. */
  hidden?: Float32Array;
  hiddenDims?: number[];
  /** Teacher forward runs it took (each one batch). */
  runs: number;
}

export interface StudentSpec {
  /** Encoder layers; with no width change they are copied from alternate teacher layers. */
  layers?: number;
  /** A narrower student (fresh initialisation): hidden size, heads, FFN size. */
  hidden?: number;
  heads?: number;
  /** FFN width: of a fresh student; of a teacher-graph student, the units each kept layer keeps (highest-magnitude first, `pruneFfn`). */
  intermediate?: number;
  /**
   * How a non-zoo teacher's student starts: 'teacher-graph' = the teacher's own graph with alternate layers kept;
   * 'zoo' = a zoo BERT (fresh). Default: 'teacher-graph' when no `hidden` is given and the graph has layer scopes.
   */
  init?: 'teacher-graph' | 'zoo';
  seed?: number;
  /** For a teacher that is not a zoo/HF BERT (e.g. an imported ONNX classifier): the student's vocabulary size (default: the teacher tokenizer's). */
  vocabSize?: number;
  /** For a non-BERT teacher: position table size (default: the tokenizer's model_max_length, capped at 512). */
  maxPositions?: number;
}

export interface DistillOptions {
  /** Softening temperature T (default 2). */
  temperature?: number;
  /** Weight of the soft (KL) term, 1 − alpha on the hard-label CE (default 0.5; 1 = teacher logits alone). */
  alpha?: number;
  /** Weight of the final-hidden-state MSE (default 0 = off; needs equal hidden sizes). */
  hiddenWeight?: number;
  epochs?: number;
  batchSize?: number;
  /** AdamW learning rate (default 5e-4). */
  lr?: number;
  seed?: number;
  /** Labelled examples to pick the best epoch by accuracy. */
  validation?: TransferSet;
  /** Teacher outputs computed earlier (e.g. by a previous run); skips the teacher's forward pass. */
  cache?: TeacherCache;
  /** Anything else for the Trainer (schedule, checkpointDir, progress, session threads...). */
  trainer?: Partial<TrainerConfig>;
}

export interface DistillResult {
  student: Model;
  train: Pick<TrainResult, 'steps' | 'epochs' | 'history' | 'best' | 'stoppedEarly'>;
  /** The teacher cache used (reuse it for another run with different student or hyper-parameters). */
  cache: TeacherCache;
  config: {
    temperature: number;
    alpha: number;
    hiddenWeight: number;
    labelledRows: number;
    teacherLabelledRows: number;
  };
}

function bertOf(model: Model): { cfg: BertConfig } {
  return { cfg: model.config as unknown as BertConfig };
}

/** Which teacher layers a student of `n` layers starts from: evenly spaced from layer 0 (0, 2, 4... for half). */
export function alternateLayers(teacherLayers: number, n: number): number[] {
  if (!Number.isInteger(n) || n < 1 || n > teacherLayers)
    throw new ConfigError(`a student needs 1..${teacherLayers} layers, got ${n}`, {
      field: 'layers',
      value: String(n),
    });
  return Array.from({ length: n }, (_, i) => Math.floor((i * teacherLayers) / n));
}

/**
 * A smaller BERT student. Same width: the teacher with only alternate layers kept (embeddings, pooler and head
 * copied; DistilBERT-style). Narrower (`hidden` below the teacher's): a fresh seeded encoder of that width and
 * `layers` depth with the teacher's vocabulary, labels and tokenizer.
 */
export function studentFromTeacher(teacher: Model, spec: StudentSpec): Model {
  if (
    teacher.architecture !== 'bert' ||
    typeof (teacher.config as { hidden_size?: unknown }).hidden_size !== 'number'
  ) {
    const graphInit =
      spec.init === 'teacher-graph' ||
      (spec.init !== 'zoo' && spec.hidden === undefined && layerScopes(teacher.graph).length > 0);
    if (graphInit)
      return teacherGraphStudent(
        teacher,
        spec.layers ?? layerScopes(teacher.graph).length,
        spec.intermediate !== undefined ? { intermediate: spec.intermediate } : {},
      ).model;
    return freshStudent(teacher, spec);
  }
  const { cfg } = bertOf(teacher);
  const layers = spec.layers ?? cfg.num_hidden_layers;
  if (spec.hidden === undefined || spec.hidden === cfg.hidden_size) {
    const keep = new Set(alternateLayers(cfg.num_hidden_layers, layers));
    const drop = Array.from({ length: cfg.num_hidden_layers }, (_, i) => i).filter((i) => !keep.has(i));
    return drop.length ? dropLayers(teacher, drop) : teacher;
  }
  return freshStudent(teacher, { ...spec, layers }, cfg);
}

/** A student cut from the teacher's own graph, and what was kept. */
export interface TeacherGraphStudent {
  model: Model;
  /** Teacher layer indices kept (student layer i = teacher layer keptLayers[i]). */
  keptLayers: number[];
  removedLayers: number[];
  /** FFN units each kept layer keeps, when pruned. */
  intermediate?: number;
}

/**
 * DistilBERT's initialisation for any teacher whose graph has module-scoped encoder layers (USE-lite, customize's
 * classifier folders, Optimum exports): the teacher's own graph with only alternate layers kept
 * (`alternateLayers`; for a 2-layer USE-lite and 1 layer: layer 0, whose width change stays) — same embeddings,
 * pooling and head, every weight copied. `intermediate` also narrows each kept layer's FFN to that many of its
 * highest-magnitude units. Every non-buffer parameter is trainable (a head-only customized teacher has a frozen
 * body). Pure.
 */
export function teacherGraphStudent(
  teacher: Model,
  layers: number,
  opts: { intermediate?: number } = {},
): TeacherGraphStudent {
  const present = layerScopes(teacher.graph);
  if (present.length === 0) {
    throw new ConfigError(
      `the '${teacher.architecture}' teacher's graph has no encoder layer scopes (node names like '/encoder/layer.0/...'); give the student a width (hidden) for a fresh one`,
      { field: 'layers' },
    );
  }
  const keptLayers = alternateLayers(present.length, layers).map((i) => present[i]);
  const removedLayers = present.filter((i) => !keptLayers.includes(i));
  let model = removedLayers.length ? removeLayers(teacher, removedLayers) : teacher;
  if (opts.intermediate !== undefined)
    for (let i = 0; i < keptLayers.length; i++) model = pruneFfn(model, layerScopes(model.graph)[i], opts.intermediate);
  const params = new Map<string, Parameter>();
  for (const [k, p] of model.params) params.set(k, { ...p, trainable: p.role !== 'buffer' });
  return {
    model: { ...model, params, newlyInitialized: [] },
    keptLayers,
    removedLayers,
    ...(opts.intermediate !== undefined ? { intermediate: opts.intermediate } : {}),
  };
}

/**
 * A freshly initialised zoo BERT classifier for any classifier teacher (the teacher only has to label the
 * transfer set): width and depth from `spec`, labels and tokenizer from the teacher.
 */
function freshStudent(teacher: Model, spec: StudentSpec, base?: BertConfig): Model {
  const hidden = spec.hidden ?? base?.hidden_size;
  if (hidden === undefined)
    throw new ConfigError(`a student for a '${teacher.architecture}' teacher needs its width (hidden)`, {
      field: 'hidden',
    });
  const labels = teacher.labels;
  const numLabels = labels?.length ?? base?.num_labels;
  if (!numLabels)
    throw new ConfigError('the teacher has no label list; a classifier student needs the number of classes', {
      field: 'labels',
    });
  const vocab = spec.vocabSize ?? base?.vocab_size ?? teacher.tokenizer?.vocabSize;
  if (!vocab)
    throw new ConfigError('the student needs a vocabulary size (vocabSize, or a teacher with a tokenizer)', {
      field: 'vocabSize',
    });
  const heads = spec.heads ?? Math.max(1, Math.round(hidden / 64));
  if (hidden % heads !== 0)
    throw new ConfigError(`student hidden size ${hidden} is not a multiple of ${heads} heads`, {
      field: 'hidden',
      value: String(hidden),
    });
  const config = bertConfig({
    ...(base ?? {}),
    vocab_size: vocab,
    hidden_size: hidden,
    num_hidden_layers: spec.layers ?? 2,
    num_attention_heads: heads,
    intermediate_size: spec.intermediate ?? hidden * 4,
    num_labels: numLabels,
    max_position_embeddings:
      spec.maxPositions ?? base?.max_position_embeddings ?? Math.min(512, teacher.tokenizer?.modelMaxLength ?? 512),
    ...(labels ? { id2label: Object.fromEntries(labels.map((l, i) => [String(i), l])) } : {}),
  });
  const student = buildBert(config, { task: 'sequence-classification', seed: spec.seed ?? 0 });
  return { ...student, ...(teacher.tokenizer ? { tokenizer: teacher.tokenizer } : {}), ...(labels ? { labels } : {}) };
}

/** The value holding the final encoder hidden states (output of the last layer's output LayerNorm). */
export function finalHiddenValue(graph: Graph): string {
  let best = -1,
    value = '';
  for (const n of graph.nodes) {
    const m = /encoder\/layer\.(\d+)\/output\/LayerNorm\//.exec(n.name);
    if (!m) continue;
    // The decomposed (Optimum) LayerNorm has several nodes in scope: the last one in graph order is the output.
    if (Number(m[1]) >= best) {
      best = Number(m[1]);
      value = n.outputs[0];
    }
  }
  if (!value)
    throw new ConfigError(`graph '${graph.name}' has no encoder output LayerNorm to match hidden states on`, {
      field: 'hiddenWeight',
    });
  return value;
}

function sliceRows(t: ort.Tensor, start: number, end: number): ort.Tensor {
  const row = t.size / t.dims[0];
  const d = t.data as Float32Array;
  return new ort.Tensor(t.type, d.subarray(start * row, end * row) as Float32Array, [end - start, ...t.dims.slice(1)]);
}

/** Runs the teacher forward once over `inputs` in batches and keeps its logits (and final hidden states). */
export async function teacherOutputs(
  teacher: Model,
  inputs: Record<string, ort.Tensor>,
  opts: { batchSize?: number; hidden?: boolean; intraOpThreads?: number } = {},
): Promise<TeacherCache> {
  const onnx = toOnnxModel(teacher);
  if (!onnx.graph.outputs.some((o) => o.name === 'logits')) {
    throw new ConfigError(
      `the teacher has no 'logits' output (outputs: ${onnx.graph.outputs.map((o) => o.name).join(', ')}); distillation needs a classifier`,
      { field: 'teacher' },
    );
  }
  const hiddenName = opts.hidden ? finalHiddenValue(onnx.graph) : undefined;
  if (hiddenName && !onnx.graph.outputs.some((o) => o.name === hiddenName)) {
    onnx.graph = { ...onnx.graph, outputs: [...onnx.graph.outputs, { name: hiddenName, dtype: 'float32' }] };
  }
  const names = Object.keys(inputs);
  if (!names.length) throw new ConfigError('the transfer set has no inputs', { field: 'inputs' });
  const n = inputs[names[0]].dims[0];
  const bs = opts.batchSize ?? 64;
  const s = await Session.create(onnx, {
    label: 'teacher',
    ...(opts.intraOpThreads ? { intraOpThreads: opts.intraOpThreads } : {}),
  });
  let logits: Float32Array | undefined, hidden: Float32Array | undefined, hiddenDims: number[] | undefined;
  let classes = 0,
    runs = 0;
  try {
    const wanted = onnx.graph.inputs.map((i) => i.name);
    for (const w of wanted)
      if (!inputs[w]) throw new ConfigError(`the transfer set lacks the teacher input '${w}'`, { field: w });
    for (let start = 0; start < n; start += bs) {
      const end = Math.min(n, start + bs);
      const feeds: Record<string, ort.Tensor> = {};
      for (const w of wanted) feeds[w] = sliceRows(inputs[w], start, end);
      const out = await s.run(feeds, hiddenName ? ['logits', hiddenName] : ['logits']);
      runs++;
      const l = out.logits;
      classes = l.dims[l.dims.length - 1];
      logits ??= new Float32Array(n * classes);
      logits.set(l.data as Float32Array, start * classes);
      if (hiddenName) {
        const h = out[hiddenName];
        const per = h.size / h.dims[0];
        hiddenDims = [n, ...h.dims.slice(1)];
        hidden ??= new Float32Array(n * per);
        hidden.set(h.data as Float32Array, start * per);
      }
    }
  } finally {
    await s.release();
  }
  return { logits: logits ?? new Float32Array(0), classes, runs, ...(hidden ? { hidden, hiddenDims } : {}) };
}

/** Hard labels: the gold label where present (>= 0), else the teacher's argmax. */
export function hardLabels(
  cache: TeacherCache,
  gold?: BigInt64Array,
): { labels: BigInt64Array; teacherLabelled: number } {
  const n = cache.logits.length / cache.classes;
  const out = new BigInt64Array(n);
  let teacherLabelled = 0;
  for (let i = 0; i < n; i++) {
    if (gold && gold[i] >= 0n) {
      out[i] = gold[i];
      continue;
    }
    let a = 0;
    for (let c = 1; c < cache.classes; c++)
      if (cache.logits[i * cache.classes + c] > cache.logits[i * cache.classes + a]) a = c;
    out[i] = BigInt(a);
    teacherLabelled++;
  }
  return { labels: out, teacherLabelled };
}

/**
 * The distillation loss appended to a student graph (inputs `teacher_logits` [batch, C], `labels` [batch] when
 * alpha < 1, `teacher_hidden` when hiddenWeight > 0). Returns the loss value's name.
 */
export function distillationLoss(
  b: GraphBuilder,
  opts: {
    classes: number;
    temperature: number;
    alpha: number;
    hiddenWeight?: number;
    studentHidden?: string;
    hiddenShape?: (number | string)[];
  },
): string {
  const { temperature, alpha } = opts;
  if (!(alpha >= 0 && alpha <= 1))
    throw new ConfigError(`alpha must be in [0, 1], got ${alpha}`, { field: 'alpha', value: String(alpha) });
  const parts: string[] = [];
  if (alpha > 0) {
    const t = b.input('teacher_logits', 'float32', ['batch', opts.classes]);
    parts.push(b.mul(klDivergence(b, 'logits', t, { temperature }), b.scalar(alpha)));
  }
  if (alpha < 1) {
    const y = b.input('labels', 'int64', ['batch']);
    parts.push(b.mul(softmaxCrossEntropy(b, 'logits', y), b.scalar(1 - alpha)));
  }
  if (opts.hiddenWeight && opts.studentHidden) {
    const th = b.input('teacher_hidden', 'float32', opts.hiddenShape ?? ['batch', 'seq', 'hidden']);
    parts.push(b.mul(mse(b, opts.studentHidden, th), b.scalar(opts.hiddenWeight)));
  }
  return parts.length === 1 ? b.identity(parts[0]) : b.sum(...parts);
}

/** Trains `student` to mimic `teacher` on the transfer set with the Trainer. Neither input model is modified. */
export async function distill(
  teacher: Model,
  student: Model,
  transfer: TransferSet,
  opts: DistillOptions = {},
): Promise<DistillResult> {
  const temperature = opts.temperature ?? 2;
  const alpha = opts.alpha ?? 0.5;
  const hiddenWeight = opts.hiddenWeight ?? 0;
  if (!(temperature > 0))
    throw new ConfigError(`temperature must be > 0, got ${temperature}`, {
      field: 'temperature',
      value: String(temperature),
    });
  const studentGraph = student.graph;
  const studentHidden = hiddenWeight > 0 ? finalHiddenValue(studentGraph) : undefined;
  if (hiddenWeight > 0) {
    const th = (teacher.config as { hidden_size?: number }).hidden_size,
      sh = (student.config as { hidden_size?: number }).hidden_size;
    if (th !== sh)
      throw new ConfigError(
        `hidden-state matching needs equal hidden sizes (teacher ${th}, student ${sh}); set hiddenWeight 0 for a narrower student`,
        { field: 'hiddenWeight' },
      );
  }
  const cache = opts.cache ?? (await teacherOutputs(teacher, transfer.inputs, { hidden: hiddenWeight > 0 }));
  if (hiddenWeight > 0 && !cache.hidden)
    throw new ConfigError(
      'hiddenWeight > 0 needs a teacher cache with hidden states (teacherOutputs(..., { hidden: true }))',
      { field: 'cache' },
    );
  const n = cache.logits.length / cache.classes;
  const { labels, teacherLabelled } = hardLabels(cache, transfer.labels);
  const columns = (set: TransferSet, c: TeacherCache, lab: BigInt64Array): Record<string, ort.Tensor> => {
    const rows = c.logits.length / c.classes;
    const cols: Record<string, ort.Tensor> = {};
    for (const i of studentGraph.inputs) {
      const t = set.inputs[i.name];
      if (!t) throw new ConfigError(`the transfer set lacks the student input '${i.name}'`, { field: i.name });
      cols[i.name] = t;
    }
    if (alpha > 0) cols.teacher_logits = new ort.Tensor('float32', c.logits, [rows, c.classes]);
    if (alpha < 1) cols.labels = new ort.Tensor('int64', lab, [rows]);
    if (hiddenWeight > 0 && c.hidden && c.hiddenDims)
      cols.teacher_hidden = new ort.Tensor('float32', c.hidden, c.hiddenDims);
    return cols;
  };
  const train = tensorData(columns(transfer, cache, labels));
  if (train.size !== n)
    throw new ConfigError(`the teacher cache has ${n} rows but the transfer set has ${train.size}`, { field: 'cache' });
  let validation: TrainerConfig['validation'];
  if (opts.validation) {
    if (!opts.validation.labels) throw new ConfigError('validation needs labels', { field: 'validation' });
    const vc = await teacherOutputs(teacher, opts.validation.inputs, { hidden: hiddenWeight > 0 });
    const vl = hardLabels(vc, opts.validation.labels).labels;
    const cols = columns(opts.validation, vc, vl);
    const vdata = tensorData(cols);
    const gold = opts.validation.labels;
    // The gold labels ride along under a name the graph does not read (ORT ignores extra feeds), for the metric.
    const withGold: TrainData = {
      size: vdata.size,
      batch: (idx) => ({
        ...vdata.batch(idx),
        gold_labels: new ort.Tensor(
          'int64',
          BigInt64Array.from(idx, (i) => gold[i]),
          [idx.length],
        ),
      }),
    };
    validation = { data: withGold, metrics: logitsAccuracy('logits', 'gold_labels') };
  }
  const hiddenShape = cache.hiddenDims ? ['batch', ...cache.hiddenDims.slice(1)] : undefined;
  const loss = (b: GraphBuilder): string =>
    distillationLoss(b, {
      classes: cache.classes,
      temperature,
      alpha,
      hiddenWeight,
      ...(studentHidden ? { studentHidden } : {}),
      ...(hiddenShape ? { hiddenShape } : {}),
    });
  const trainable = [...student.params.values()]
    .filter((p) => p.trainable && p.dtype === 'float32')
    .map((p) => p.initializer);
  const trainer = new Trainer(studentGraph, loss, trainable, train, {
    seed: opts.seed ?? 0,
    epochs: opts.epochs ?? 3,
    batchSize: Math.min(opts.batchSize ?? 32, n),
    optimizer: { type: 'adamw', lr: opts.lr ?? 5e-4 },
    progress: 'none',
    ...(validation ? { validation, bestMetric: { metric: 'accuracy', mode: 'max' as const } } : {}),
    ...opts.trainer,
  });
  let result: TrainResult;
  try {
    result = await trainer.fit();
  } finally {
    await trainer.release();
  }
  const trained: Model = { ...student, graph: result.graph };
  return {
    student: trained,
    train: {
      steps: result.steps,
      epochs: result.epochs,
      history: result.history,
      ...(result.best ? { best: result.best } : {}),
      stoppedEarly: result.stoppedEarly,
    },
    cache,
    config: {
      temperature,
      alpha,
      hiddenWeight,
      labelledRows: n - teacherLabelled,
      teacherLabelledRows: teacherLabelled,
    },
  };
}

export { layerScopes, pruneFfn, removeLayers, type RemoveLayersOptions } from '../../models/layers.ts';
