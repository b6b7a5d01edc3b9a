/** `--strategy` choices: auto (the audit's recommendation), none (the off-the-shelf baseline), then the strategy table. */
import { STRATEGIES, type Strategy } from '../customize/strategies/index.ts';

export type StrategyChoice = 'auto' | 'none' | Strategy;
export const STRATEGY_CHOICES: readonly StrategyChoice[] = ['auto', 'none', ...STRATEGIES];
