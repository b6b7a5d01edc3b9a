/** `--strategy` choices, kept free of heavy imports so building the program (for --help) stays fast. */
export type StrategyChoice = 'auto' | 'none' | 'head' | 'lora' | 'partial' | 'full' | 'scratch' | 'bitfit' | 'ia3';
/** auto and none, then src/customize's STRATEGIES in its order (a test checks they agree). */
export const STRATEGY_CHOICES: readonly StrategyChoice[] = [
  'auto',
  'none',
  'head',
  'lora',
  'partial',
  'full',
  'scratch',
  'bitfit',
  'ia3',
];
