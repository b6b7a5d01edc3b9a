/**
 * A loaded classifier that answers texts: `Classifier.load(folder)` then `predict(texts)` -> labels and class
 * probabilities (softmax of the model's logits; Tailor folds its fitted temperature into the head, so the
 * probabilities are the calibrated ones). One ORT session per classifier, reused across calls; texts are batched by
 * length through the one text path (models/text.ts).
 *
 * @example
 * const clf = await Classifier.load('./tickets-model');
 * const [p] = await clf.predict(['my card was charged twice']);
 * // p.label === 'billing', p.probabilities: one per clf.labels entry
 * await clf.release();
 */
import { ConfigError } from '../errors.ts';
import { softmax } from '../eval/metrics.ts';
import { Session, type ProviderSpec } from '../runtime/session.ts';
import { loadArtifact, type ArtifactInfo } from './artifact.ts';
import { LOGITS } from './head.ts';
import { toOnnxModel, type Model } from './model.ts';
import { runTexts } from './text.ts';
import { fitGroupThresholds, type FitThresholdsInput, type GroupThresholds } from '../eval/mitigation.ts';
import { readGroupThresholds, writeGroupThresholds } from './group-thresholds.ts';

export interface Prediction {
  label: string;
  /** Probability of the predicted label. */
  confidence: number;
  /** Class probabilities aligned with the classifier's `labels`. */
  probabilities: number[];
}

export interface ClassifierOptions {
  providers?: ProviderSpec[];
  intraOpThreads?: number;
  /** Texts per ORT run (default 32). */
  batchSize?: number;
  /** Longest token sequence (default: the one the model was trained with, from tailor.json). */
  maxLength?: number;
}

/** Row-wise softmax of [n, k] logits into probability rows. */
export function softmaxRows(logits: Float32Array, k: number): number[][] {
  return Array.from({ length: logits.length / k }, (_, i) => softmax(logits.subarray(i * k, (i + 1) * k)));
}

export class Classifier {
  private constructor(
    readonly model: Model,
    readonly labels: readonly string[],
    readonly info: ArtifactInfo | undefined,
    private readonly session: Session,
    private readonly opts: ClassifierOptions,
    /** Group-specific thresholds stored with the model (group-thresholds.json), applied by `predict` with groups. */
    readonly groupThresholds?: GroupThresholds,
  ) {}

  /** Loads a classifier folder written by Tailor (a `customize`, `quantize` or `distill` output, or its model/). */
  static async load(dir: string, opts: ClassifierOptions = {}): Promise<Classifier> {
    const { model, info, dir: folder } = await loadArtifact(dir);
    const thresholds = await readGroupThresholds(folder, info.labels);
    return Classifier.fromModel(model, { ...opts, maxLength: opts.maxLength ?? info.maxLength }, info, thresholds);
  }

  /** Wraps an in-memory classification model (it must have labels and a tokenizer). */
  static async fromModel(
    model: Model,
    opts: ClassifierOptions = {},
    info?: ArtifactInfo,
    groupThresholds?: GroupThresholds,
  ): Promise<Classifier> {
    const labels = model.labels;
    if (!labels?.length) throw new ConfigError('the model has no labels: it is not a classifier', { field: 'labels' });
    if (!model.tokenizer)
      throw new ConfigError('the model has no tokenizer, so it cannot read text', { field: 'tokenizer' });
    const session = await Session.create(toOnnxModel(model), {
      providers: opts.providers,
      intraOpThreads: opts.intraOpThreads,
      label: `${model.architecture} classifier`,
    });
    return new Classifier(model, labels, info, session, opts, groupThresholds);
  }

  /** Class scores before the softmax, [texts.length, labels.length] row-major. */
  async logits(texts: readonly string[]): Promise<Float32Array> {
    if (texts.length === 0) return new Float32Array(0);
    const r = await runTexts(this.session, this.model, texts, LOGITS, {
      batchSize: this.opts.batchSize,
      maxLength: this.opts.maxLength,
    });
    if (r.width !== this.labels.length)
      throw new ConfigError(`the model's logits have ${r.width} columns but it has ${this.labels.length} labels`, {
        field: 'labels',
      });
    return r.values;
  }

  /**
   * The label and class probabilities of each text, in input order. With `groups` (one per text) and group
   * thresholds stored with the model, the label is the thresholded one (`GroupThresholds.apply`); otherwise argmax.
   * The probabilities are the model's either way.
   */
  async predict(texts: readonly string[], options: { groups?: readonly string[] } = {}): Promise<Prediction[]> {
    const groups = options.groups;
    if (groups && groups.length !== texts.length)
      throw new ConfigError(`groups has ${groups.length} entries but there are ${texts.length} texts`, {
        field: 'groups',
        value: String(groups.length),
      });
    const probs = softmaxRows(await this.logits(texts), this.labels.length);
    const t = groups ? this.groupThresholds : undefined;
    return probs.map((p, i) => {
      let best = 0;
      if (t) best = t.apply(p, groups![i]);
      else for (let j = 1; j < p.length; j++) if (p[j] > p[best]) best = j;
      return { label: this.labels[best], confidence: p[best], probabilities: p };
    });
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** What `storeGroupThresholds` fits on: labelled validation texts with their group, and the fit's options. */
export interface StoreThresholdsInput extends Pick<
  FitThresholdsInput,
  'positiveLabel' | 'constraint' | 'tolerance' | 'gridSize' | 'minGroupSize'
> {
  texts: readonly string[];
  labels: readonly string[];
  groups: readonly string[];
}

/**
 * Fits group thresholds (`fitGroupThresholds`) on the classifier folder `dir`'s own validation predictions and
 * stores them in the folder as group-thresholds.json, replacing any there. Returns them (their `spec.validation`
 * has the accuracy and parity gaps before and after, measured on these validation rows).
 */
export async function storeGroupThresholds(
  dir: string,
  input: StoreThresholdsInput,
  opts: ClassifierOptions = {},
): Promise<{ thresholds: GroupThresholds; file: string }> {
  const { texts, labels, groups, ...fit } = input;
  if (labels.length !== texts.length || groups.length !== texts.length)
    throw new ConfigError(
      `texts, labels and groups must have the same length (${texts.length}, ${labels.length}, ${groups.length})`,
      { field: 'labels' },
    );
  const { dir: folder } = await loadArtifact(dir);
  const clf = await Classifier.load(folder, opts);
  try {
    const yTrue = labels.map((l, i) => {
      const k = clf.labels.indexOf(l);
      if (k < 0)
        throw new ConfigError(`validation row ${i + 1} has the label "${l}", which the model does not know`, {
          field: 'labels',
          value: l,
        });
      return k;
    });
    const probabilities = (await clf.predict(texts)).map((p) => p.probabilities);
    const thresholds = fitGroupThresholds({ ...fit, labels: [...clf.labels], probabilities, yTrue, groups });
    return { thresholds, file: await writeGroupThresholds(folder, thresholds) };
  } finally {
    await clf.release();
  }
}
