/**
 * The product's model type: an ONNX forward graph plus a parameter table keyed by Hugging Face-style module
 * paths, the config it was built from, and the tokenizer/preprocessor that turns raw inputs into graph feeds.
 *
 * Weight layout (decided once, here): linear weights live in the graph as MatMul right-hand sides, `[in, out]`,
 * the layout of Optimum's exports and the one ORT multiplies without a transpose. Hugging Face checkpoints
 * (safetensors, PEFT adapters) store PyTorch `nn.Linear.weight` as `[out, in]`. A parameter whose graph layout is
 * `[in, out]` carries `layout: 'in_out'`; `toPyTorchLayout` / `fromPyTorchLayout` transpose exactly (a copy, no
 * arithmetic), so load -> save is bit-identical both ways. Embeddings, norms, biases and conv kernels have the same
 * layout in both worlds (`layout: 'same'`); a Gemm with transB=1 (Optimum's pooler/classifier) keeps [out, in] and is `out_in`.
 */
import { ConfigError, GraphError } from '../errors.ts';
import type { DType, TypedArray } from '../onnx/dtype.ts';
import {
  cloneGraph,
  modelFromGraph,
  type Graph,
  type ModelProto,
  type OpsetImport,
  type Tensor,
  type ValueInfo,
} from '../onnx/ir.ts';
import { numel, tensorFromArray, tensorToArray, transpose2d } from '../onnx/tensor.ts';
import type { TextTokenizer } from './hf/tokenizer.ts';

/** What a parameter is, so strategies can select by role (bias-only BitFit, norms, embeddings). */
export type ParamRole = 'weight' | 'bias' | 'embedding' | 'norm' | 'buffer';

/**
 * How a parameter's graph layout relates to the PyTorch checkpoint layout: 'in_out' is a linear weight stored
 * transposed ([in, out], a MatMul operand); 'out_in' is a linear weight kept in PyTorch's own [out, in] layout (a
 * Gemm with transB=1, as Optimum exports heads), so no transpose; 'same' is anything that is not a linear weight.
 */
export type ParamLayout = 'same' | 'in_out' | 'out_in';

export interface Parameter {
  /** Dotted module path with the tensor's attribute: `bert.encoder.layer.3.attention.self.query.weight`. */
  path: string;
  /** Name of the initializer in the graph that holds the value (equal to `path` in zoo models). */
  initializer: string;
  dtype: DType;
  /** Shape in the graph. */
  shape: number[];
  trainable: boolean;
  role: ParamRole;
  layout: ParamLayout;
}

/** Tasks a model's outputs serve; heads are named after Hugging Face's task classes. */
export type ModelTask =
  | 'sequence-classification'
  | 'token-classification'
  | 'sentence-embedding'
  | 'feature-extraction'
  | 'tabular-classification'
  | 'image-classification';

/** How the model was obtained (kept for lineage). */
export interface ModelSource {
  kind: 'zoo' | 'safetensors' | 'onnx' | 'use-lite';
  /** Directory or file it was read from. */
  path?: string;
  /** Hub id when it came from the hub. */
  hubId?: string;
}

export interface Model {
  /** Architecture family: 'bert', 'mlp', 'cnn', or the `model_type` of an imported ONNX graph. */
  architecture: string;
  task: ModelTask;
  /** Forward graph (inference mode: no dropout, BatchNorm on running statistics). */
  graph: Graph;
  /** Parameters by module path. Iteration order is the graph's creation order. */
  params: Map<string, Parameter>;
  /** The architecture's config (an HF config.json object for BERT). */
  config: Record<string, unknown>;
  /** Label names by class index, for classification heads. */
  labels?: string[];
  tokenizer?: TextTokenizer;
  source: ModelSource;
  /** Parameters that were freshly initialised on load (e.g. a new head on a base checkpoint). */
  newlyInitialized?: string[];
  /** Opset imports of an imported graph (zoo graphs use Tailor's default opset). */
  opsets?: OpsetImport[];
}

/** The ONNX model to run or save: the forward graph with the model's opsets (Tailor's default for zoo graphs). */
export function toOnnxModel(model: Model): ModelProto {
  const m = modelFromGraph(model.graph);
  if (model.opsets) m.opsetImports = model.opsets.map((o) => ({ ...o }));
  m.metadata = { 'tailor.architecture': model.architecture, 'tailor.task': model.task };
  return m;
}

/** The tensor that holds a parameter's value in the graph. */
export function paramTensor(model: Model, path: string): Tensor {
  const p = model.params.get(path);
  if (!p) throw new ConfigError(`model has no parameter '${path}'`, { field: path });
  const t = model.graph.initializers.get(p.initializer);
  if (!t)
    throw new GraphError(`parameter '${path}' points at initializer '${p.initializer}', which the graph lacks`, {
      field: path,
    });
  return t;
}

/** The parameter's values as a typed array, in graph layout. */
export function paramValues(model: Model, path: string): TypedArray {
  return tensorToArray(paramTensor(model, path));
}

/** Returns a model whose parameter `path` holds `values` (graph layout); the original model is unchanged. */
export function withParamValues(model: Model, path: string, values: TypedArray): Model {
  const p = model.params.get(path);
  if (!p) throw new ConfigError(`model has no parameter '${path}'`, { field: path });
  if (values.length !== numel(p.shape)) {
    throw new ConfigError(`parameter '${path}' has shape [${p.shape.join(', ')}]; got ${values.length} values`, {
      field: path,
    });
  }
  const graph = cloneGraph(model.graph);
  graph.initializers.set(p.initializer, tensorFromArray(p.initializer, p.dtype, values, p.shape));
  return { ...model, graph };
}

/** Counts of parameter elements, all and trainable. */
export function countParams(model: Model): { total: number; trainable: number } {
  let total = 0;
  let trainable = 0;
  for (const p of model.params.values()) {
    if (p.role === 'buffer') continue;
    const n = numel(p.shape);
    total += n;
    if (p.trainable) trainable += n;
  }
  return { total, trainable };
}

/** Names of trainable parameters (module paths). */
export function trainableParams(model: Model): string[] {
  return [...model.params.values()].filter((p) => p.trainable).map((p) => p.path);
}

/** Shape of a parameter as PyTorch stores it. */
export function pytorchShape(p: Parameter): number[] {
  return p.layout === 'in_out' ? [p.shape[1], p.shape[0]] : [...p.shape];
}

/** Graph-layout values -> PyTorch-layout values (a transposed copy for `in_out`, the same array otherwise). */
export function toPyTorchLayout(p: Parameter, values: TypedArray): TypedArray {
  if (p.layout !== 'in_out') return values;
  return transpose2d(values, p.shape[0], p.shape[1]);
}

/** PyTorch-layout values -> graph-layout values; exact inverse of `toPyTorchLayout`. */
export function fromPyTorchLayout(p: Parameter, values: TypedArray): TypedArray {
  if (p.layout !== 'in_out') return values;
  return transpose2d(values, p.shape[1], p.shape[0]);
}

/** A name pattern: a RegExp, or a string read as a regular expression searched anywhere in the module path. */
export type NamePattern = string | RegExp;

function toRegExp(p: NamePattern): RegExp {
  if (p instanceof RegExp) return p;
  try {
    return new RegExp(p);
  } catch (e) {
    throw new ConfigError(`invalid name pattern '${p}': ${(e as Error).message}`, { value: p }, { cause: e });
  }
}

/** Module paths of the parameters matching any pattern; throws ConfigError when a pattern matches nothing. */
export function matchParams(model: Model, patterns: readonly NamePattern[]): string[] {
  const res = patterns.map(toRegExp);
  const out: string[] = [];
  const hit = res.map(() => false);
  for (const p of model.params.values()) {
    let any = false;
    res.forEach((re, i) => {
      if (re.test(p.path)) {
        hit[i] = true;
        any = true;
      }
    });
    if (any) out.push(p.path);
  }
  const missed = patterns.filter((_, i) => !hit[i]);
  if (missed.length) {
    const modules = [...new Set([...model.params.keys()].map((k) => k.slice(0, k.lastIndexOf('.'))))];
    const shown = modules.slice(0, 40).join(', ') + (modules.length > 40 ? `, ... (${modules.length} in all)` : '');
    throw new ConfigError(
      `name pattern ${missed.map((m) => `'${String(m)}'`).join(', ')} matches no parameter; modules are: ${shown}`,
      { value: String(missed[0]) },
    );
  }
  return out;
}

function setTrainable(model: Model, paths: ReadonlySet<string>, trainable: boolean, others?: boolean): Model {
  const params = new Map<string, Parameter>();
  for (const [k, p] of model.params) {
    const t = p.role === 'buffer' ? false : paths.has(k) ? trainable : (others ?? p.trainable);
    params.set(k, t === p.trainable ? p : { ...p, trainable: t });
  }
  return { ...model, params };
}

/** Marks the parameters matching any pattern frozen (not trainable). Pure: returns a new Model. */
export function freeze(model: Model, patterns: readonly NamePattern[]): Model {
  return setTrainable(model, new Set(matchParams(model, patterns)), false);
}

/** Marks the parameters matching any pattern trainable. Pure. */
export function unfreeze(model: Model, patterns: readonly NamePattern[]): Model {
  return setTrainable(model, new Set(matchParams(model, patterns)), true);
}

/** Makes exactly the matching parameters trainable and freezes every other one. Pure. */
export function trainOnly(model: Model, patterns: readonly NamePattern[]): Model {
  return setTrainable(model, new Set(matchParams(model, patterns)), true, false);
}

/** Graph inputs that are real feeds (not initializers listed as inputs, as old exports do). */
export function feedInputs(model: Model): ValueInfo[] {
  return model.graph.inputs.filter((v) => !model.graph.initializers.has(v.name));
}
