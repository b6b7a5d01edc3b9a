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
 *
 * A folder with an abstain rule (abstain.json, `storeAbstainRule` or `tailor customize --abstain`) answers
 * `OUT_OF_SCOPE` for the texts the rule rejects.
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
import { abstainedLabel, fitAbstainRule, type AbstainRule, type FitAbstainInput } from '../eval/abstain.ts';
import { readAbstainRule, writeAbstainRule } from './abstain.ts';

export interface Prediction {
  /** The predicted label, or `OUT_OF_SCOPE` (eval/abstain.ts) when the model's abstain rule rejects the text. */
  label: string;
  /** Probability of the predicted label (of a rejected text: of the label it would have had). */
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
    /** The abstain rule stored with the model (abstain.json): `predict` answers OUT_OF_SCOPE for rows it rejects. */
    readonly abstain?: AbstainRule,
  ) {}

  /** Loads a classifier folder written by Tailor (a `customize`, `quantize` or `distill` output, or its model/). */
  static async load(dir: string, opts: ClassifierOptions = {}): Promise<Classifier> {
    return Classifier.fromArtifact(await loadArtifact(dir), opts);
  }

  /** Wraps a classifier folder already read by `loadArtifact`, with the thresholds and abstain rule stored in it. */
  static async fromArtifact(
    artifact: { model: Model; info: ArtifactInfo; dir: string },
    opts: ClassifierOptions = {},
  ): Promise<Classifier> {
    const { model, info, dir } = artifact;
    const thresholds = await readGroupThresholds(dir, info.labels);
    const abstain = await readAbstainRule(dir, info.labels);
    return Classifier.fromModel(
      model,
      { ...opts, maxLength: opts.maxLength ?? info.maxLength },
      info,
      thresholds,
      abstain,
    );
  }

  /** Wraps an in-memory classification model (it must have labels and a tokenizer). */
  static async fromModel(
    model: Model,
    opts: ClassifierOptions = {},
    info?: ArtifactInfo,
    groupThresholds?: GroupThresholds,
    abstain?: AbstainRule,
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
    if (abstain && abstain.spec.labels.join('\u0000') !== labels.join('\u0000'))
      throw new ConfigError(`the abstain rule's labels differ from the model's`, { field: 'abstain.labels' });
    return new Classifier(model, labels, info, session, opts, groupThresholds, abstain);
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
   * The probabilities are the model's either way. With an abstain rule stored with the model, a text it rejects gets
   * the label `OUT_OF_SCOPE` (whatever the groups), with its confidence and probabilities still returned.
   */
  async predict(texts: readonly string[], options: { groups?: readonly string[] } = {}): Promise<Prediction[]> {
    const groups = options.groups;
    if (groups && groups.length !== texts.length)
      throw new ConfigError(`groups has ${groups.length} entries but there are ${texts.length} texts`, {
        field: 'groups',
        value: String(groups.length),
      });
    const k = this.labels.length;
    const logits = await this.logits(texts);
    const probs = softmaxRows(logits, k);
    const t = groups ? this.groupThresholds : undefined;
    return probs.map((p, i) => {
      let best = 0;
      if (t) best = t.apply(p, groups![i]);
      else for (let j = 1; j < p.length; j++) if (p[j] > p[best]) best = j;
      const label = abstainedLabel(this.labels[best], logits.subarray(i * k, (i + 1) * k), this.abstain);
      return { label, confidence: p[best], probabilities: p };
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

/** What `storeAbstainRule` fits on: in-scope validation texts with their labels, optional out-of-scope texts. */
export interface StoreAbstainInput extends Pick<
  FitAbstainInput,
  'score' | 'temperature' | 'targetFrr' | 'targetPrecision' | 'outOfScopeClass'
> {
  /** In-scope validation texts (their labels are checked against the model's, so a wrong file fails loudly). */
  texts: readonly string[];
  labels: readonly string[];
  /** Out-of-scope validation texts (needed for `targetPrecision`). */
  outOfScopeTexts?: readonly string[];
}

/**
 * Fits an abstain rule (`fitAbstainRule`) on the classifier folder `dir`'s own validation logits and stores it in the
 * folder as abstain.json, replacing any there; `Classifier.load` then answers OUT_OF_SCOPE for the rows it rejects.
 * Returns it (its `spec.validation` has the false-rejection rate and, with out-of-scope texts, their recall).
 */
export async function storeAbstainRule(
  dir: string,
  input: StoreAbstainInput,
  opts: ClassifierOptions = {},
): Promise<{ rule: AbstainRule; file: string }> {
  const { texts, labels, outOfScopeTexts, ...fit } = input;
  if (labels.length !== texts.length)
    throw new ConfigError(`texts and labels must have the same length (${texts.length}, ${labels.length})`, {
      field: 'labels',
    });
  const artifact = await loadArtifact(dir);
  const clf = await Classifier.fromModel(artifact.model, {
    ...opts,
    maxLength: opts.maxLength ?? artifact.info.maxLength,
  });
  try {
    labels.forEach((l, i) => {
      if (!clf.labels.includes(l))
        throw new ConfigError(`validation row ${i + 1} has the label "${l}", which the model does not know`, {
          field: 'labels',
          value: l,
        });
    });
    const k = clf.labels.length;
    const rows = async (t: readonly string[]): Promise<Float32Array[]> => {
      const l = await clf.logits(t);
      return Array.from({ length: t.length }, (_, i) => l.subarray(i * k, (i + 1) * k));
    };
    const rule = fitAbstainRule({
      ...fit,
      labels: clf.labels,
      inScope: await rows(texts),
      ...(outOfScopeTexts?.length ? { outOfScope: await rows(outOfScopeTexts) } : {}),
    });
    return { rule, file: await writeAbstainRule(artifact.dir, rule) };
  } finally {
    await clf.release();
  }
}
