/** Trainable-flag helpers the strategies share. */
import { isHeadPath } from '../models/head.ts';
import type { Model, Parameter } from '../models/model.ts';

/** The model with `trainable` set by `pick` (buffers never train). Pure. */
export function setTrainable(model: Model, pick: (p: Parameter) => boolean): Model {
  const params = new Map<string, Parameter>();
  for (const [k, p] of model.params) params.set(k, { ...p, trainable: p.role !== 'buffer' && pick(p) });
  return { ...model, params };
}

/** A parameter of the classifier head (its weight and bias; an MLP head's both layers). */
export const isHead = (p: Parameter): boolean => isHeadPath(p.path);

/** Parameters above the encoder blocks (BERT's pooler), which train with the head in partial fine-tuning. */
export const isPooler = (p: Parameter): boolean => /(^|\.)pooler\./.test(p.path);
