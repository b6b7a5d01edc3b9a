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
/**
 * The classification head and anything under it. PEFT puts `classifier` and `score` in modules_to_save for sequence
 * classification (peft_model.py, PeftModelForSequenceClassification) and never adapts a module matched by
 * `(^|.*\.)<name>($|\..*)` (tuners_utils.check_target_module_exists), so neither does Tailor.
 */
export const HEAD_MODULE = /(^|\.)(classifier|score)($|\.)/;

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

/**
 * The sites a spec selects, less the head (see HEAD_MODULE: PEFT would save it whole and drop adapter tensors on it).
 * A spec that selects nothing, or only the head, is a ConfigError listing the modules that exist.
 */
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
  const matched = all.filter((s) => targetMatches(spec, s.module));
  const hit = matched.filter((s) => !HEAD_MODULE.test(s.module));
  if (hit.length === 0) {
    const shown = all.map((s) => s.module);
    const heads = matched.map((s) => s.module);
    throw new ConfigError(
      heads.length
        ? `target ${describeSpec(spec)} selects only the classification head (${heads.join(', ')}); PEFT saves the head whole through modules_to_save and never adapts it, so it cannot be a LoRA/IA3 target (it trains in full anyway)`
        : `target ${describeSpec(spec)} matches no linear module; the model's linear modules are: ${shown.slice(0, 60).join(', ')}${shown.length > 60 ? `, ... (${shown.length} in all)` : ''}`,
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

/** Module paths of every 2-D `.weight` parameter (linear layers whatever their op, embeddings): all PEFT can reach. */
export function weightModules(model: Model): string[] {
  const out: string[] = [];
  for (const p of model.params.values())
    if (p.shape.length === 2 && p.path.endsWith('.weight') && !/\.lora_[AB]\.weight$/.test(p.path))
      out.push(p.path.slice(0, -'.weight'.length));
  return out;
}

/**
 * The dotted suffixes of a module path, shortest first, ending with the full path. A suffix may not start with a
 * layer index (`0.output.dense`): PEFT's feed-forward rule is a plain `endswith`, under which it would also match
 * `10.output.dense`, and nobody writes one.
 */
function suffixes(module: string): string[] {
  const parts = module.split('.');
  const out: string[] = [];
  for (let k = parts.length - 1; k >= 0; k--)
    if (k === 0 || !/^\d+$/.test(parts[k])) out.push(parts.slice(k).join('.'));
  return out;
}

/** PEFT's names for a selected set; `feedforward` is empty for LoRA. */
export interface PeftModuleNames {
  target_modules: string[];
  feedforward_modules: string[];
}

/**
 * PEFT's `target_modules` (and IA3's `feedforward_modules`) for a selected set of modules, in one form: for each
 * module the shortest dotted suffix that PEFT's list rule (`key == t or key.endswith("." + t)`,
 * tuners_utils.check_target_module_exists) sends to no module outside the set, over every 2-D weight of the model
 * (a Gemm pooler is a Linear to PEFT too). A feed-forward module's suffix must also send no other target to the
 * feed-forward side under IA3's rule (`key.endswith(t)`, ia3/model.py _check_target_module_feedforward), so
 * `feedforward_modules` is a subset of `target_modules` as IA3Config requires. The result is checked by resolving
 * it with PEFT's rules; a set no list can express is a ConfigError.
 */
export function peftModuleNames(
  model: Model,
  selected: readonly string[],
  feedforward: readonly string[] = [],
): PeftModuleNames {
  const sel = new Set(selected);
  const ff = new Set(feedforward);
  for (const m of ff)
    if (!sel.has(m))
      throw new ConfigError(`feed-forward module '${m}' is not among the target modules`, {
        field: 'feedforward_modules',
        value: m,
      });
  const universe = [...new Set([...weightModules(model), ...selected])];
  const reach = (t: string): string[] => universe.filter((u) => peftListMatch(u, [t]));
  const targets = new Set<string>();
  const ffNames = new Set<string>();
  for (const m of sel) {
    const isFf = ff.has(m);
    const name = suffixes(m).find(
      (t) =>
        reach(t).every((u) => sel.has(u) && ff.has(u) === isFf) &&
        (!isFf || selected.every((u) => ff.has(u) || !u.endsWith(t))),
    );
    const chosen = name ?? m;
    targets.add(chosen);
    if (isFf) ffNames.add(chosen);
  }
  const out = { target_modules: [...targets].sort(), feedforward_modules: [...ffNames].sort() };
  const resolved = universe.filter((u) => peftListMatch(u, out.target_modules));
  const ffResolved = resolved.filter((u) => out.feedforward_modules.some((t) => u.endsWith(t)));
  if (
    resolved.length !== sel.size ||
    !resolved.every((u) => sel.has(u)) ||
    ffResolved.length !== ff.size ||
    !ffResolved.every((u) => ff.has(u))
  )
    throw new ConfigError(
      `no PEFT target_modules list selects exactly [${[...sel].join(', ')}]${ff.size ? ` with feed-forward [${[...ff].join(', ')}]` : ''} on this model`,
      { field: 'target_modules', details: { selected: [...sel], feedforward: [...ff] } },
    );
  return out;
}

/** PEFT's `target_modules` for a selected set (see peftModuleNames): `["query", "value"]` where that is exact. */
export function peftTargetModules(model: Model, selected: readonly string[]): string[] {
  return peftModuleNames(model, selected).target_modules;
}
