/** `tailor evaluate`: score a model (registry reference or folder) on an eval file, optionally against another. */
import { Command } from 'commander';
import { GateError } from '../../errors.ts';
import type { EvaluateModelOptions } from '../../workflow/evaluate.ts';
import { collect, emit, num, progressFor, providersFor, withGlobals, type GlobalOptions } from '../common.ts';

interface EvaluateCliOptions extends GlobalOptions, Omit<EvaluateModelOptions, 'providers' | 'progress'> {
  textColumn: string;
  labelColumn: string;
  latency: boolean;
  minGroupSize: number;
  seed: number;
  bootstrap: number;
}

export function evaluateCommand(): Command {
  const cmd = new Command('evaluate')
    .description(
      "evaluate a model on labelled data: accuracy, F1, per-class, confusion, CIs, latency; with --baseline, McNemar's test",
    )
    .requiredOption(
      '--model <ref>',
      'registered model (name, name:3, name@alias) or a model folder written by customize',
    )
    .requiredOption('--eval <file>', 'labelled eval file (repeatable)', collect)
    .option('--baseline <ref>', 'a second model to compare against on the same examples')
    .option('--text-column <name>', 'column holding the text', 'text')
    .option('--label-column <name>', 'column holding the label', 'label')
    .option('--max-length <n>', "longest token sequence (default: the model's)", num({ min: 2, int: true }))
    .option('--no-latency', 'skip the latency measurement')
    .option(
      '--sensitive-column <name>',
      'column of the eval file to disaggregate by (repeatable; several also give their intersection)',
      collect,
    )
    .option(
      '--min-group-size <n>',
      'groups with fewer eval rows are shown but not judged',
      num({ min: 1, int: true }),
      30,
    )
    .option(
      '--positive-label <label>',
      'class that is the favourable outcome for the disparities (repeatable; default: the second of two labels, else every class one-vs-rest)',
      collect,
    )
    .option(
      '--behaviour',
      'run the behavioural tests (name swap, typos, casing, punctuation, contractions) on the eval texts',
    )
    .option('--name-template <text>', 'sentence with a {name} slot for the name-swap test (repeatable)', collect)
    .option('--seed <n>', 'seed of the bootstrap and the behavioural tests', num({ int: true, min: 0 }), 0)
    .option('--bootstrap <n>', 'bootstrap resamples for the confidence intervals', num({ int: true, min: 1 }), 1000)
    .option(
      '--max-parity-difference <x>',
      'fail (exit 1) above this demographic parity difference',
      num({ min: 0, max: 1 }),
    )
    .option(
      '--min-disparate-impact <x>',
      'fail (exit 1) below this disparate impact ratio (0.8: four-fifths rule)',
      num({ min: 0, max: 1 }),
    )
    .option(
      '--max-equalized-odds-difference <x>',
      'fail (exit 1) above this equalized odds difference',
      num({ min: 0, max: 1 }),
    )
    .option(
      '--max-flip-rate <x>',
      'fail (exit 1) above this behavioural flip rate (implies --behaviour)',
      num({ min: 0, max: 1 }),
    )
    .option(
      '--oos-label <label>',
      "label of out-of-scope rows (e.g. CLINC150's oos): report in-scope accuracy and out-of-scope recall, with the model's abstain rule",
    );
  withGlobals(cmd, { device: true });
  cmd.action(async (o: EvaluateCliOptions) => {
    const [{ evaluateModel }, { formatEvalReport, formatBehaviour, formatBudget, formatOutOfScope }] =
      await Promise.all([import('../../workflow/evaluate.ts'), import('../../eval/index.ts')]);
    const { json: _json, quiet: _quiet, device, ...rest } = o;
    const progress = progressFor(o);
    const r = await evaluateModel({ ...rest, providers: providersFor(device), progress });
    progress.stop();
    const { report, behaviour, fairnessBudget: gate, profile, groupThresholds: gt, outOfScope } = r;
    const out = {
      ...report,
      ...(gt ? { groupThresholds: gt } : {}),
      ...(behaviour ? { behaviour } : {}),
      ...(gate ? { fairnessBudget: gate } : {}),
      ...(outOfScope ? { outOfScope } : {}),
    };
    emit(
      o,
      out,
      () =>
        (gt
          ? `Predictions use the model's group thresholds on P(${gt.positiveLabel}) by "${gt.column}": ${Object.entries(
              gt.thresholds,
            )
              .map(([g, t]) => `${g} ${t > 1 ? 'never' : t.toFixed(4)}`)
              .join(', ')}\n\n`
          : '') +
        formatEvalReport(report) +
        (behaviour ? `\n\n${formatBehaviour(behaviour)}` : '') +
        (gate ? `\n\n${formatBudget(gate)}` : '') +
        (outOfScope ? `\n\n${formatOutOfScope(outOfScope)}` : '') +
        (profile ? `\n\nONNX Runtime profile (batch 1):\n${profile}` : ''),
    );
    if (gate && !gate.pass)
      throw new GateError(`fairness budget failed: ${gate.reasons.join('; ')}`, {
        details: { checks: gate.checks },
      });
  });
  return cmd;
}
