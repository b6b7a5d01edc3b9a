/**
 * Swappable modules: replace a head, drop or add encoder layers, (freeze/unfreeze live in model.ts). Each is a
 * pure function Model -> Model. Zoo-built models (zoo or safetensors route) are rebuilt from their config with the
 * kept weights carried over by module path, so the result is the same graph a fresh build would give; an imported
 * ONNX graph gets its new head appended to `last_hidden_state` by graph surgery.
 */
import { ConfigError } from '../errors.ts';
import { GraphBuilder } from '../onnx/builder.ts';
import { pruneDead } from '../onnx/graph.ts';
import { cloneGraph } from '../onnx/ir.ts';
import { paramValues, type Model, type Parameter } from './model.ts';
import {
  bertPrefix,
  buildBert,
  parseBertConfig,
  renameLastOutput,
  type BertConfig,
  type BertTask,
} from './zoo/bert.ts';
import { buildCnn, type CnnConfig } from './zoo/cnn.ts';
import { buildMlp, type MlpConfig } from './zoo/mlp.ts';
import { ParamContext, weightsFrom } from './zoo/params.ts';

type Rename = (newPath: string) => string | undefined;

function isZooBuilt(model: Model): boolean {
  return model.source.kind === 'zoo' || model.source.kind === 'safetensors';
}

/** Rebuilds a zoo-built model from `config`, taking each parameter from `rename(path)` of the old model when shapes agree. */
function rebuild(model: Model, config: Record<string, unknown>, rename: Rename, seed: number, task?: BertTask): Model {
  const values = (p: Parameter): Float32Array => paramValues(model, p.path) as Float32Array;
  const weights = weightsFrom(model.params, values, rename);
  const trainable = (path: string): boolean => {
    const old = rename(path);
    const p = old === undefined ? undefined : model.params.get(old);
    return p ? p.trainable : true;
  };
  let out: Model;
  if (model.architecture === 'bert')
    out = buildBert(parseBertConfig(config, '<model config>'), {
      task: task ?? (model.task as BertTask),
      seed,
      weights,
      trainable,
    });
  else if (model.architecture === 'mlp') out = buildMlp(config as unknown as MlpConfig, { seed, weights, trainable });
  else if (model.architecture === 'cnn') out = buildCnn(config as unknown as CnnConfig, { seed, weights, trainable });
  else throw new ConfigError(`cannot rebuild a '${model.architecture}' model`, { value: model.architecture });
  return { ...out, source: model.source, ...(model.tokenizer ? { tokenizer: model.tokenizer } : {}) };
}

export interface HeadOptions {
  /** New task (BERT: sequence-classification, token-classification, sentence-embedding); default: the current one. */
  task?: BertTask;
  /** Label names; their count sets the head's width. */
  labels?: string[];
  /** Width of the head when no label names are given. */
  numLabels?: number;
  /** Seed of the new head's initialisation (default 0). */
  seed?: number;
}

function headPath(model: Model): RegExp {
  if (model.architecture === 'cnn') return /^fc\./;
  return /^classifier\./;
}

/** Replaces the model's head with a freshly initialised one of the given width/task; the body's weights are kept. */
export function replaceHead(model: Model, opts: HeadOptions): Model {
  const labels =
    opts.labels ??
    (opts.numLabels !== undefined ? Array.from({ length: opts.numLabels }, (_, i) => `LABEL_${i}`) : model.labels);
  const numLabels = labels?.length ?? 2;
  if (numLabels < 1) throw new ConfigError('a head needs at least one label', { field: 'labels' });
  const id2label = labels ? Object.fromEntries(labels.map((l, i) => [String(i), l])) : undefined;
  const seed = opts.seed ?? 0;
  if (!isZooBuilt(model))
    return appendHeadToOnnx(model, opts.task ?? 'sequence-classification', numLabels, labels, seed);
  const head = headPath(model);
  if (model.architecture === 'bert') {
    const task = opts.task ?? (model.task as BertTask);
    const oldPre = bertPrefix(model.task as BertTask);
    const newPre = bertPrefix(task);
    const rename: Rename = (p) => {
      if (head.test(p)) return undefined;
      return p.startsWith(newPre) ? oldPre + p.slice(newPre.length) : undefined;
    };
    const cfg = {
      ...model.config,
      num_labels: numLabels,
      id2label,
      label2id: labels ? Object.fromEntries(labels.map((l, i) => [l, i])) : undefined,
    };
    return rebuild(model, cfg, rename, seed, task);
  }
  const cfg = { ...model.config, num_labels: numLabels, id2label };
  return rebuild(model, cfg, (p) => (head.test(p) ? undefined : p), seed);
}

function bertLayers(model: Model): { cfg: BertConfig; pre: string } {
  if (model.architecture !== 'bert')
    throw new ConfigError(`layers can be dropped or added only in BERT encoders, not '${model.architecture}'`, {
      value: model.architecture,
    });
  if (!isZooBuilt(model)) {
    throw new ConfigError(
      'dropping or adding layers needs a zoo-built model; load the Hugging Face folder from model.safetensors rather than its ONNX export',
      { field: 'source' },
    );
  }
  return { cfg: model.config as BertConfig, pre: bertPrefix(model.task as BertTask) };
}

/** Removes the encoder layers at `indices` (0-based); the remaining layers keep their weights and are renumbered. */
export function dropLayers(model: Model, indices: readonly number[]): Model {
  const { cfg, pre } = bertLayers(model);
  const n = cfg.num_hidden_layers;
  for (const i of indices) {
    if (!Number.isInteger(i) || i < 0 || i >= n)
      throw new ConfigError(`layer index ${i} is out of range: the encoder has layers 0..${n - 1}`, {
        field: 'indices',
        value: String(i),
      });
  }
  const drop = new Set(indices);
  const kept = Array.from({ length: n }, (_, i) => i).filter((i) => !drop.has(i));
  const re = new RegExp(`^${pre.replace('.', '\\.')}encoder\\.layer\\.(\\d+)\\.`);
  const rename: Rename = (p) => {
    const m = re.exec(p);
    return m ? p.replace(re, `${pre}encoder.layer.${kept[Number(m[1])]}.`) : p;
  };
  return rebuild(model, { ...cfg, num_hidden_layers: kept.length }, rename, 0);
}

/** Keeps the bottom `n` encoder layers (the usual way to shrink a pretrained encoder). */
export function keepLayers(model: Model, n: number): Model {
  const { cfg } = bertLayers(model);
  if (!Number.isInteger(n) || n < 0 || n > cfg.num_hidden_layers) {
    throw new ConfigError(`cannot keep ${n} layers of an encoder with ${cfg.num_hidden_layers}`, {
      field: 'n',
      value: String(n),
    });
  }
  return dropLayers(
    model,
    Array.from({ length: cfg.num_hidden_layers - n }, (_, i) => n + i),
  );
}

/** Appends `count` freshly initialised encoder layers on top (seeded), keeping every existing weight. */
export function addLayers(model: Model, count: number, seed = 0): Model {
  const { cfg } = bertLayers(model);
  if (!Number.isInteger(count) || count < 1)
    throw new ConfigError(`layer count must be a positive integer, found ${count}`, { field: 'count' });
  const n = cfg.num_hidden_layers;
  const re = /encoder\.layer\.(\d+)\./;
  return rebuild(
    model,
    { ...cfg, num_hidden_layers: n + count },
    (p) => {
      const m = re.exec(p);
      return m && Number(m[1]) >= n ? undefined : p;
    },
    seed,
  );
}

/** Graph surgery for imported encoders: a new head on `last_hidden_state`, everything after it dropped. */
function appendHeadToOnnx(
  model: Model,
  task: BertTask,
  numLabels: number,
  labels: string[] | undefined,
  seed: number,
): Model {
  if (task === 'sentence-embedding')
    throw new ConfigError(
      'an imported ONNX encoder already yields embeddings; choose a classification task for its new head',
      { field: 'task' },
    );
  if (!model.graph.outputs.some((o) => o.name === 'last_hidden_state')) {
    throw new ConfigError(
      `replacing the head of an imported ONNX graph needs a 'last_hidden_state' output (a feature-extraction export); this graph has [${model.graph.outputs.map((o) => o.name).join(', ')}]`,
      { field: 'outputs' },
    );
  }
  const H = Number((model.config as { hidden_size?: number }).hidden_size);
  const g = cloneGraph(model.graph);
  g.outputs = g.outputs.filter((o) => o.name === 'last_hidden_state');
  const pruned = pruneDead(g);
  const b = new GraphBuilder(pruned);
  const std = Number((model.config as { initializer_range?: number }).initializer_range ?? 0.02);
  const ctx = new ParamContext(b, seed);
  const hidden = 'last_hidden_state';
  let logitsShape: (string | number)[];
  let y: string;
  if (task === 'sequence-classification') {
    const first = b.scope('pooler', () =>
      b.squeeze(b.op('Slice', [hidden, b.ints([0]), b.ints([1]), b.ints([1])]), [1]),
    );
    const pooled = b.scope('pooler.activation', () =>
      b.tanh(ctx.linear(first, 'pooler.dense', H, H, { kind: 'normal', std })),
    );
    y = ctx.linear(pooled, 'classifier', H, numLabels, { kind: 'normal', std });
    logitsShape = ['batch', numLabels];
  } else {
    y = ctx.linear(hidden, 'classifier', H, numLabels, { kind: 'normal', std });
    logitsShape = ['batch', 'seq', numLabels];
  }
  pruned.outputs = [];
  b.output(b.identity(y), 'float32', logitsShape);
  renameLastOutput(b, 'logits');
  const params = new Map([...model.params].filter(([, p]) => pruned.initializers.has(p.initializer)));
  for (const [k, p] of ctx.params) params.set(k, p);
  return {
    ...model,
    task,
    graph: pruned,
    params,
    labels: labels ?? Array.from({ length: numLabels }, (_, i) => `LABEL_${i}`),
    config: { ...model.config, num_labels: numLabels },
    newlyInitialized: [...ctx.params.keys()],
  };
}
