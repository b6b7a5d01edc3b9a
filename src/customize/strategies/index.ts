/**
 * The strategy table (PEFT's `PEFT_TYPE_TO_TUNER_MAPPING`, autodiff/registry.ts's rule table): adding a strategy
 * is a file in this folder and a row here; `customize`, the CLI's choices and the docs read this table.
 */
import { ConfigError } from '../../errors.ts';
import type { HeadKind } from '../../models/head.ts';
import type { StrategyDef } from '../types.ts';
import { bitfit } from './bitfit.ts';
import { full } from './full.ts';
import { head } from './head.ts';
import { ia3 } from './ia3.ts';
import { lora } from './lora.ts';
import { partial } from './partial.ts';
import { scratch } from './scratch.ts';
import { setfit } from './setfit.ts';

export const STRATEGY_TABLE = { head, lora, partial, full, scratch, bitfit, ia3, setfit } as const satisfies Record<
  string,
  StrategyDef
>;

/** A strategy's name. */
export type Strategy = keyof typeof STRATEGY_TABLE;

/** Every strategy, in table order. */
export const STRATEGIES: readonly Strategy[] = Object.keys(STRATEGY_TABLE) as Strategy[];

/** The table row for `name`; a ConfigError listing the strategies when there is none. */
export function strategyDef(name: string): StrategyDef {
  if (!Object.hasOwn(STRATEGY_TABLE, name))
    throw new ConfigError(`unknown strategy '${name}' (strategies: ${STRATEGIES.join(', ')})`, {
      field: 'strategy',
      value: name,
    });
  return STRATEGY_TABLE[name as Strategy];
}

/** A strategy's default learning rate with a head of `head`'s kind (its own for that kind where it has one). */
export function defaultLrOf(def: StrategyDef, head: HeadKind = 'linear'): number {
  return def.defaultLrByHead?.[head] ?? def.defaultLr;
}

export { adapterHead } from './lora.ts';
export { layerDecayScales } from './full.ts';
export { reinitialize } from './scratch.ts';
export { topLayersTrainable } from './partial.ts';
