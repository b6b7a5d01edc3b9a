/**
 * `tailor mitigate`: group-specific thresholds chosen on labelled validation rows under a parity constraint, stored
 * with a copy of the model and registered as a new version (`mitigated_from` the source). The work is the library's
 * `mitigateModel`; `Classifier.predict(texts, { groups })` applies the thresholds.
 */
import { Command, Option } from 'commander';
import { collect, emit, num, progressFor, withGlobals, withOutputOptions, type GlobalOptions } from '../common.ts';
import type { MitigateModelOptions, MitigateModelResult } from '../../workflow/mitigate.ts';
import { renderTable } from '../../util/table.ts';

type MitigateCliOptions = GlobalOptions & Omit<MitigateModelOptions, 'providers' | 'progress' | 'home'>;

const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;

/** The before/after table, the thresholds and where the model went. */
export function formatMitigation(r: MitigateModelResult): string {
  const { before, after, rows } = r.validation;
  const out = [
    `Group thresholds on P(${r.positiveLabel}) by "${r.sensitiveColumn}" (${r.constraint}), chosen on ${rows} validation rows:`,
    renderTable(
      ['group', 'threshold'],
      Object.entries(r.thresholds).map(([g, t]) => [g, t > 1 ? 'never' : t.toFixed(4)]),
      ['left', 'right'],
    ),
    '',
    renderTable(
      ['on validation', 'argmax', 'thresholds', 'change'],
      [
        [
          'accuracy',
          pct(before.accuracy),
          pct(after.accuracy),
          `${((after.accuracy - before.accuracy) * 100).toFixed(2)} pt`,
        ],
        [
          'demographic parity difference',
          before.demographicParityDifference.toFixed(4),
          after.demographicParityDifference.toFixed(4),
          (after.demographicParityDifference - before.demographicParityDifference).toFixed(4),
        ],
        [
          'equal opportunity difference',
          before.equalOpportunityDifference.toFixed(4),
          after.equalOpportunityDifference.toFixed(4),
          (after.equalOpportunityDifference - before.equalOpportunityDifference).toFixed(4),
        ],
      ],
      ['left', 'right', 'right', 'right'],
    ),
    `accuracy cost: ${(r.accuracyCost * 100).toFixed(2)} pt on validation`,
  ];
  if (r.unthresholded.length)
    out.push(
      `no threshold (argmax) for groups under the minimum size: ${r.unthresholded.map((g) => `${g.group} (${g.count})`).join(', ')}`,
    );
  out.push(
    `written to ${r.out}; registered ${r.model.ref} (mitigated-from ${r.model.parents[0].model ?? r.model.parents[0].external})`,
  );
  return out.join('\n');
}

export function mitigateCommand(): Command {
  const cmd = new Command('mitigate')
    .description(
      'choose group-specific decision thresholds on labelled validation data under a parity constraint, store them with the model and register it',
    )
    .requiredOption('--model <ref>', 'registered model (name, name:3, name@alias) or a model folder')
    .requiredOption('--eval <file>', 'labelled validation file with the sensitive column (repeatable)', collect)
    .requiredOption('--sensitive-column <name>', 'column holding the group of each row')
    .addOption(
      new Option('--constraint <c>', 'the rate equalised across groups')
        .choices(['demographic_parity', 'true_positive_rate_parity'])
        .default('demographic_parity'),
    )
    .option(
      '--tolerance <x>',
      'largest allowed difference of that rate between groups (default 0.02)',
      num({ min: 0, max: 1 }),
    )
    .option(
      '--positive-label <label>',
      'the favourable class whose probability is thresholded (default: the second of two labels)',
    )
    .option('--min-group-size <n>', 'groups with fewer validation rows keep argmax', num({ min: 1, int: true }), 30)
    .option('--text-column <name>', 'column holding the text', 'text')
    .option('--label-column <name>', 'column holding the label', 'label');
  withGlobals(withOutputOptions(cmd, 'the model with its group thresholds'));
  cmd.action(async (o: MitigateCliOptions) => {
    const { mitigateModel } = await import('../../workflow/mitigate.ts');
    const { json: _json, quiet: _quiet, device: _device, profile: _profile, ...rest } = o;
    const progress = progressFor(o);
    const r = await mitigateModel({ ...rest, progress });
    progress.stop();
    emit(o, r, () => formatMitigation(r));
  });
  return cmd;
}
