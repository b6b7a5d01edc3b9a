/**
 * The one table of shape/dtype inference functions, keyed by `domain:OpType` ('' for the default ONNX domain).
 * Add an op by writing a small InferFn and registering it here.
 */
import type { InferFn } from './context.ts';
import {
  biasActivation,
  broadcastSame,
  cast,
  castLike,
  clip,
  compare,
  dropout,
  unary,
  unaryBool,
  where,
} from './elementwise.ts';
import { einsum, fusedMatMul, gemm, matmul, matmulInteger } from './linalg.ts';
import {
  argReduce,
  batchNorm,
  conv,
  convTranspose,
  dequantize,
  dynamicQuantize,
  globalPool,
  layerNorm,
  loss,
  pool,
  quantize,
  reduce,
} from './nn.ts';
import {
  concat,
  constant,
  constantOfShape,
  expand,
  flatten,
  gather,
  gatherElements,
  oneHot,
  pad,
  range,
  reshape,
  sameAsFirst,
  scatter,
  shapeOp,
  size,
  slice,
  split,
  squeeze,
  tile,
  topK,
  transpose,
  unsqueeze,
} from './shapeops.ts';

const MS = 'com.microsoft';

const table = new Map<string, InferFn>();

function reg(ops: string[], fn: InferFn, domain = ''): void {
  for (const op of ops) table.set(`${domain}:${op}`, fn);
}

reg(
  [
    'Neg',
    'Sqrt',
    'Reciprocal',
    'Exp',
    'Log',
    'Abs',
    'Tanh',
    'Sigmoid',
    'Relu',
    'LeakyRelu',
    'Elu',
    'Selu',
    'Erf',
    'Gelu',
    'Softmax',
    'LogSoftmax',
    'Identity',
    'Sign',
    'Floor',
    'Ceil',
    'Round',
    'Sin',
    'Cos',
    'HardSigmoid',
    'Softplus',
    'PRelu',
    'Trilu',
    'CumSum',
    'Hardmax',
    'HardSwish',
    'Mish',
    'BitwiseNot',
  ],
  unary,
);
reg(['IsNaN', 'IsInf'], unaryBool);
reg(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Mean', 'Mod'], broadcastSame);
reg(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Xor', 'Not'], compare);
reg(['Where'], where);
reg(['Cast'], cast);
reg(['CastLike'], castLike);
reg(['Clip'], clip);
reg(['Dropout'], dropout);
reg(['MatMul'], matmul);
reg(['MatMulInteger'], matmulInteger);
reg(['Gemm'], gemm);
reg(['Einsum'], einsum);
reg(
  [
    'ReduceMean',
    'ReduceSum',
    'ReduceMax',
    'ReduceMin',
    'ReduceProd',
    'ReduceL1',
    'ReduceL2',
    'ReduceLogSumExp',
    'ReduceSumSquare',
  ],
  reduce,
);
reg(['ArgMax', 'ArgMin'], argReduce);
reg(['LayerNormalization'], layerNorm);
reg(['BatchNormalization'], batchNorm);
reg(['Conv'], conv);
reg(['ConvTranspose'], convTranspose);
reg(['MaxPool', 'AveragePool', 'LpPool'], pool);
reg(['GlobalAveragePool', 'GlobalMaxPool'], globalPool);
reg(['SoftmaxCrossEntropyLoss', 'NegativeLogLikelihoodLoss'], loss);
reg(['DynamicQuantizeLinear'], dynamicQuantize);
reg(['QuantizeLinear'], quantize);
reg(['DequantizeLinear'], dequantize);
reg(['Reshape'], reshape);
reg(['Flatten'], flatten);
reg(['Transpose'], transpose);
reg(['Squeeze'], squeeze);
reg(['Unsqueeze'], unsqueeze);
reg(['Concat'], concat);
reg(['Split'], split);
reg(['Slice'], slice);
reg(['Gather'], gather);
reg(['GatherElements'], gatherElements);
reg(['ScatterND', 'ScatterElements'], scatter);
reg(['Expand'], expand);
reg(['Tile'], tile);
reg(['Pad'], pad);
reg(['Shape'], shapeOp);
reg(['Size'], size);
reg(['Constant'], constant);
reg(['ConstantOfShape'], constantOfShape);
reg(['Range'], range);
reg(['OneHot'], oneHot);
reg(['TopK'], topK);

reg(['FusedMatMul'], fusedMatMul, MS);
reg(['Gelu', 'QuickGelu'], unary, MS);
reg(['FastGelu', 'BiasGelu'], biasActivation, MS);
reg(['DynamicQuantizeLinear'], dynamicQuantize, MS);
reg(['QuantizeLinear'], quantize, MS);
reg(['DequantizeLinear'], dequantize, MS);
reg(['Trilu'], sameAsFirst, MS);

/** The inference function for an op, or undefined when Tailor does not know it. */
export function inferFnFor(domain: string, opType: string): InferFn | undefined {
  return table.get(`${domain === 'ai.onnx' ? '' : domain}:${opType}`);
}

/** Every registered op as `OpType` (default domain) or `domain.OpType`. */
export function supportedOps(): string[] {
  return [...table.keys()].map((k) => (k.startsWith(':') ? k.slice(1) : k.replace(':', '.'))).sort();
}
