/**
 * `tailor distill`: train a smaller zoo BERT student to mimic a classifier teacher (any Tailor classifier folder or
 * registered model, e.g. one `tailor customize` wrote) on labelled and/or unlabelled domain text, measure teacher
 * vs student, write the student as a classifier folder and register it with lineage to the teacher.
 */
import { Command } from 'commander';
import {
  collect,
  emit,
  num,
  progressFor,
  providersFor,
  withGlobals,
  withOutputOptions,
  type GlobalOptions,
} from '../common.ts';
import type { DistillModelOptions } from '../../workflow/compress.ts';

/** The library call's options, as commander parses them (the flags' names are the options' names). */
type DistillCliOptions = GlobalOptions & Omit<DistillModelOptions, 'providers' | 'progress' | 'home' | 'profile'>;

export function distillCommand(): Command {
  const cmd = new Command('distill')
    .description(
      'distil a classifier teacher into a smaller student (fewer layers, or narrower) on labelled and/or unlabelled domain text, save and register it',
    )
    .requiredOption('--teacher <ref>', 'registered model (name, name:3, name@alias) or a model folder')
    .requiredOption(
      '--student-layers <n>',
      'student encoder layers (same width: initialised from alternate teacher layers)',
      num({ min: 1, int: true }),
    )
    .option(
      '--student-hidden <h>',
      "student width (default: the teacher's; another width starts fresh)",
      num({ min: 1, int: true }),
    )
    .option(
      '--student-heads <n>',
      'student attention heads (default hidden / 64, at least 1)',
      num({ min: 1, int: true }),
    )
    .option(
      '--student-intermediate <n>',
      'FFN width: of a fresh student, or the highest-magnitude units each kept teacher layer keeps',
      num({ min: 1, int: true }),
    )
    .option('--temperature <t>', 'softening temperature T', num({ min: 0 }), 2)
    .option('--alpha <a>', 'weight of the soft (KL) term; 1 - alpha on the hard labels', num({ min: 0, max: 1 }), 0.5)
    .option('--hidden-weight <w>', 'weight of final-hidden-state MSE (same width only)', num({ min: 0 }), 0)
    .option('--epochs <n>', 'training epochs', num({ min: 1, int: true }), 3)
    .option('--lr <x>', 'AdamW learning rate', num({ min: 0 }), 5e-4)
    .option('--batch-size <n>', 'examples per step', num({ min: 1, int: true }), 32)
    .option('--train <file>', 'labelled transfer text (CSV, TSV, JSONL, Parquet)')
    .option('--unlabelled <file>', 'unlabelled transfer text, labelled by the teacher (repeatable)', collect)
    .option('--validation <file>', 'labelled file to keep the best epoch by accuracy')
    .option('--eval <file>', 'labelled file for the teacher-vs-student report')
    .option('--text-column <name>', 'column holding the text', 'text')
    .option('--label-column <name>', 'column holding the label', 'label')
    .option('--max-length <n>', "longest token sequence (default: the teacher's)", num({ min: 2, int: true }))
    .option('--seed <n>', "seed for the student's initialisation and shuffling", num({ int: true }), 0)
    .option('--latency-iterations <n>', 'timed runs at batch 1 per model', num({ min: 1, int: true }), 50);
  withGlobals(withOutputOptions(cmd, 'the student'), { device: true });
  cmd.action(async (o: DistillCliOptions) => {
    const [{ distillModel }, { formatDistillationReport }] = await Promise.all([
      import('../../workflow/compress.ts'),
      import('../../compress/distill/index.ts'),
    ]);
    const { json: _json, quiet: _quiet, device, ...rest } = o;
    const r = await distillModel({ ...rest, providers: providersFor(device), progress: progressFor(o) });
    emit(
      o,
      r,
      () =>
        `${r.initLine}\n${formatDistillationReport(r)}${r.profile ? `\n\nONNX Runtime profile of the student (batch 1):\n${r.profile}` : ''}\n(accuracies on the ${r.reportOn} set)\nwritten to ${r.out}; registered ${r.model.ref} (distilled-from ${r.model.parents[0].model ?? r.model.parents[0].external})`,
    );
  });
  return cmd;
}
