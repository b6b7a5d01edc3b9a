/**
 * The ops Tailor accepts, per domain, with the opset version each first appeared in. Used by `validateModel` so that
 * a misspelt or unsupported op is reported with the node's name before ONNX Runtime sees the graph.
 * Sources: ONNX's Operators.md (since-version of each op's first schema) and ONNX Runtime's contrib-op registry.
 */

/** ONNX Runtime's contrib-op domain. */
export const MS_DOMAIN = 'com.microsoft';

// Grouped by the opset that introduced them; an op is valid at any opset >= its first version.
const ONNX_SINCE: Record<number, string> = {
  1: `Abs Add And ArgMax ArgMin AveragePool BatchNormalization Cast Ceil Clip Concat Constant Conv ConvTranspose
      DepthToSpace Div Dropout Elu Equal Exp Flatten Floor GRU Gather Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool
      Greater HardSigmoid Hardmax Identity If InstanceNormalization LRN LSTM LeakyRelu Less Log LogSoftmax Loop
      LpNormalization LpPool MatMul Max MaxPool MaxRoiPool Mean Min Mul Neg Not Or PRelu Pad Pow RNN RandomNormal
      RandomNormalLike RandomUniform RandomUniformLike Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp
      ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Selu Shape Sigmoid Size Slice
      Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tanh Tile TopK Transpose Unsqueeze Xor
      Upsample`,
  7: 'Acos Asin Atan Cos Sin Tan Multinomial',
  8: 'Expand Scan',
  9: `Acosh Asinh Atanh Cosh Sinh Compress ConstantOfShape EyeLike Erf IsNaN MaxUnpool NonZero OneHot Scatter Shrink
      Sign TfIdfVectorizer Where MeanVarianceNormalization`,
  10: `ConvInteger DequantizeLinear QuantizeLinear IsInf MatMulInteger Mod NonMaxSuppression QLinearConv QLinearMatMul
       ReverseSequence RoiAlign StringNormalizer ThresholdedRelu Resize`,
  11: `BitShift ConcatFromSequence CumSum Det DynamicQuantizeLinear GatherElements GatherND Range Round ScatterElements
       ScatterND SequenceAt SequenceConstruct SequenceEmpty SequenceErase SequenceInsert SequenceLength SplitToSequence
       Unique`,
  12: 'Celu Einsum GreaterOrEqual LessOrEqual NegativeLogLikelihoodLoss SoftmaxCrossEntropyLoss',
  14: 'Trilu HardSwish',
  15: 'Bernoulli CastLike Optional OptionalGetElement OptionalHasElement',
  16: 'GridSample',
  17: 'LayerNormalization BlackmanWindow HammingWindow HannWindow DFT MelWeightMatrix STFT SequenceMap',
  18: 'BitwiseAnd BitwiseNot BitwiseOr BitwiseXor CenterCropPad Col2Im GroupNormalization Mish',
  19: 'DeformConv',
  20: 'AffineGrid Gelu ImageDecoder RegexFullMatch StringConcat StringSplit',
  23: 'Attention RMSNormalization RotaryEmbedding',
  24: 'TensorScatter Swish',
};

/**
 * ONNX Runtime registers a few ops in the default domain below the ONNX opset that standardised them (exporters
 * emitted LayerNormalization at opset 11-16 for ORT), so those count as valid from opset 1.
 */
const ORT_ONNX_DOMAIN_EXTRAS =
  'LayerNormalization SimplifiedLayerNormalization Affine Crop ImageScaler ParametricSoftplus Scale ScaledTanh';

const MS_OPS = `Attention AttnLSTM BeamSearch BiasAdd BiasDropout BiasGelu BiasSoftmax BiasSplitGelu BifurcationDetector
  BitmaskBiasDropout BitmaskDropout CDist ComplexMul ComplexMulConj ConvTransposeWithDynamicPads CropAndResize
  DecoderAttention DecoderMaskedMultiHeadAttention DecoderMaskedSelfAttention DequantizeBFP DequantizeLinear
  DequantizeWithOrder DynamicQuantizeLSTM DynamicQuantizeMatMul DynamicTimeWarping EmbedLayerNormalization ExpandDims
  FastGelu FusedConv FusedGemm FusedMatMul FusedMatMulActivation GatedRelativePositionBias GatherBlockQuantized
  GatherND Gelu GemmFastGelu GemmFloat8 GemmaRotaryEmbedding GreedySearch GridSample GroupNorm GroupQueryAttention
  Inverse Irfft LayerNormalization LongformerAttention MatMulBnb4 MatMulFpQ4 MatMulInteger16 MatMulIntegerToFloat
  MatMulNBits MaxpoolWithMask MoE MulInteger MultiHeadAttention MurmurHash3 NGramRepeatBlock NhwcConv NhwcFusedConv
  NhwcMaxPool PackedAttention PackedMultiHeadAttention Pad PagedAttention QAttention QEmbedLayerNormalization QGemm
  QLinearAdd QLinearAveragePool QLinearConcat QLinearConv QLinearGlobalAveragePool QLinearLeakyRelu QLinearMul
  QLinearReduceMean QLinearSigmoid QLinearSoftmax QLinearWhere QMoE QOrderedAttention QOrderedGelu
  QOrderedLayerNormalization QOrderedLongformerAttention QOrderedMatMul QuantizeBFP QuantizeLinear QuantizeWithOrder
  QuickGelu Range RelativePositionBias RemovePadding RestorePadding Rfft RotaryEmbedding Sampling SimplifiedLayerNormalization
  SkipGroupNorm SkipLayerNormalization SkipSimplifiedLayerNormalization SparseAttention SparseToDenseMatMul Tokenizer
  TorchEmbedding TransposeMatMul Trilu UnfoldTensor Unique WhisperBeamSearch WordConvEmbedding`;

const words = (s: string): string[] => s.split(/\s+/).filter((w) => w);

const onnxFirst = new Map<string, number>();
for (const [since, ops] of Object.entries(ONNX_SINCE)) for (const op of words(ops)) onnxFirst.set(op, Number(since));
for (const op of words(ORT_ONNX_DOMAIN_EXTRAS)) onnxFirst.set(op, 1);
const msOps = new Set(words(MS_OPS));

/** The first default-domain opset an op exists in, or undefined for an op ONNX does not define. */
export function onnxOpSince(opType: string): number | undefined {
  return onnxFirst.get(opType);
}

/**
 * Whether `opType` exists in `domain` at `version` ('' is the default ONNX domain). Domains other than the default
 * and com.microsoft are not known to Tailor and always answer true.
 */
export function isKnownOp(domain: string, opType: string, version: number): boolean {
  if (domain === '' || domain === 'ai.onnx') {
    const since = onnxFirst.get(opType);
    return since !== undefined && since <= version;
  }
  if (domain === MS_DOMAIN) return msOps.has(opType);
  return true;
}
