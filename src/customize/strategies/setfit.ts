import { ConfigError } from '../../errors.ts';
import { contrastiveTune } from '../setfit.ts';
import type { SetFitOptions, StrategyDef } from '../types.ts';
import { isHead, setTrainable } from '../trainable.ts';
import { lora } from './lora.ts';

/** The body phase's defaults (measured on CLINC150 few-shot: bench/fewshot.ts, docs/customize.md "Few-shot"). */
export const SETFIT_DEFAULTS: Required<SetFitOptions> = {
  body: 'lora',
  pairsPerExample: 20,
  epochs: 1,
  lr: 2e-3,
  batchSize: 16,
};

/** The body phase's settings: the caller's over the defaults, the learning rate defaulting by body kind. */
export function setfitOptions(o: SetFitOptions = {}): Required<SetFitOptions> {
  const body = o.body ?? SETFIT_DEFAULTS.body;
  if (body !== 'lora' && body !== 'full')
    throw new ConfigError(`setfit.body must be 'lora' or 'full', got '${String(body)}'`, {
      field: 'setfit.body',
      value: String(body),
    });
  return {
    ...SETFIT_DEFAULTS,
    ...o,
    body,
    lr: o.lr ?? (body === 'full' ? 1e-4 : SETFIT_DEFAULTS.lr),
  };
}

/**
 * setfit (Tunstall et al., 2022): the body is first tuned contrastively on pairs of training texts (same label:
 * cosine toward 1, different: toward 0; customize/setfit.ts), through LoRA adapters (default; saved as a PEFT
 * adapter) or every body weight (`setfit.body: 'full'`); then, as `head`, a linear head trains on the tuned body's
 * features computed once, from the warm head. For few examples per class.
 */
export const setfit: StrategyDef = {
  name: 'setfit',
  summary: 'contrastive tuning of the encoder on text pairs (LoRA or full), then a head on its features (few-shot)',
  defaultLr: 1e-2,
  warmStartHead: true,
  headOnly: true,
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
