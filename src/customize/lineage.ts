/** Lineage of a customized model: what it came from, how it was made, on which data, with which seed. */
import { createHash } from 'node:crypto';
import { canonicalJson, Fingerprinter } from '../data/fingerprint.ts';
import type { Model } from '../models/model.ts';
import { VERSION } from '../version.ts';

export interface Lineage {
  base: { id: string; hash: string };
  strategy: string;
  hyperparameters: Record<string, unknown>;
  data_fingerprint: string;
  seed: number;
  tailor_version: string;
  labels: string[];
  /** Temperature scaling folded into the head (the stored model's logits are already divided by `temperature`). */
  calibration?: { method: 'temperature'; temperature: number; fitted_on: 'validation' };
}

/** Parameters that belong to the base (not a head, not an adapter). */
export function isBaseParam(path: string): boolean {
  return !/^(classifier|score)\./.test(path) && !/\.lora_[AB]\.weight$/.test(path);
}

/**
 * A hash of the base's weights: sha256 over the sorted (path, dtype, shape, bytes) of every base parameter. Heads
 * and adapters are left out, so the same base with any head or adapter attached hashes alike.
 */
export function baseHash(model: Model): string {
  const h = createHash('sha256');
  const paths = [...model.params.keys()].filter(isBaseParam).sort();
  for (const p of paths) {
    const info = model.params.get(p)!;
    const t = model.graph.initializers.get(info.initializer);
    h.update(`${p}\0${info.dtype}\0${info.shape.join(',')}\0`);
    if (t) h.update(t.data);
  }
  return `sha256:${h.digest('hex')}`;
}

/** A human id for the base: hub id, path or architecture. */
export function baseId(model: Model): string {
  return model.source.hubId ?? model.source.path ?? `${model.source.kind}:${model.architecture}`;
}

/** Fingerprint of labelled text examples (train then validation), as src/data fingerprints datasets. */
export function dataFingerprint(
  splits: Record<string, readonly { text: string; label: string }[]>,
  options: Record<string, unknown> = {},
): string {
  const f = new Fingerprinter(options);
  for (const [name, rows] of Object.entries(splits)) {
    f.beginSplit(name);
    for (const r of rows) f.add({ text: r.text, label: r.label });
  }
  return f.digest();
}

export function makeLineage(
  base: Model,
  strategy: string,
  hyperparameters: Record<string, unknown>,
  fingerprint: string,
  seed: number,
  labels: string[],
): Lineage {
  return {
    base: { id: baseId(base), hash: baseHash(base) },
    strategy,
    hyperparameters: JSON.parse(canonicalJson(hyperparameters)) as Record<string, unknown>,
    data_fingerprint: fingerprint,
    seed,
    tailor_version: VERSION,
    labels,
  };
}
