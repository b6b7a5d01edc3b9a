/**
 * Distilling a Tailor text classifier end to end: texts become a transfer set through the teacher's tokenizer,
 * a zoo BERT student is built (alternate teacher layers when the widths match, fresh otherwise), trained on the
 * cached teacher logits, and measured against the teacher.
 */
import { textFeeds } from '../../models/text.ts';
import { ConfigError } from '../../errors.ts';
import type { Model } from '../../models/model.ts';
import { ort, type ProviderSpec } from '../../runtime/session.ts';
import { encoderParam, layerScopes } from '../../models/layers.ts';
import { alternateLayers, distill, studentFromTeacher, teacherGraphStudent, type DistillResult } from './core.ts';
import { inheritTeacherWeights, teacherShape } from './inherit.ts';
import { distillationReport, type DistillationReport } from './report.ts';

export interface TextDistillOptions {
  /** Student encoder layers. */
  layers: number;
  /** Student width (default: the teacher's, which lets it start from alternate teacher layers). */
  hidden?: number;
  heads?: number;
  /** FFN width: of a fresh student, or the units each kept teacher layer keeps (highest-magnitude, `pruneFfn`). */
  intermediate?: number;
  /** Force the student's start for a non-zoo teacher: its own graph minus layers, or a zoo BERT (see TextDistillResult.init). */
  init?: 'teacher-graph' | 'zoo';
  /** Labelled transfer texts (labels index the teacher's labels). */
  train?: { texts: readonly string[]; labels: readonly number[] };
  /** Unlabelled transfer texts: the teacher's argmax is their hard label. */
  unlabelled?: readonly string[];
  validation?: { texts: readonly string[]; labels: readonly number[] };
  /** Labelled texts for the teacher-vs-student report (default: validation, else train, else the teacher's own labels on the transfer texts). */
  eval?: { texts: readonly string[]; labels: readonly number[] };
  temperature?: number;
  alpha?: number;
  hiddenWeight?: number;
  epochs?: number;
  lr?: number;
  batchSize?: number;
  maxLength?: number;
  seed?: number;
  /** Report timing: batch-1 runs (default 50) and throughput runs (default 8). */
  iterations?: number;
  throughputIterations?: number;
  /** Execution providers for the report's sessions (training runs on CPU). */
  providers?: ProviderSpec[];
  onEpoch?: (e: { epoch: number; trainLoss: number; metrics: Record<string, number> }) => void;
}

export interface TextDistillResult {
  student: Model;
  /**
   * How the student was initialised: 'teacher-layers' = a zoo BERT holding alternate teacher layers;
   * 'teacher-graph' = the teacher's own graph with `removedLayers` taken out (its other weights, pooling and head
   * kept; `intermediate` = FFN units kept per layer when pruned); 'fresh' = a new zoo BERT.
   */
  init: {
    kind: 'teacher-layers' | 'teacher-graph' | 'fresh';
    teacherLayers: number[] | null;
    copiedParams: number;
    hidden: number;
    layers: number;
    heads: number;
    removedLayers?: number[];
    intermediate?: number;
  };
  train: DistillResult['train'];
  config: DistillResult['config'] & { transferRows: number; teacherRuns: number };
  report: DistillationReport;
  /** Which labels the report's accuracies are against. */
  reportOn: 'eval' | 'validation' | 'train' | 'teacher';
}

/** Whether a zoo student took every embedding and encoder parameter from the teacher (the teacher is BERT-shaped). */
function zooCovers(student: Model, teacher: Model, init: TextDistillResult['init']): boolean {
  if (init.kind !== 'teacher-layers' || teacher.architecture === 'bert') return init.kind === 'teacher-layers';
  const body = [...student.params.keys()].filter((k) => /(^|\.)(embeddings|encoder\.layer\.\d+)\./.test(k));
  return init.copiedParams >= body.length;
}

/** Width of the residual stream the student's last layer writes (its output dense's output size). */
function residualWidth(m: Model): number {
  const last = layerScopes(m.graph).pop();
  const p = last === undefined ? undefined : encoderParam(m, last, 'output.dense.weight');
  if (!p || p.shape.length !== 2) return 0;
  return p.layout === 'out_in' ? p.shape[0] : p.shape[1];
}

/** Distils a text classifier teacher into a smaller zoo BERT student. Neither input is modified. */
export async function distillTextClassifier(teacher: Model, opts: TextDistillOptions): Promise<TextDistillResult> {
  const maxLength = opts.maxLength ?? 64;
  const train = opts.train ?? { texts: [], labels: [] };
  const unlabelled = opts.unlabelled ?? [];
  const texts = [...train.texts, ...unlabelled];
  if (texts.length === 0)
    throw new ConfigError('distillation needs transfer text: a labelled --train file or --unlabelled text', {
      field: 'train',
    });
  const shape = teacherShape(teacher);
  const isBert =
    teacher.architecture === 'bert' && typeof (teacher.config as { hidden_size?: unknown }).hidden_size === 'number';
  const seed = opts.seed ?? 0;
  let student: Model;
  let init: TextDistillResult['init'];
  const zooInit = (): { student: Model; init: TextDistillResult['init'] } => {
    const teacherHidden = isBert ? (teacher.config as { hidden_size: number }).hidden_size : shape?.hidden;
    const teacherLayers = isBert ? (teacher.config as { num_hidden_layers: number }).num_hidden_layers : shape?.layers;
    const hidden = opts.hidden ?? teacherHidden;
    if (hidden === undefined)
      throw new ConfigError(
        `cannot tell the width of this '${teacher.architecture}' teacher; give the student's width (--student-hidden)`,
        { field: 'hidden' },
      );
    const heads = opts.heads ?? Math.max(1, Math.round(hidden / 64));
    if (hidden % heads !== 0)
      throw new ConfigError(`student hidden size ${hidden} is not a multiple of ${heads} heads`, {
        field: 'heads',
        value: String(heads),
      });
    const sameWidth = hidden === teacherHidden && teacherLayers !== undefined;
    if (sameWidth && opts.layers > teacherLayers)
      throw new ConfigError(`a student of the teacher's width needs 1..${teacherLayers} layers, got ${opts.layers}`, {
        field: 'layers',
        value: String(opts.layers),
      });
    const maxPositions = Math.max(shape?.maxPositions ?? 0, Math.min(512, teacher.tokenizer?.modelMaxLength ?? 512));
    const intermediate = opts.intermediate ?? (sameWidth ? shape?.intermediate : undefined);
    let s = studentFromTeacher(teacher, {
      layers: opts.layers,
      hidden,
      heads,
      seed,
      init: 'zoo',
      ...(intermediate !== undefined ? { intermediate } : {}),
      ...(shape ? { vocabSize: shape.vocab, maxPositions: shape.maxPositions } : { maxPositions }),
    });
    let i: TextDistillResult['init'] = {
      kind: 'fresh',
      teacherLayers: null,
      copiedParams: 0,
      hidden,
      layers: opts.layers,
      heads,
    };
    if (sameWidth) {
      const map = alternateLayers(teacherLayers, opts.layers);
      if (isBert) i = { ...i, kind: 'teacher-layers', teacherLayers: map, copiedParams: s.params.size };
      else {
        const inh = inheritTeacherWeights(s, teacher, map);
        s = inh.model;
        if (inh.copied.length)
          i = { ...i, kind: 'teacher-layers', teacherLayers: map, copiedParams: inh.copied.length };
      }
    }
    return { student: s, init: i };
  };
  // A non-zoo teacher the zoo cannot mirror (USE-lite: pre-LayerNorm layers of two widths) gets its own graph with
  // layers removed; one whose every encoder parameter a zoo BERT of its width takes (a BERT export) keeps the zoo route.
  const scopes = layerScopes(teacher.graph).length;
  const scoped = !isBert && opts.hidden === undefined && opts.init !== 'zoo' && scopes > 0;
  if (scoped && opts.layers > scopes)
    throw new ConfigError(`a student of the teacher's width needs 1..${scopes} layers, got ${opts.layers}`, {
      field: 'layers',
      value: String(opts.layers),
    });
  let zoo: ReturnType<typeof zooInit> | undefined;
  if (scoped && opts.init !== 'teacher-graph' && shape) {
    try {
      zoo = zooInit();
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
    }
  }
  if (scoped && (opts.init === 'teacher-graph' || !zoo || !zooCovers(zoo.student, teacher, zoo.init))) {
    const g = teacherGraphStudent(
      teacher,
      opts.layers,
      opts.intermediate !== undefined ? { intermediate: opts.intermediate } : {},
    );
    student = g.model;
    const cfg = teacher.config as { num_attention_heads?: unknown };
    const heads = Array.isArray(cfg.num_attention_heads)
      ? Number(cfg.num_attention_heads[g.keptLayers[g.keptLayers.length - 1]])
      : typeof cfg.num_attention_heads === 'number'
        ? cfg.num_attention_heads
        : 0;
    init = {
      kind: 'teacher-graph',
      teacherLayers: g.keptLayers,
      copiedParams: student.params.size,
      hidden: residualWidth(student),
      layers: g.keptLayers.length,
      heads,
      removedLayers: g.removedLayers,
      ...(g.intermediate !== undefined ? { intermediate: g.intermediate } : {}),
    };
  } else {
    ({ student, init } = zoo ?? zooInit());
  }
  const labels = BigInt64Array.from([...train.labels.map(BigInt), ...unlabelled.map(() => -1n)]);
  const transfer = { inputs: textFeeds(teacher, texts, { maxLength, inputsOf: [teacher, student] }), labels };
  const validation = opts.validation?.texts.length
    ? {
        inputs: textFeeds(teacher, opts.validation.texts, { maxLength, inputsOf: [teacher, student] }),
        labels: BigInt64Array.from(opts.validation.labels.map(BigInt)),
      }
    : undefined;
  const res = await distill(teacher, student, transfer, {
    ...(opts.temperature !== undefined ? { temperature: opts.temperature } : {}),
    ...(opts.alpha !== undefined ? { alpha: opts.alpha } : {}),
    ...(opts.hiddenWeight !== undefined ? { hiddenWeight: opts.hiddenWeight } : {}),
    ...(opts.epochs !== undefined ? { epochs: opts.epochs } : {}),
    ...(opts.lr !== undefined ? { lr: opts.lr } : {}),
    ...(opts.batchSize !== undefined ? { batchSize: opts.batchSize } : {}),
    seed,
    ...(validation ? { validation } : {}),
    ...(opts.onEpoch ? { trainer: { onEpoch: (e) => opts.onEpoch!(e) } } : {}),
  });
  let reportOn: TextDistillResult['reportOn'];
  let evalSet;
  const labelled = (s: {
    texts: readonly string[];
    labels: readonly number[];
  }): { inputs: Record<string, ort.Tensor>; labels: BigInt64Array } => ({
    inputs: textFeeds(teacher, s.texts, { maxLength, inputsOf: [teacher, student] }),
    labels: BigInt64Array.from(s.labels.map(BigInt)),
  });
  if (opts.eval?.texts.length) {
    reportOn = 'eval';
    evalSet = labelled(opts.eval);
  } else if (opts.validation?.texts.length) {
    reportOn = 'validation';
    evalSet = validation!;
  } else if (train.texts.length) {
    reportOn = 'train';
    evalSet = labelled(train);
  } else {
    // Only unlabelled text: accuracies are against the teacher's own predictions (teacher = 100%, student = agreement).
    reportOn = 'teacher';
    const c = res.cache;
    evalSet = {
      inputs: transfer.inputs,
      labels: BigInt64Array.from({ length: c.logits.length / c.classes }, (_, i) => {
        let a = 0;
        for (let j = 1; j < c.classes; j++) if (c.logits[i * c.classes + j] > c.logits[i * c.classes + a]) a = j;
        return BigInt(a);
      }),
    };
  }
  const report = await distillationReport(teacher, res.student, evalSet, {
    iterations: opts.iterations ?? 50,
    throughputIterations: opts.throughputIterations ?? 8,
    ...(opts.providers ? { providers: opts.providers } : {}),
  });
  if (reportOn === 'teacher')
    report.notes.push(
      "no labelled text was given: accuracies are against the teacher's predictions on the transfer text",
    );
  return {
    student: res.student,
    init,
    train: res.train,
    config: { ...res.config, transferRows: texts.length, teacherRuns: res.cache.runs },
    report,
    reportOn,
  };
}
