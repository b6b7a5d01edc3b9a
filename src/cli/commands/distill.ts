/**
 * `tailor distill`: train a smaller student to mimic a customized teacher. src/customize/distill's `distill()`
 * builds students from *zoo BERT* teachers (config + parameter table), while the classifier folders the CLI writes
 * are plain ONNX graphs (model.onnx + tokenizer + tailor.json) that load back without a BERT config. Until the
 * artifact keeps a BERT classifier's config.json (or distill accepts ONNX teachers), this command refuses plainly.
 */
import { Command } from 'commander';
import { ConfigError } from '../../errors.ts';
import { collect, num, withGlobals, type GlobalOptions } from '../common.ts';

interface DistillCliOptions extends GlobalOptions {
  teacher: string;
  train: string[];
  out: string;
  layers?: number;
}

export function distillCommand(): Command {
  const cmd = new Command('distill')
    .description('distil a customized teacher into a smaller student (fewer layers) on unlabeled or labelled domain text')
    .requiredOption('--teacher <ref>', 'registered model or model folder to distil')
    .requiredOption('--train <file>', 'domain text file (repeatable)', collect)
    .requiredOption('--out <dir>', 'new folder for the student')
    .option('--layers <n>', 'student encoder layers', num({ min: 1, int: true }));
  withGlobals(cmd, { device: true });
  cmd.action(async (o: DistillCliOptions) => {
    throw new ConfigError(
      `distill is not available from the command line yet: the distillation engine (src/customize/distill) needs a zoo BERT teacher, ` +
        `and ${o.teacher} is a plain ONNX classifier folder; use the library API (distill, studentFromTeacher). Nothing was written`,
      { field: 'teacher', value: o.teacher },
    );
  });
  return cmd;
}
