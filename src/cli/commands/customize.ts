/** `tailor customize`: audit, customize, evaluate against the baseline, write the artifact, register run + model. */
import { Command, Option } from 'commander';
import {
  emit,
  collect,
  duration,
  EXIT,
  requestExitCode,
  num,
  progressFor,
  providersFor,
  withDataOptions,
  withGlobals,
  withOutputOptions,
  type GlobalOptions,
} from '../common.ts';
import { STRATEGY_CHOICES, type StrategyChoice } from '../../workflow/strategies.ts';
import { HEAD_KIND_NAMES } from '../../models/head.ts';
import type { TailorOptions } from '../../workflow/tailor.ts';
import { ABSTAIN_SCORES, type AbstainScore } from '../../eval/abstain.ts';

/** Commander's parsed options: the pipeline's own, with the flags that have defaults made required. */
interface CustomizeCliOptions
  extends
    GlobalOptions,
    Omit<TailorOptions, 'home' | 'providers' | 'progress' | 'aliases' | 'train' | 'eval' | 'abstain'> {
  base: string;
  train: string[];
  eval?: string[];
  textColumn: string;
  labelColumn: string;
  strategy: StrategyChoice;
  alias?: string[];
  seed: number;
  abstain?: AbstainScore;
  abstainFrr?: number;
  abstainPrecision?: number;
}

export function customizeCommand(): Command {
  const cmd = withOutputOptions(
    withDataOptions(
      new Command('customize').description(
        'customize the base on your data, evaluate it against the off-the-shelf baseline, save the artifact and register it',
      ),
    ).addOption(
      new Option(
        '--strategy <s>',
        "auto searches strategies and hyper-parameters within --budget, the audit's recommendation first; none keeps the baseline",
      )
        .choices([...STRATEGY_CHOICES])
        .default('auto'),
    ),
    'the artifact (model, adapter) and its report',
  )
    .option(
      '--budget <duration>',
      'for --strategy auto: wall-clock time of the search over strategies and hyper-parameters, e.g. 90s, 10m, 1h (default 5m)',
      duration,
    )
    .option('--target-accuracy <x>', 'for --strategy auto: accuracy to reach', num({ min: 0, max: 1 }))
    .option('--max-latency-ms <ms>', 'for --strategy auto: latency budget (p50, batch 1)', num({ min: 0 }))
    .option('--epochs <n>', 'training epochs (default 3; head: 10)', num({ min: 1, int: true }))
    .option('--lr <x>', 'peak learning rate (default per strategy)', num({ min: 0 }))
    .option('--batch-size <n>', 'examples per step (default 32)', num({ min: 1, int: true }))
    .option('--max-length <n>', 'longest token sequence (default 64)', num({ min: 2, int: true }))
    .option('--rank <r>', 'lora: rank (alpha = 2r)', num({ min: 1, int: true }))
    .option('--targets <spec>', 'lora: all-linear (default) | attention | ffn | a regular expression over module paths')
    .option('--layers <n>', 'partial: top encoder blocks to train', num({ min: 1, int: true }))
    .addOption(
      new Option(
        '--head-type <kind>',
        "the classification head: linear, or mlp (RoBERTa's: dense + tanh + output layer); with auto, fixed in every trial (default: linear, and auto also tries mlp on the frozen features)",
      ).choices([...HEAD_KIND_NAMES]),
    )
    .option('--threads <n>', 'ONNX Runtime threads per op', num({ min: 1, int: true }))
    .option(
      '--allow-regression',
      'move --alias even when the customized model is significantly worse than the baseline (else: exit 3, alias kept)',
    )
    .option(
      '--behaviour',
      'run the behavioural tests (name swap, typos, casing, punctuation, contractions) on the eval texts with the baseline and the customized model',
    )
    .option(
      '--max-flip-rate <x>',
      'fairness budget: largest allowed behavioural flip rate of the customized model (implies --behaviour; else: exit 3, alias kept)',
      num({ min: 0, max: 1 }),
    )
    .option(
      '--sensitive-column <name>',
      'column of the data files to disaggregate the eval metrics of the customized model by (repeatable)',
      collect,
    )
    .option(
      '--max-parity-difference <x>',
      'fairness budget: largest allowed demographic parity difference (needs --sensitive-column; else: exit 3, alias kept)',
      num({ min: 0, max: 1 }),
    )
    .option(
      '--min-disparate-impact <x>',
      'fairness budget: smallest allowed disparate impact ratio (needs --sensitive-column; else: exit 3, alias kept)',
      num({ min: 0, max: 1 }),
    )
    .option(
      '--max-equalized-odds-difference <x>',
      'fairness budget: largest allowed equalized odds difference (needs --sensitive-column; else: exit 3, alias kept)',
      num({ min: 0, max: 1 }),
    )
    .option(
      '--min-group-size <n>',
      'with --sensitive-column: groups with fewer eval rows are shown but not judged (default 30)',
      num({ min: 1, int: true }),
    )
    .option(
      '--positive-label <label>',
      'with --sensitive-column: class that is the favourable outcome for the disparities (repeatable; default: the second of two labels, else every class one-vs-rest)',
      collect,
    )
    .option(
      '--reweigh <column>',
      "reweigh the training rows by this column of the train files (AIF360's Reweighing: w = P(group) P(label) / P(group, label))",
    )
    .option(
      '--oos-label <label>',
      "label of out-of-scope rows (e.g. CLINC150's oos): report in-scope accuracy and out-of-scope recall",
    )
    .addOption(
      new Option(
        '--abstain [score]',
        'fit an abstain threshold on validation and store it with the model: texts below it are answered __out_of_scope__',
      )
        .choices([...ABSTAIN_SCORES])
        .preset('msp'),
    )
    .option(
      '--abstain-frr <x>',
      'with --abstain: share of in-scope validation rows it may reject, in (0, 1) (default 0.05)',
      num(),
    )
    .option(
      '--abstain-precision <x>',
      'with --abstain: share of accepted validation rows that must be in scope, in (0, 1) (needs out-of-scope validation rows)',
      num(),
    )
    .option(
      '--seed <n>',
      'seed for splits, initialisation, shuffling and the behavioural tests',
      num({ int: true }),
      0,
    );
  withGlobals(cmd, { device: true });
  cmd.action(async (o: CustomizeCliOptions) => {
    // tailorModel plus the monitoring reference (profile and reference rows) stored in the registered version.
    const [{ tailorWithReference }, { formatPipeline }] = await Promise.all([
      import('../../monitor/reference.ts'),
      import('../format.ts'),
    ]);
    const progress = progressFor(o);
    const {
      json: _json,
      device,
      profile: _profile,
      quiet: _quiet,
      alias,
      abstain,
      abstainFrr,
      abstainPrecision,
      ...pipeline
    } = o;
    const stray =
      abstainFrr !== undefined ? '--abstain-frr' : abstainPrecision !== undefined ? '--abstain-precision' : undefined;
    // A usage error (exit 2), like a malformed flag; the ranges are the library's (a ConfigError naming the flag).
    if (stray && abstain === undefined)
      cmd.error(`error: ${stray} needs --abstain (msp or energy)`, { exitCode: EXIT.usage, code: 'tailor.usage' });
    const r = await tailorWithReference({
      ...pipeline,
      ...(alias ? { aliases: alias } : {}),
      ...(abstain !== undefined
        ? {
            abstain: {
              score: abstain,
              ...(abstainFrr !== undefined ? { targetFrr: abstainFrr } : {}),
              ...(abstainPrecision !== undefined ? { targetPrecision: abstainPrecision } : {}),
            },
          }
        : {}),
      providers: providersFor(device),
      progress,
    });
    progress.stop();
    emit(o, r, () => formatPipeline(r, { profile: o.profile }));
    // A failed fairness budget is a failed gate even without --alias to withhold.
    if (!r.alias_decision.moved || r.alias_decision.fairness_failed) requestExitCode(EXIT.regression);
  });
  return cmd;
}
