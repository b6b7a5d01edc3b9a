/**
 * The one table of gradient rules, keyed by op type (`com.microsoft:` prefix for ORT contrib ops), in the spirit
 * of PyTorch's derivatives.yaml. Each rule lives in src/autodiff/rules/ and is a small pure function of a
 * GradContext. Ops that only produce integer/bool values (Shape, Equal, ArgMax...) need no entry: gradients never
 * flow through non-float values.
 */
import type { GradRule } from './context.ts';
import * as act from './rules/activations.ts';
import * as conv from './rules/conv.ts';
import * as ew from './rules/elementwise.ts';
import * as mm from './rules/matmul.ts';
import * as misc from './rules/misc.ts';
import * as norm from './rules/norm.ts';
import * as red from './rules/reduce.ts';
import * as shp from './rules/shape.ts';

const RULES: Record<string, GradRule> = {
  // elementwise arithmetic
  Add: ew.add,
  Sub: ew.sub,
  Mul: ew.mul,
  Div: ew.div,
  Neg: ew.neg,
  Pow: ew.pow,
  Sqrt: ew.sqrt,
  Reciprocal: ew.reciprocal,
  Exp: ew.exp,
  Log: ew.log,
  Abs: ew.abs,
  Identity: ew.identity,
  Cast: ew.cast,
  CastLike: ew.castLike,
  Sum: ew.sum,
  Mean: ew.mean,
  Max: ew.maxMin,
  Min: ew.maxMin,
  Where: ew.where,
  Expand: ew.expand,
  Clip: ew.clip,
  // activations
  Tanh: act.tanh,
  Sigmoid: act.sigmoid,
  Relu: act.relu,
  LeakyRelu: act.leakyRelu,
  Elu: act.elu,
  Erf: act.erf,
  Softplus: act.softplus,
  Softmax: act.softmax,
  LogSoftmax: act.logSoftmax,
  Gelu: act.gelu,
  'com.microsoft:Gelu': act.gelu,
  'com.microsoft:FastGelu': act.fastGelu,
  'com.microsoft:BiasGelu': act.biasGelu,
  // linear algebra
  MatMul: mm.matmul,
  Gemm: mm.gemm,
  Einsum: mm.einsum,
  // normalisation
  LayerNormalization: norm.layerNorm,
  BatchNormalization: norm.batchNorm,
  // reductions
  ReduceSum: red.reduceSum,
  ReduceMean: red.reduceMean,
  ReduceMax: red.reduceMaxMin,
  ReduceMin: red.reduceMaxMin,
  ReduceSumSquare: red.reduceSumSquare,
  // data movement
  Reshape: shp.reshapeLike,
  Flatten: shp.reshapeLike,
  Squeeze: shp.reshapeLike,
  Unsqueeze: shp.reshapeLike,
  Transpose: shp.transpose,
  Concat: shp.concat,
  Split: shp.split,
  Slice: shp.slice,
  Gather: shp.gather,
  GatherElements: shp.gatherElements,
  // convolution and pooling
  Conv: conv.conv,
  MaxPool: conv.maxPool,
  AveragePool: conv.averagePool,
  GlobalAveragePool: conv.globalAveragePool,
  // training-mode ops and losses
  Dropout: misc.dropout,
  SoftmaxCrossEntropyLoss: misc.softmaxCrossEntropyLoss,
};

function key(opType: string, domain: string): string {
  return domain === '' || domain === 'ai.onnx' ? opType : `${domain}:${opType}`;
}

/** The rule for an op, or undefined when Tailor cannot differentiate it. */
export function gradientRule(opType: string, domain = ''): GradRule | undefined {
  return RULES[key(opType, domain)];
}

/** Every differentiable op (`domain:Op` for contrib ops), for docs and coverage tests. */
export function differentiableOps(): string[] {
  return Object.keys(RULES).sort();
}
