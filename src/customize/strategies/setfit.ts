import { ConfigError } from '../../errors.ts';
import { contrastiveTune } from '../setfit.ts';
import type { SetFitOptions, StrategyDef } from '../types.ts';
import { setTrainable } from '../trainable.ts';
import { lora } from './lora.ts';

/**
 * The body phase's defaults, measured on full CLINC150 with 5 examples per intent (bench/fewshot.ts; the runs are
 * in docs/customize.md, "Few-shot"): the full body beat LoRA (LoRA ended below the frozen-feature head); full-body
 * learning rates from 2e-5 to 2e-4 all landed within half a point (5e-5 best), and 10 pairs per example instead of
 * 5 gained nothing for twice the time.
 */
export const SETFIT_DEFAULTS = {
  body: 'full',
  pairsPerExample: 5,
  epochs: 1,
  batchSize: 16,
  lr: { full: 5e-5, lora: 5e-4 },
} as const;

/** The body phase's settings: the caller's over the defaults (the learning rate's default depends on the body). */
export function setfitOptions(o: SetFitOptions = {}): Required<SetFitOptions> {
  const body = o.body ?? SETFIT_DEFAULTS.body;
  if (body !== 'lora' && body !== 'full')
    throw new ConfigError(`setfit.body must be 'lora' or 'full', got '${String(body)}'`, {
      field: 'setfit.body',
      value: String(body),
    });
  return {
    pairsPerExample: o.pairsPerExample ?? SETFIT_DEFAULTS.pairsPerExample,
    epochs: o.epochs ?? SETFIT_DEFAULTS.epochs,
    batchSize: o.batchSize ?? SETFIT_DEFAULTS.batchSize,
    body,
    lr: o.lr ?? SETFIT_DEFAULTS.lr[body],
  };
}

/**
 * setfit (Tunstall et al., 2022): the body is first tuned contrastively on pairs of training texts (same label:
 * cosine toward 1, different: toward 0; customize/setfit.ts), every body weight (default) or LoRA adapters
 * (`setfit.body: 'lora'`; saved as a PEFT adapter); then, as `head`, a linear head trains on the tuned body's
 * features computed once, from the warm head. For few examples per class.
 */
export const setfit: StrategyDef = {
  name: 'setfit',
  summary: 'contrastive tuning of the encoder on text pairs (LoRA or full), then a head on its features (few-shot)',
  defaultLr: 1e-2,
  warmStartHead: true,
  headOnly: true,
  minPerLabel: 2,
  prepare(headed, ctx) {
    const o = setfitOptions(ctx.options.setfit);
    if (o.body === 'full') return { model: setTrainable(headed, () => true), hyperparameters: { setfit: o } };
    const p = lora.prepare(headed, ctx);
    return { ...p, hyperparameters: { ...p.hyperparameters, setfit: o } };
  },
  bodyPhase(prepared, train, { seed, options }) {
    const o = setfitOptions(options.setfit);
    return contrastiveTune(prepared, train, {
      pairsPerExample: o.pairsPerExample,
      epochs: o.epochs,
      lr: o.lr,
      batchSize: o.batchSize,
      seed,
      ...(options.weightDecay !== undefined ? { weightDecay: options.weightDecay } : {}),
      ...(options.threads ? { threads: options.threads } : {}),
      texts: train.rows.map((r) => r.text),
      maxLength: train.maxLength,
    });
  },
};
