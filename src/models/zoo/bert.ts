/**
 * BERT-style encoder built with the graph builder, with Hugging Face's parameter names and Optimum's node names,
 * so that checkpoints load by name and adapters/freezing patterns written for HF models apply unchanged.
 *
 * Graph inputs: `input_ids`, `attention_mask`, `token_type_ids` (int64 [batch, seq]). Outputs by task:
 * sequence-classification `logits` [batch, num_labels] (pooler + classifier), token-classification `logits`
 * [batch, seq, num_labels], sentence-embedding `last_hidden_state` [batch, seq, hidden] and `sentence_embedding`
 * [batch, hidden] (attention-mask-weighted mean, as sentence-transformers pools).
 * Classification models put the encoder under `bert.` (BertForSequenceClassification's names); the embedding model
 * has no prefix (BertModel's names). Dropout is left out of the forward graph: the trainer adds it where it trains.
 */
import { ConfigError, ModelFileError } from '../../errors.ts';
import { GraphBuilder } from '../../onnx/builder.ts';
import type { Model, ModelTask } from '../model.ts';
import { ParamContext, type Init, type WeightSource } from './params.ts';

export type HiddenAct = 'gelu' | 'gelu_new' | 'gelu_pytorch_tanh' | 'relu' | 'silu' | 'tanh';
const ACTS: readonly HiddenAct[] = ['gelu', 'gelu_new', 'gelu_pytorch_tanh', 'relu', 'silu', 'tanh'];

/** The BertConfig fields the zoo reads (names as in HF's config.json). */
export interface BertConfig {
  model_type: 'bert';
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  hidden_act: HiddenAct;
  max_position_embeddings: number;
  type_vocab_size: number;
  layer_norm_eps: number;
  hidden_dropout_prob: number;
  attention_probs_dropout_prob: number;
  initializer_range: number;
  pad_token_id: number;
  num_labels: number;
  id2label?: Record<string, string>;
  label2id?: Record<string, number>;
  architectures?: string[];
  [key: string]: unknown;
}

const BERT_DEFAULTS: Omit<BertConfig, 'model_type'> = {
  vocab_size: 30522,
  hidden_size: 768,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  intermediate_size: 3072,
  hidden_act: 'gelu',
  max_position_embeddings: 512,
  type_vocab_size: 2,
  layer_norm_eps: 1e-12,
  hidden_dropout_prob: 0.1,
  attention_probs_dropout_prob: 0.1,
  initializer_range: 0.02,
  pad_token_id: 0,
  num_labels: 2,
};

/**
 * Validates an HF config.json object as a BertConfig, filling HF's defaults. `file` is named in errors.
 * Accepts the fields HF writes (extra keys are kept).
 */
export function parseBertConfig(raw: unknown, file = 'config.json'): BertConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new ModelFileError(`${file}: expected a JSON object`, { file });
  const o = raw as Record<string, unknown>;
  if (o.model_type !== undefined && o.model_type !== 'bert') {
    throw new ModelFileError(`${file}: model_type '${String(o.model_type)}' is not supported (supported: bert)`, {
      file,
      field: 'model_type',
      value: String(o.model_type),
    });
  }
  const cfg: Record<string, unknown> = { ...BERT_DEFAULTS, ...o, model_type: 'bert' };
  const posInt = (k: string, min = 1): number => {
    const v = cfg[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
      throw new ModelFileError(`${file}: field '${k}' must be an integer >= ${min}, found ${JSON.stringify(v)}`, {
        file,
        field: k,
        value: JSON.stringify(v),
      });
    }
    return v;
  };
  const num = (k: string): number => {
    const v = cfg[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new ModelFileError(`${file}: field '${k}' must be a non-negative number, found ${JSON.stringify(v)}`, {
        file,
        field: k,
        value: JSON.stringify(v),
      });
    }
    return v;
  };
  for (const k of [
    'vocab_size',
    'hidden_size',
    'num_attention_heads',
    'intermediate_size',
    'max_position_embeddings',
    'type_vocab_size',
  ])
    posInt(k);
  posInt('num_hidden_layers', 0);
  posInt('pad_token_id', 0);
  for (const k of ['layer_norm_eps', 'hidden_dropout_prob', 'attention_probs_dropout_prob', 'initializer_range'])
    num(k);
  if ((cfg.hidden_size as number) % (cfg.num_attention_heads as number) !== 0) {
    throw new ModelFileError(
      `${file}: hidden_size ${String(cfg.hidden_size)} is not a multiple of num_attention_heads ${String(cfg.num_attention_heads)}`,
      { file, field: 'num_attention_heads' },
    );
  }
  if (!ACTS.includes(cfg.hidden_act as HiddenAct)) {
    throw new ModelFileError(
      `${file}: hidden_act '${String(cfg.hidden_act)}' is not supported (supported: ${ACTS.join(', ')})`,
      { file, field: 'hidden_act', value: String(cfg.hidden_act) },
    );
  }
  // HF derives num_labels from id2label when both are present; id2label wins.
  if (o.id2label !== undefined) {
    if (typeof o.id2label !== 'object' || o.id2label === null)
      throw new ModelFileError(`${file}: field 'id2label' must be an object`, { file, field: 'id2label' });
    const n = Object.keys(o.id2label).length;
    if (o.num_labels !== undefined && o.num_labels !== n) {
      throw new ModelFileError(`${file}: num_labels ${String(o.num_labels)} disagrees with id2label's ${n} entries`, {
        file,
        field: 'num_labels',
      });
    }
    cfg.num_labels = n;
  }
  posInt('num_labels');
  return cfg as BertConfig;
}

/** A small BertConfig for tests and experiments: every field settable, HF defaults otherwise. */
export function bertConfig(overrides: Partial<BertConfig> = {}): BertConfig {
  return parseBertConfig({ model_type: 'bert', ...overrides }, '<bertConfig>');
}

/** Label names of a config (id2label in index order, or LABEL_i as HF names them). */
export function configLabels(cfg: { num_labels: number; id2label?: Record<string, string> }): string[] {
  return Array.from({ length: cfg.num_labels }, (_, i) => cfg.id2label?.[String(i)] ?? `LABEL_${i}`);
}

export type BertTask = Extract<ModelTask, 'sequence-classification' | 'token-classification' | 'sentence-embedding'>;

export interface BuildBertOptions {
  task?: BertTask;
  /** Seed of the random initialisation (default 0). */
  seed?: number;
  /** Values for parameters by module path (checkpoint, or a model being rebuilt); the rest are initialised. */
  weights?: WeightSource;
  /** Trainable flag per parameter (default: all trainable). */
  trainable?: (path: string) => boolean;
  /**
   * 'tailor' (default): opset 17, LayerNormalization nodes, heads as MatMul+Add.
   * 'optimum': the form of Hugging Face Optimum's exports: opset 14, LayerNorm decomposed into
   * ReduceMean/Sub/Pow/Sqrt/Div, pooler and classifier as Gemm(transB=1) over PyTorch-layout weights, and linear
   * weights stored as anonymous `onnx::MatMul_N` initializers (see `anonymizeMatMulWeights`).
   */
  style?: 'tailor' | 'optimum';
}

/** The module-path prefix of the encoder for a task (HF's task models nest BertModel under `bert`). */
export function bertPrefix(task: BertTask): string {
  return task === 'sentence-embedding' ? '' : 'bert.';
}

/** The task of an HF config by its `architectures` entry (default: sentence-embedding for BertModel). */
export function taskFromArchitectures(cfg: { architectures?: string[] }): BertTask {
  const a = cfg.architectures?.[0];
  if (a === 'BertForSequenceClassification') return 'sequence-classification';
  if (a === 'BertForTokenClassification') return 'token-classification';
  return 'sentence-embedding';
}

const F32_MIN = -3.4028234663852886e38;

/** Builds a BERT encoder with the chosen head as a Model. Pure: same config + seed + weights, same graph. */
export function buildBert(config: BertConfig, opts: BuildBertOptions = {}): Model {
  const task = opts.task ?? taskFromArchitectures(config);
  if (!['sequence-classification', 'token-classification', 'sentence-embedding'].includes(task)) {
    throw new ConfigError(
      `BERT has no '${task}' head (heads: sequence-classification, token-classification, sentence-embedding)`,
      { field: 'task', value: task },
    );
  }
  const c = config;
  const H = c.hidden_size;
  const nh = c.num_attention_heads;
  const hd = H / nh;
  const pre = bertPrefix(task);
  const b = new GraphBuilder(`bert_${task}`);
  const ctx = new ParamContext(b, opts.seed ?? 0, opts.weights, opts.trainable);
  const normal: Init = { kind: 'normal', std: c.initializer_range };
  const ones: Init = { kind: 'ones' };
  const zeros: Init = { kind: 'zeros' };

  const inputIds = b.input('input_ids', 'int64', ['batch', 'seq']);
  const attentionMask = b.input('attention_mask', 'int64', ['batch', 'seq']);
  const tokenTypeIds = b.input('token_type_ids', 'int64', ['batch', 'seq']);

  const optimum = opts.style === 'optimum';
  const layerNorm = (x: string, path: string): string => {
    const w = ctx.param(`${path}.weight`, { shape: [H], role: 'norm', init: ones });
    const bias = ctx.param(`${path}.bias`, { shape: [H], role: 'norm', init: zeros });
    return b.scope(path, () => {
      if (!optimum) return b.layerNorm(x, w, bias, -1, c.layer_norm_eps);
      const d = b.sub(x, b.reduceMean(x, [-1]));
      const variance = b.reduceMean(b.pow(d, b.scalar(2)), [-1]);
      const y = b.div(d, b.sqrt(b.add(variance, b.scalar(c.layer_norm_eps))));
      return b.add(b.mul(y, w), bias);
    });
  };
  // Optimum exports the pooler and classifier as Gemm over nn.Linear's [out, in] weight.
  const headLinear = (x: string, path: string, inF: number, outF: number): string => {
    if (!optimum) return ctx.linear(x, path, inF, outF, normal);
    const w = ctx.param(`${path}.weight`, { shape: [outF, inF], role: 'weight', layout: 'out_in', init: normal });
    const bias = ctx.param(`${path}.bias`, { shape: [outF], role: 'bias', init: zeros });
    return b.scope(path, () => b.gemm(x, w, bias, { transB: 1 }));
  };

  // ---- embeddings ----
  const emb = `${pre}embeddings`;
  const wordW = ctx.param(`${emb}.word_embeddings.weight`, {
    shape: [c.vocab_size, H],
    role: 'embedding',
    init: normal,
    fix: (v) => {
      if (c.pad_token_id < c.vocab_size) v.fill(0, c.pad_token_id * H, (c.pad_token_id + 1) * H);
    },
  });
  const posW = ctx.param(`${emb}.position_embeddings.weight`, {
    shape: [c.max_position_embeddings, H],
    role: 'embedding',
    init: normal,
  });
  const ttW = ctx.param(`${emb}.token_type_embeddings.weight`, {
    shape: [c.type_vocab_size, H],
    role: 'embedding',
    init: normal,
  });
  let x = b.scope(`${emb}.word_embeddings`, () => b.gather(wordW, inputIds));
  const tt = b.scope(`${emb}.token_type_embeddings`, () => b.gather(ttW, tokenTypeIds));
  x = b.scope(emb, () => b.add(x, tt));
  // Rows [0, seq) of the position table, gathered by Range(0, seq) so the gradient is an ordinary Gather's
  // (a Slice with a runtime end has no standard-op gradient); seq comes from the input's runtime shape.
  const pos = b.scope(`${emb}.position_embeddings`, () => {
    const seq = b.op('Gather', [b.op('Shape', [inputIds]), b.scalar(1, 'int64')], { axis: 0 });
    return b.gather(posW, b.op('Range', [b.scalar(0, 'int64'), seq, b.scalar(1, 'int64')]));
  });
  x = b.scope(emb, () => b.add(x, pos));
  x = layerNorm(x, `${emb}.LayerNorm`);

  // ---- extended attention mask: 0 where attended, float32 min where masked (HF's convention) ----
  const ext = b.scope(`${pre}get_extended_attention_mask`, () => {
    const m = b.unsqueeze(b.cast(attentionMask, 'float32'), [1, 2]);
    return b.mul(b.sub(b.scalar(1), m), b.scalar(F32_MIN));
  });

  const act = (v: string): string => {
    switch (c.hidden_act) {
      case 'relu':
        return b.relu(v);
      case 'tanh':
        return b.tanh(v);
      case 'silu':
        return b.mul(v, b.sigmoid(v));
      case 'gelu': {
        // 0.5·x·(1 + erf(x/√2)), Optimum's exact-GELU form.
        const e = b.erf(b.div(v, b.scalar(Math.SQRT2)));
        return b.mul(b.mul(v, b.add(e, b.scalar(1))), b.scalar(0.5));
      }
      default: {
        // tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
        const cube = b.mul(b.mul(v, v), v);
        const inner = b.mul(b.add(v, b.mul(cube, b.scalar(0.044715))), b.scalar(Math.sqrt(2 / Math.PI)));
        return b.mul(b.mul(v, b.add(b.tanh(inner), b.scalar(1))), b.scalar(0.5));
      }
    }
  };

  // ---- encoder layers ----
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const L = `${pre}encoder.layer.${l}`;
    const heads = (path: string, perm: number[]): string => {
      const y = ctx.linear(x, path, H, H, normal);
      return b.scope(path, () => b.transpose(b.reshape(y, [0, 0, nh, hd]), perm));
    };
    const q = heads(`${L}.attention.self.query`, [0, 2, 1, 3]);
    const k = heads(`${L}.attention.self.key`, [0, 2, 3, 1]);
    const v = heads(`${L}.attention.self.value`, [0, 2, 1, 3]);
    const context = b.scope(`${L}.attention.self`, () => {
      const scores = b.add(b.div(b.matmul(q, k), b.scalar(Math.sqrt(hd))), ext);
      const probs = b.softmax(scores, -1);
      return b.reshape(b.transpose(b.matmul(probs, v), [0, 2, 1, 3]), [0, 0, H]);
    });
    let a = ctx.linear(context, `${L}.attention.output.dense`, H, H, normal);
    a = b.scope(`${L}.attention.output`, () => b.add(a, x));
    a = layerNorm(a, `${L}.attention.output.LayerNorm`);
    let i = ctx.linear(a, `${L}.intermediate.dense`, H, c.intermediate_size, normal);
    i = b.scope(`${L}.intermediate.intermediate_act_fn`, () => act(i));
    let o = ctx.linear(i, `${L}.output.dense`, c.intermediate_size, H, normal);
    o = b.scope(`${L}.output`, () => b.add(o, a));
    x = layerNorm(o, `${L}.output.LayerNorm`);
  }

  // ---- heads ----
  if (task === 'sequence-classification') {
    const first = b.scope(`${pre}pooler`, () =>
      b.squeeze(b.op('Slice', [x, b.ints([0]), b.ints([1]), b.ints([1])]), [1]),
    );
    const pooled = b.scope(`${pre}pooler.activation`, () => b.tanh(headLinear(first, `${pre}pooler.dense`, H, H)));
    b.output(b.identity(headLinear(pooled, 'classifier', H, c.num_labels)), 'float32', ['batch', c.num_labels]);
    renameLastOutput(b, 'logits');
  } else if (task === 'token-classification') {
    b.output(b.identity(ctx.linear(x, 'classifier', H, c.num_labels, normal)), 'float32', [
      'batch',
      'seq',
      c.num_labels,
    ]);
    renameLastOutput(b, 'logits');
  } else {
    const hidden = b.identity(x);
    b.output(hidden, 'float32', ['batch', 'seq', H]);
    renameLastOutput(b, 'last_hidden_state');
    const pooled = b.scope('pooling', () => {
      const m = b.unsqueeze(b.cast(attentionMask, 'float32'), [2]);
      const summed = b.reduceSum(b.mul(x, m), [1], false);
      const count = b.op('Max', [b.reduceSum(m, [1], false), b.scalar(1e-9)]);
      return b.div(summed, count);
    });
    b.output(pooled, 'float32', ['batch', H]);
    renameLastOutput(b, 'sentence_embedding');
  }

  const hasHead = task !== 'sentence-embedding';
  return {
    architecture: 'bert',
    task,
    graph: b.graph,
    params: ctx.params,
    config: { ...c },
    ...(hasHead ? { labels: configLabels(c) } : {}),
    source: { kind: 'zoo' },
    ...(optimum ? { opsets: [{ domain: '', version: 14 }] } : {}),
    ...(ctx.newlyInitialized.length ? { newlyInitialized: ctx.newlyInitialized } : {}),
  };
}

/**
 * Renames the value just marked as output (an Identity's output) to a stable public name such as `logits`;
 * the builder names values after nodes, but callers feed and fetch by HF's output names.
 */
export function renameLastOutput(b: GraphBuilder, name: string): void {
  const g = b.graph;
  const out = g.outputs[g.outputs.length - 1];
  const producer = g.nodes.find((n) => n.outputs.includes(out.name));
  if (!producer) throw new ConfigError(`output '${out.name}' has no producing node`);
  const claimed = b.uniqueName(name);
  if (claimed !== name) throw new ConfigError(`output name '${name}' is already used in the graph`);
  producer.outputs = producer.outputs.map((o) => (o === out.name ? name : o));
  for (const n of g.nodes) n.inputs = n.inputs.map((i) => (i === out.name ? name : i));
  out.name = name;
}
