/**
 * Weight-only INT4 with ORT's com.microsoft MatMulNBits (bits 4). Layout, per ORT's contrib-op schema:
 * - B: uint8 [N, k_blocks, block_size / 2]: column n of the [K, N] weight, cut into blocks of `block_size` along K
 *   (the last block zero-padded); within a block, element 2i sits in the low nibble of byte i and element 2i+1 in
 *   the high nibble.
 * - scales: float32 [N, k_blocks] (one per block).
 * - zero_points (asymmetric only): uint8 [N, ceil(k_blocks / 2)], two blocks per byte, low nibble first. Without
 *   it ORT uses the zero point 8, which is the symmetric form.
 * Dequantized weight: W[k, n] = (q - zp) · scale[n, k / block_size].
 */
import { ConfigError } from '../../errors.ts';
import type { ModelProto } from '../../onnx/ir.ts';
import {
  defaultOpset,
  dropUnusedInitializers,
  ensureOpsets,
  f32Tensor,
  mkNode,
  replaceNode,
  roundHalfEven,
  scopePrefix,
  quantizeEmbeddingTables,
  selectMatMuls,
  uint8Tensor,
  weightValues,
  workingCopy,
  type SelectOptions,
} from './common.ts';
import type { QuantizeResult } from './dynamic.ts';

export interface Int4Options extends SelectOptions {
  /** Power of two >= 16. Default 32. */
  blockSize?: number;
  /** Symmetric (zero point 8, scale = absmax / 7) or asymmetric (per-block min/max, zero point stored). Default true. */
  symmetric?: boolean;
  /**
   * MatMulNBits' accuracy_level: 0 computes in float (dequantize then multiply); 4 lets ORT quantize the activation
   * blockwise to int8 and use integer dot products (faster on VNNI, slightly less exact). Default 4.
   */
  accuracyLevel?: 0 | 1 | 2 | 3 | 4;
  /** Also store embedding tables as int8 with per-row scales (default true). */
  embeddings?: boolean;
}

export interface PackedInt4 {
  /** [N, kBlocks, blockSize / 2] */
  packed: Uint8Array;
  /** [N, kBlocks] */
  scales: Float32Array;
  /** [N, ceil(kBlocks / 2)] when asymmetric. */
  zeroPoints?: Uint8Array;
  kBlocks: number;
}

/** Packs a row-major [K, N] float weight into MatMulNBits' 4-bit layout. */
export function packInt4(w: Float32Array, k: number, n: number, blockSize = 32, symmetric = true): PackedInt4 {
  if (blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) {
    throw new ConfigError(`INT4 block size must be a power of two >= 16, got ${blockSize}`, {
      field: 'blockSize',
      value: String(blockSize),
    });
  }
  const kBlocks = Math.ceil(k / blockSize);
  const blob = blockSize / 2;
  const packed = new Uint8Array(n * kBlocks * blob);
  const scales = new Float32Array(n * kBlocks);
  const zpStride = Math.ceil(kBlocks / 2);
  const zeroPoints = symmetric ? undefined : new Uint8Array(n * zpStride);
  const codes = new Uint8Array(blockSize);
  for (let col = 0; col < n; col++) {
    for (let b = 0; b < kBlocks; b++) {
      const k0 = b * blockSize;
      const k1 = Math.min(k, k0 + blockSize);
      let lo = 0,
        hi = 0,
        absmax = 0;
      for (let r = k0; r < k1; r++) {
        const v = w[r * n + col];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
        if (Math.abs(v) > absmax) absmax = Math.abs(v);
      }
      let scale: number, zp: number;
      if (symmetric) {
        scale = absmax > 0 ? absmax / 7 : 1;
        zp = 8;
      } else {
        // lo <= 0 <= hi (both start at 0), so zero is exactly representable, as ORT's quantizer also ensures.
        scale = hi > lo ? (hi - lo) / 15 : 1;
        zp = Math.max(0, Math.min(15, roundHalfEven(-lo / scale)));
      }
      scale = Math.fround(scale);
      scales[col * kBlocks + b] = scale;
      codes.fill(zp);
      for (let r = k0; r < k1; r++)
        codes[r - k0] = Math.max(0, Math.min(15, roundHalfEven(w[r * n + col] / scale) + zp));
      const base = (col * kBlocks + b) * blob;
      for (let i = 0; i < blob; i++) packed[base + i] = codes[2 * i] | (codes[2 * i + 1] << 4);
      if (zeroPoints) {
        const j = col * zpStride + (b >> 1);
        zeroPoints[j] |= (b & 1) === 0 ? zp : zp << 4;
      }
    }
  }
  return { packed, scales, ...(zeroPoints ? { zeroPoints } : {}), kBlocks };
}

/** The [K, N] float weight that MatMulNBits multiplies by, decoded from the packed bytes. */
export function unpackInt4(p: PackedInt4, k: number, n: number, blockSize = 32): Float32Array {
  const out = new Float32Array(k * n);
  const blob = blockSize / 2;
  const zpStride = Math.ceil(p.kBlocks / 2);
  for (let col = 0; col < n; col++) {
    for (let r = 0; r < k; r++) {
      const b = Math.floor(r / blockSize);
      const within = r - b * blockSize;
      const byte = p.packed[(col * p.kBlocks + b) * blob + (within >> 1)];
      const q = (within & 1) === 0 ? byte & 0x0f : byte >> 4;
      let zp = 8;
      if (p.zeroPoints) {
        const zb = p.zeroPoints[col * zpStride + (b >> 1)];
        zp = (b & 1) === 0 ? zb & 0x0f : zb >> 4;
      }
      out[r * n + col] = (q - zp) * p.scales[col * p.kBlocks + b];
    }
  }
  return out;
}

/** Weight-only INT4 (MatMulNBits) for the selected MatMuls. Pure: the input model is not modified. */
export function quantizeInt4(input: ModelProto, opts: Int4Options = {}): QuantizeResult {
  const blockSize = opts.blockSize ?? 32;
  const symmetric = opts.symmetric ?? true;
  const accuracyLevel = opts.accuracyLevel ?? 4;
  const { model, graph, fresh } = workingCopy(input);
  const { sites, skipped } = selectMatMuls(graph, { minWeightElements: 4096, ...opts });
  const quantized: QuantizeResult['quantized'] = [];
  for (const s of sites) {
    const p = packInt4(weightValues(s.weight), s.k, s.n, blockSize, symmetric);
    const pre = scopePrefix(s.node);
    const bName = fresh(`${s.weight.name}_Q4`);
    const sName = fresh(`${s.weight.name}_scales`);
    graph.initializers.set(bName, uint8Tensor(bName, p.packed, [s.n, p.kBlocks, blockSize / 2]));
    graph.initializers.set(sName, f32Tensor(sName, p.scales, [s.n, p.kBlocks]));
    const inputs = [s.activation, bName, sName];
    if (p.zeroPoints) {
      const zName = fresh(`${s.weight.name}_zero_points`);
      graph.initializers.set(zName, uint8Tensor(zName, p.zeroPoints, [s.n, Math.ceil(p.kBlocks / 2)]));
      inputs.push(zName);
    }
    replaceNode(graph, s.node, [
      mkNode(
        fresh(`${pre}MatMulNBits`),
        'MatMulNBits',
        inputs,
        [s.node.outputs[0]],
        {
          K: { type: 'int', value: s.k },
          N: { type: 'int', value: s.n },
          bits: { type: 'int', value: 4 },
          block_size: { type: 'int', value: blockSize },
          accuracy_level: { type: 'int', value: accuracyLevel },
        },
        'com.microsoft',
      ),
    ]);
    quantized.push({
      module: s.module,
      node: s.node.name,
      output: s.node.outputs[0],
      ops: ['MatMulNBits'],
      k: s.k,
      n: s.n,
    });
  }
  const embeddings = (opts.embeddings ?? true) ? quantizeEmbeddingTables(graph, fresh, opts, defaultOpset(input)) : [];
  dropUnusedInitializers(graph);
  ensureOpsets(model, 1, quantized.length > 0, 'INT4');
  model.metadata['tailor.quantization'] = `int4:block${blockSize}:${symmetric ? 'sym' : 'asym'}`;
  return { model, mode: 'int4', quantized, skipped, embeddings };
}
