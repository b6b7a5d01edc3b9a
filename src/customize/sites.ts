/**
 * Linear sites of a model: every MatMul whose right-hand side is a 2-D `[in, out]` weight parameter. A site is
 * named by the module path of that weight (`bert.encoder.layer.0.attention.self.query`), which is what LoRA
 * targets, PEFT tensor names and freezing patterns all use.
 */
import { ConfigError } from '../errors.ts';
import type { Model, Parameter } from '../models/model.ts';
import type { Node } from '../onnx/ir.ts';

export interface LinearSite {
  /** Module path (the weight's path without `.weight`). */
  module: string;
  weight: Parameter;
  /** The MatMul node (by name; transforms clone graphs, so nodes are found again by name). */
  node: string;
  inFeatures: number;
  outFeatures: number;
}

/** Named groups of modules, as PEFT users pick them. */
export type TargetKind = 'attention' | 'ffn' | 'all-linear';

/** A LoRA/partial target: a regular expression on module paths, a list of PEFT-style module names, or a kind. */
export type TargetSpec = string | RegExp | readonly string[] | { kind: TargetKind };

const ATTENTION = /attention\.(self\.(query|key|value)|output\.dense)$/;
const FFN = /(intermediate\.dense|(?<!attention\.)output\.dense)$/;
/** The output layer, which PEFT's 'all-linear' leaves out (it belongs to modules_to_save). */
export const HEAD_MODULE = /^(classifier|score)$/;

/** Every linear site of the model, in graph order. */
export function linearSites(model: Model): LinearSite[] {
  const byInit = new Map<string, Parameter>();
  for (const p of model.params.values()) byInit.set(p.initializer, p);
  const out: LinearSite[] = [];
  const seen = new Set<string>();
  for (const n of model.graph.nodes as Node[]) {
    if (n.opType !== 'MatMul' || n.domain !== '') continue;
    const p = byInit.get(n.inputs[1]);
    if (
      !p ||
      p.role !== 'weight' ||
      p.layout !== 'in_out' ||
      p.shape.length !== 2 ||
      !p.path.endsWith('.weight') ||
      /\.lora_[AB]\.weight$/.test(p.path)
    )
      continue;
    const module = p.path.slice(0, -'.weight'.length);
    if (seen.has(module)) continue;
    seen.add(module);
    out.push({ module, weight: p, node: n.name, inFeatures: p.shape[0], outFeatures: p.shape[1] });
  }
  return out;
}

/** PEFT's rule for a list of names: the module is the name, or ends with `.name`. */
function peftListMatch(module: string, names: readonly string[]): boolean {
  return names.some((t) => module === t || module.endsWith(`.${t}`));
}

/** Whether a module path is selected by a target spec (strings are regular expressions searched in the path). */
export function targetMatches(spec: TargetSpec, module: string): boolean {
  if (spec instanceof RegExp) return spec.test(module);
  if (typeof spec === 'string') return new RegExp(spec).test(module);
  if (Array.isArray(spec)) return peftListMatch(module, spec as readonly string[]);
  const kind = (spec as { kind: TargetKind }).kind;
  if (kind === 'attention') return ATTENTION.test(module);
  if (kind === 'ffn') return FFN.test(module) && !ATTENTION.test(module);
  return !HEAD_MODULE.test(module);
}

/** The sites a spec selects; a spec that selects nothing is a ConfigError listing the modules that exist. */
export function selectSites(model: Model, spec: TargetSpec): LinearSite[] {
  if (typeof spec === 'string') {
    try {
      new RegExp(spec);
    } catch (e) {
      throw new ConfigError(
        `invalid target pattern '${spec}': ${(e as Error).message}`,
        { field: 'targets', value: spec },
        { cause: e },
      );
    }
  }
  const all = linearSites(model);
  const hit = all.filter((s) => targetMatches(spec, s.module));
  if (hit.length === 0) {
    const shown = all.map((s) => s.module);
    throw new ConfigError(
      `target ${describeSpec(spec)} matches no linear module; the model's linear modules are: ${shown.slice(0, 60).join(', ')}${shown.length > 60 ? `, ... (${shown.length} in all)` : ''}`,
      { field: 'targets', value: describeSpec(spec), details: { modules: shown } },
    );
  }
  return hit;
}

export function describeSpec(spec: TargetSpec): string {
  if (spec instanceof RegExp) return `/${spec.source}/`;
  if (typeof spec === 'string') return `'${spec}'`;
  if (Array.isArray(spec)) return `[${(spec as readonly string[]).join(', ')}]`;
  return `kind '${(spec as { kind: string }).kind}'`;
}

/**
 * PEFT's `target_modules` for a selected set: the short names (`["query", "value"]`) when PEFT's suffix rule gives
 * back exactly the same set on this model, else the full module paths.
 */
export function peftTargetModules(model: Model, selected: readonly string[]): string[] {
  const short = [...new Set(selected.map((m) => m.slice(m.lastIndexOf('.') + 1)))].sort();
  const all = linearSites(model).map((s) => s.module);
  const bySuffix = all.filter((m) => peftListMatch(m, short));
  const want = new Set(selected);
  if (bySuffix.length === want.size && bySuffix.every((m) => want.has(m))) return short;
  return [...selected].sort();
}
