/**
 * `tailor distill`: train a smaller student to mimic a customized teacher. The distillation loop belongs to
 * src/customize; until it exports `distill`, this command says so plainly instead of pretending.
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

/** The module that provides distillation, loaded lazily so the CLI works without it. */
const DISTILL_MODULE = '../../customize/distill.ts';

export function distillCommand(): Command {
  const cmd = new Command('distill')
    .description('distil a customized teacher into a smaller student (fewer layers) on unlabeled or labelled domain text')
    .requiredOption('--teacher <ref>', 'registered model or model folder to distil')
    .requiredOption('--train <file>', 'domain text file (repeatable)', collect)
    .requiredOption('--out <dir>', 'new folder for the student')
    .option('--layers <n>', 'student encoder layers', num({ min: 1, int: true }));
  withGlobals(cmd, { device: true });
  cmd.action(async (o: DistillCliOptions) => {
    let mod: Record<string, unknown>;
    try {
      mod = (await import(DISTILL_MODULE)) as Record<string, unknown>;
    } catch {
      mod = {};
    }
    if (typeof mod.distill !== 'function') {
      throw new ConfigError(`tailor distill: this build has no distillation engine (src/customize/distill.ts with distill()); teacher ${o.teacher} was not touched and nothing was written`, { field: 'distill' });
    }
    throw new ConfigError('tailor distill: the distillation engine is present but this CLI does not wire it yet', { field: 'distill' });
  });
  return cmd;
}
