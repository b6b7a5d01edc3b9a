/**
 * A BERT-style encoder classifier built with GraphBuilder, for the benchmark and the trainer's end-to-end test:
 * word + position embeddings, LayerNorm, N post-LN encoder layers (multi-head self-attention with an additive padding
 * mask, GELU FFN), masked mean pooling and a linear classifier. Parameter names follow Hugging Face's module paths
 * (`encoder.layer.0.attention.self.query.weight`), weights in ONNX's [in, out] layout. Optional rank-r LoRA on the
 * attention projections, written as y += ((x·Aᵀ)·(alpha/r))·Bᵀ with A [r, in] and B [out, r] as PEFT stores them.
 */
import { GraphBuilder } from '../src/onnx/builder.ts';
import type { Graph } from '../src/onnx/ir.ts';
import { TrainRng } from '../src/util/rng.ts';

export interface EncoderConfig {
  vocab: number;
  hidden: number;
  heads: number;
  ffn: number;
  layers: number;
  maxSeq: number;
  classes: number;
  /** Dropout ratio after embeddings, attention output and FFN (0: no Dropout nodes). */
  dropout?: number;
  lora?: { rank: number; alpha: number };
  seed?: number;
}

export const LORA_TARGETS = [
  'attention.self.query',
  'attention.self.key',
  'attention.self.value',
  'attention.output.dense',
];

/** Builds the classifier. Inputs: input_ids int64 [batch, seq], attention_mask float32 [batch, seq]; output logits. */
export function buildEncoderClassifier(cfg: EncoderConfig): Graph {
  const rng = new TrainRng(cfg.seed ?? 0);
  const b = new GraphBuilder('encoder_classifier');
  const H = cfg.hidden;
  const dh = H / cfg.heads;
  const normal = (n: number, std: number): Float32Array => Float32Array.from({ length: n }, () => rng.normal() * std);
  const param = (name: string, dims: number[], std = 0.02): string =>
    b.initializer(
      name,
      'float32',
      normal(
        dims.reduce((a, c) => a * c, 1),
        std,
      ),
      dims,
    );
  const fill = (name: string, dims: number[], v: number): string =>
    b.initializer(name, 'float32', new Float32Array(dims.reduce((a, c) => a * c, 1)).fill(v), dims);
  const dropout = (x: string): string =>
    cfg.dropout ? b.op('Dropout', [x, b.scalar(cfg.dropout), b.constant('bool', Uint8Array.of(1), [])]) : x;
  const linear = (x: string, path: string, inF: number, outF: number): string => {
    let y = b.add(b.matmul(x, param(`${path}.weight`, [inF, outF])), fill(`${path}.bias`, [outF], 0));
    if (cfg.lora && LORA_TARGETS.some((t) => path.endsWith(t))) {
      const r = cfg.lora.rank;
      // PEFT's init: A kaiming-uniform-like, B zeros (the branch starts as a no-op).
      const A = b.initializer(
        `${path}.lora_A.weight`,
        'float32',
        Float32Array.from({ length: r * inF }, () => (rng.next() * 2 - 1) / Math.sqrt(inF)),
        [r, inF],
      );
      const B = fill(`${path}.lora_B.weight`, [outF, r], 0);
      // The scale multiplies the rank-r intermediate ([tokens, r]) rather than the [tokens, out] branch output: the
      // same product, 1/(out/r) of the elementwise work forward and backward.
      const down = b.mul(b.matmul(x, b.transpose(A, [1, 0])), b.scalar(cfg.lora.alpha / r));
      y = b.add(y, b.matmul(down, b.transpose(B, [1, 0])));
    }
    return y;
  };
  const layerNorm = (x: string, path: string): string =>
    b.layerNorm(x, fill(`${path}.weight`, [H], 1), fill(`${path}.bias`, [H], 0), -1, 1e-12);
  const gelu = (x: string): string =>
    b.mul(b.mul(x, b.scalar(0.5)), b.add(b.erf(b.mul(x, b.scalar(Math.SQRT1_2))), b.scalar(1)));

  const ids = b.input('input_ids', 'int64', ['batch', 'seq']);
  const mask = b.input('attention_mask', 'float32', ['batch', 'seq']);
  const seqLen = b.op('Shape', [ids], { start: 1, end: 2 });
  const positions = b.op('Range', [b.scalar(0, 'int64'), b.squeeze(seqLen, [0]), b.scalar(1, 'int64')]);
  let x = b.scope('embeddings', () => {
    const words = b.gather(param('embeddings.word_embeddings.weight', [cfg.vocab, H]), ids);
    const pos = b.gather(param('embeddings.position_embeddings.weight', [cfg.maxSeq, H]), positions);
    return dropout(layerNorm(b.add(words, pos), 'embeddings.LayerNorm'));
  });
  // Additive mask: 0 where attended, -10000 on padding, broadcast over heads and query positions.
  const maskAdd = b.mul(b.sub(b.unsqueeze(mask, [1, 2]), b.scalar(1)), b.scalar(10000));
  for (let l = 0; l < cfg.layers; l++) {
    const p = `encoder.layer.${l}`;
    x = b.scope(p, () => {
      const heads = (t: string, perm: number[]): string => b.transpose(b.reshape(t, [0, 0, cfg.heads, dh]), perm);
      const q = heads(linear(x, `${p}.attention.self.query`, H, H), [0, 2, 1, 3]);
      const k = heads(linear(x, `${p}.attention.self.key`, H, H), [0, 2, 3, 1]);
      const v = heads(linear(x, `${p}.attention.self.value`, H, H), [0, 2, 1, 3]);
      const scores = b.add(b.mul(b.matmul(q, k), b.scalar(1 / Math.sqrt(dh))), maskAdd);
      const ctx = b.reshape(b.transpose(b.matmul(b.softmax(scores, -1), v), [0, 2, 1, 3]), [0, 0, H]);
      const attn = layerNorm(
        b.add(x, dropout(linear(ctx, `${p}.attention.output.dense`, H, H))),
        `${p}.attention.output.LayerNorm`,
      );
      const ff = linear(gelu(linear(attn, `${p}.intermediate.dense`, H, cfg.ffn)), `${p}.output.dense`, cfg.ffn, H);
      return layerNorm(b.add(attn, dropout(ff)), `${p}.output.LayerNorm`);
    });
  }
  const m3 = b.unsqueeze(mask, [2]);
  const pooled = b.div(b.reduceSum(b.mul(x, m3), [1], false), b.reduceSum(m3, [1], false));
  const logits = b.scope(
    'classifier',
    () =>
      b.node(
        'Add',
        [b.matmul(pooled, param('classifier.weight', [H, cfg.classes])), fill('classifier.bias', [cfg.classes], 0)],
        {},
        { outputs: ['logits'] },
      )[0],
  );
  b.output(logits, 'float32', ['batch', cfg.classes]);
  return b.graph;
}

/** Cross-entropy of `logits` against int64 input `labels` (mean over the batch), as a Trainer loss. */
export function classificationLoss(b: GraphBuilder): string {
  const labels = b.input('labels', 'int64', ['batch']);
  return b.op('SoftmaxCrossEntropyLoss', ['logits', labels], { reduction: 'mean' });
}
