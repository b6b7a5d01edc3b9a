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
  ) {}

  /** Loads a classifier folder written by Tailor (a `customize`, `quantize` or `distill` output, or its model/). */
  static async load(dir: string, opts: ClassifierOptions = {}): Promise<Classifier> {
    const { model, info } = await loadArtifact(dir);
    return Classifier.fromModel(model, { ...opts, maxLength: opts.maxLength ?? info.maxLength }, info);
  }

  /** Wraps an in-memory classification model (it must have labels and a tokenizer). */
  static async fromModel(model: Model, opts: ClassifierOptions = {}, info?: ArtifactInfo): Promise<Classifier> {
    const labels = model.labels;
    if (!labels?.length) throw new ConfigError('the model has no labels: it is not a classifier', { field: 'labels' });
    if (!model.tokenizer)
      throw new ConfigError('the model has no tokenizer, so it cannot read text', { field: 'tokenizer' });
    const session = await Session.create(toOnnxModel(model), {
      providers: opts.providers,
      intraOpThreads: opts.intraOpThreads,
      label: `${model.architecture} classifier`,
    });
    return new Classifier(model, labels, info, session, opts);
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

  /** The label and class probabilities of each text, in input order. */
  async predict(texts: readonly string[]): Promise<Prediction[]> {
    const probs = softmaxRows(await this.logits(texts), this.labels.length);
    return probs.map((p) => {
      let best = 0;
      for (let j = 1; j < p.length; j++) if (p[j] > p[best]) best = j;
      return { label: this.labels[best], confidence: p[best], probabilities: p };
    });
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
