/**
 * Learning-rate schedules, computed in JavaScript (float64) and fed to the update graph as a scalar input, so one
 * compiled graph serves every step. The shapes follow Hugging Face's `get_*_schedule_with_warmup`: the multiplier
 * for optimizer step t (1-based) is lambda(t - 1), as `LambdaLR` evaluates it.
 */
import { ConfigError } from '../../errors.ts';

export type ScheduleConfig =
  | { type: 'constant'; warmupSteps?: number }
  | { type: 'linear'; warmupSteps?: number; totalSteps: number; minLrRatio?: number }
  | { type: 'cosine'; warmupSteps?: number; totalSteps: number; minLrRatio?: number };

/** The multiplier of the base learning rate at optimizer step `step` (1-based). */
export function lrMultiplier(schedule: ScheduleConfig | undefined, step: number): number {
  if (!schedule) return 1;
  const s = step - 1;
  const warmup = schedule.warmupSteps ?? 0;
  if (warmup < 0 || !Number.isInteger(warmup))
    throw new ConfigError(`schedule.warmupSteps must be a non-negative integer, got ${warmup}`, {
      field: 'schedule.warmupSteps',
    });
  if (s < warmup) return s / Math.max(1, warmup);
  if (schedule.type === 'constant') return 1;
  const total = schedule.totalSteps;
  if (!(total > warmup))
    throw new ConfigError(`schedule.totalSteps (${total}) must exceed warmupSteps (${warmup})`, {
      field: 'schedule.totalSteps',
    });
  const progress = Math.min(1, (s - warmup) / Math.max(1, total - warmup));
  const floor = schedule.minLrRatio ?? 0;
  const m = schedule.type === 'linear' ? 1 - progress : 0.5 * (1 + Math.cos(Math.PI * progress));
  return floor + (1 - floor) * Math.max(0, m);
}

/** The learning rate at optimizer step `step` (1-based). */
export function learningRateAt(baseLr: number, schedule: ScheduleConfig | undefined, step: number): number {
  return baseLr * lrMultiplier(schedule, step);
}
