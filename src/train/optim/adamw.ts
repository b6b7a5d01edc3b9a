import { ConfigError } from '../../errors.ts';
import type { GraphBuilder } from '../../onnx/builder.ts';
import type { AdamWConfig, UpdateRule, UpdateValues } from './types.ts';

/** AdamW's update as ONNX ops; see {@link AdamWConfig} for the two modes. */
export function adamwRule(cfg: AdamWConfig): UpdateRule {
  const [b1, b2] = cfg.betas ?? [0.9, 0.999];
  const eps = cfg.eps ?? 1e-8;
  const wd = cfg.weightDecay ?? 0.01;
  const mode = cfg.mode ?? 'torch';
  if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1))
    throw new ConfigError(`AdamW betas must lie in [0, 1), got [${b1}, ${b2}]`, { field: 'optimizer.betas' });
  if (!(eps >= 0)) throw new ConfigError(`AdamW eps must be >= 0, got ${eps}`, { field: 'optimizer.eps' });
  return {
    slots: ['exp_avg', 'exp_avg_sq'],
    scalarNames: ['decay', 'step_size', 'eps'],
    // torch: m/bc1 / (√v/√bc2 + ε) = m·(√bc2/bc1) / (√v + ε·√bc2), so both modes are m·step_size / (√v + eps) with
    // per-step scalars, one elementwise op fewer than dividing √v by √bc2 over the whole tensor.
    scalars(step: number, lr: number): Record<string, number> {
      const bc1 = 1 - b1 ** step;
      const bc2 = 1 - b2 ** step;
      const stepSize = (lr * Math.sqrt(bc2)) / bc1;
      return { decay: 1 - lr * wd, step_size: stepSize, eps: mode === 'torch' ? eps * Math.sqrt(bc2) : eps };
    },
    emit(
      b: GraphBuilder,
      param: string,
      grad: string,
      slots: Record<string, string>,
      sc: Record<string, string>,
      decay: boolean,
    ): UpdateValues {
      const m = b.add(b.mul(slots.exp_avg, b.scalar(b1)), b.mul(grad, b.scalar(1 - b1)));
      const v = b.add(b.mul(slots.exp_avg_sq, b.scalar(b2)), b.mul(b.mul(grad, grad), b.scalar(1 - b2)));
      const upd = b.mul(b.div(m, b.add(b.sqrt(v), sc.eps)), sc.step_size);
      let p: string;
      if (!decay || wd === 0) p = b.sub(param, upd);
      else if (mode === 'torch') p = b.sub(b.mul(param, sc.decay), upd);
      else p = b.mul(b.sub(param, upd), sc.decay);
      return { param: p, slots: { exp_avg: m, exp_avg_sq: v } };
    },
  };
}
