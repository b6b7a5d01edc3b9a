import { ConfigError } from '../../errors.ts';
import type { GraphBuilder } from '../../onnx/builder.ts';
import type { SgdConfig, UpdateRule, UpdateValues } from './types.ts';

/**
 * `torch.optim.SGD` as ONNX ops. Torch initialises the momentum buffer with the first gradient (no dampening); with a
 * zero-initialised buffer the same result comes from scaling d_p by 1 at step 1 and by (1 - dampening) afterwards,
 * which the `damp` scalar does.
 */
export function sgdRule(cfg: SgdConfig): UpdateRule {
  const momentum = cfg.momentum ?? 0;
  const dampening = cfg.dampening ?? 0;
  const wd = cfg.weightDecay ?? 0;
  const nesterov = cfg.nesterov ?? false;
  if (nesterov && (momentum <= 0 || dampening !== 0)) {
    throw new ConfigError('SGD with nesterov needs momentum > 0 and dampening 0 (as torch.optim.SGD)', {
      field: 'optimizer.nesterov',
    });
  }
  return {
    slots: momentum !== 0 ? ['momentum_buffer'] : [],
    scalarNames: ['lr', 'damp'],
    scalars(step: number, lr: number): Record<string, number> {
      return { lr, damp: step === 1 ? 1 : 1 - dampening };
    },
    emit(
      b: GraphBuilder,
      param: string,
      grad: string,
      slots: Record<string, string>,
      sc: Record<string, string>,
      decay: boolean,
    ): UpdateValues {
      let dp = decay && wd !== 0 ? b.add(grad, b.mul(param, b.scalar(wd))) : grad;
      const outSlots: Record<string, string> = {};
      if (momentum !== 0) {
        const buf = b.add(b.mul(slots.momentum_buffer, b.scalar(momentum)), b.mul(dp, sc.damp));
        outSlots.momentum_buffer = buf;
        dp = nesterov ? b.add(dp, b.mul(buf, b.scalar(momentum))) : buf;
      }
      return { param: b.sub(param, b.mul(dp, sc.lr)), slots: outSlots };
    },
  };
}
