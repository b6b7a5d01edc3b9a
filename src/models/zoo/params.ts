/**
 * Parameter creation shared by the zoo builders: each parameter is an initializer named by its module path,
 * valued from a weight source when one supplies it (a checkpoint, or the model being rebuilt) and otherwise
 * from a seeded initialiser. The seed of each tensor is derived from (model seed, module path), so adding or
 * dropping a layer leaves every other parameter's initial value unchanged.
 */
import type { GraphBuilder } from '../../onnx/builder.ts';
import { seedFor } from '../../util/hash.ts';
import { mulberry32 } from '../../util/rng.ts';
import { numel } from '../../onnx/tensor.ts';
import {
  fromPyTorchLayout,
  pytorchShape,
  toPyTorchLayout,
  type Parameter,
  type ParamLayout,
  type ParamRole,
} from '../model.ts';

/** Supplies graph-layout values for a parameter, or undefined to let the builder initialise it. */
export type WeightSource = (path: string, shape: readonly number[], layout: ParamLayout) => Float32Array | undefined;

export type Init =
  { kind: 'normal'; std: number } | { kind: 'uniform'; bound: number } | { kind: 'zeros' } | { kind: 'ones' };

/** Values for one tensor from an initialiser, reproducible from (seed, path). */
export function initValues(init: Init, n: number, seed: number, path: string): Float32Array {
  const out = new Float32Array(n);
  if (init.kind === 'ones') return out.fill(1);
  if (init.kind === 'zeros') return out;
  const rnd = mulberry32(seedFor(seed, path));
  if (init.kind === 'uniform') {
    for (let i = 0; i < n; i++) out[i] = (rnd() * 2 - 1) * init.bound;
    return out;
  }
  // Box-Muller; 1 - u keeps the log argument in (0, 1].
  for (let i = 0; i < n; i += 2) {
    const u = 1 - rnd();
    const v = rnd();
    const r = Math.sqrt(-2 * Math.log(u)) * init.std;
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

export interface ParamSpec {
  shape: number[];
  role: ParamRole;
  layout?: ParamLayout;
  init: Init;
  /** Post-process fresh values (e.g. zero the padding row of an embedding). */
  fix?: (v: Float32Array) => void;
}

/** Creates parameters as named float32 initializers and records them. */
export class ParamContext {
  readonly params = new Map<string, Parameter>();
  readonly newlyInitialized: string[] = [];
  readonly trainable: (path: string) => boolean;

  constructor(
    readonly b: GraphBuilder,
    readonly seed: number,
    readonly source?: WeightSource,
    trainable?: (path: string) => boolean,
  ) {
    this.trainable = trainable ?? (() => true);
  }

  /** Adds parameter `path` and returns its initializer name (the path itself). */
  param(path: string, spec: ParamSpec): string {
    const layout = spec.layout ?? 'same';
    let values = this.source?.(path, spec.shape, layout);
    if (!values) {
      values = initValues(spec.init, numel(spec.shape), this.seed, path);
      spec.fix?.(values);
      if (this.source) this.newlyInitialized.push(path);
    }
    this.b.initializer(path, 'float32', values, spec.shape);
    const trainable = spec.role !== 'buffer' && this.trainable(path);
    this.params.set(path, {
      path,
      initializer: path,
      dtype: 'float32',
      shape: [...spec.shape],
      trainable,
      role: spec.role,
      layout,
    });
    return path;
  }

  /** `y = x·W + b` with W `[in, out]` under module `path` (nodes named `/path/MatMul`, `/path/Add`). */
  linear(x: string, path: string, inF: number, outF: number, wInit: Init, bInit: Init = { kind: 'zeros' }): string {
    const w = this.param(`${path}.weight`, { shape: [inF, outF], role: 'weight', layout: 'in_out', init: wInit });
    const bias = this.param(`${path}.bias`, { shape: [outF], role: 'bias', init: bInit });
    return this.b.scope(path, () => this.b.add(this.b.matmul(x, w), bias));
  }
}

/**
 * A weight source that reads another model's parameters by module path (through `rename` when paths move),
 * converting between layouts via the PyTorch layout so that a [in, out] MatMul weight can feed an [out, in] Gemm.
 */
export function weightsFrom(
  params: ReadonlyMap<string, Parameter>,
  values: (p: Parameter) => Float32Array,
  rename: (path: string) => string | undefined = (p) => p,
): WeightSource {
  return (path, shape, layout) => {
    const from = rename(path);
    const p = from === undefined ? undefined : params.get(from);
    if (!p) return undefined;
    const target: Parameter = { ...p, shape: [...shape], layout };
    const pt = toPyTorchLayout(p, values(p));
    const ptShape = pytorchShape(target);
    const srcShape = pytorchShape(p);
    if (ptShape.length !== srcShape.length || ptShape.some((d, i) => d !== srcShape[i])) return undefined;
    return fromPyTorchLayout(target, pt) as Float32Array;
  };
}
