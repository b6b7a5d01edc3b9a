/** `tailor audit`: measure the off-the-shelf model on the domain and recommend a strategy. Writes nothing. */
import { Command } from 'commander';
import {
  emit,
  num,
  progressFor,
  providersFor,
  stageProgress,
  withDataOptions,
  withGlobals,
  type GlobalOptions,
} from '../common.ts';

interface AuditCliOptions extends GlobalOptions {
  base: string;
  train: string[];
  eval?: string[];
  textColumn: string;
  labelColumn: string;
  targetAccuracy?: number;
  maxLatencyMs?: number;
  maxTrainExamples?: number;
  maxEvalExamples?: number;
  maxLength?: number;
  seed: number;
  behaviour?: boolean;
}

export function auditCommand(): Command {
  const cmd = withDataOptions(
    new Command('audit').description(
      'measure the generic model on your data as used off the shelf (frozen encoder + linear head): quality, latency, memory, per-op time; recommend a strategy',
    ),
  )
    .option('--target-accuracy <x>', 'accuracy the model must reach, in (0, 1]', num({ min: 0, max: 1 }))
    .option('--max-latency-ms <ms>', 'latency budget, p50 at batch 1', num({ min: 0 }))
    .option('--max-length <n>', 'longest token sequence', num({ min: 2, int: true }))
    .option(
      '--behaviour',
      'also run the behavioural tests (name swap, typos, casing, punctuation, contractions) on the eval texts with the baseline',
    )
    .option('--seed <n>', 'seed for splits, subsampling and the behavioural tests', num({ int: true }), 0);
  withGlobals(cmd, { device: true });
  cmd.action(async (o: AuditCliOptions) => {
    const [{ audit }, { formatAudit }] = await Promise.all([import('../../audit/index.ts'), import('../format.ts')]);
    const progress = progressFor(o);
    const r = await audit({
      base: o.base,
      train: o.train,
      eval: o.eval,
      textColumn: o.textColumn,
      labelColumn: o.labelColumn,
      targetAccuracy: o.targetAccuracy,
      maxLatencyMs: o.maxLatencyMs,
      maxTrainExamples: o.maxTrainExamples,
      maxEvalExamples: o.maxEvalExamples,
      maxLength: o.maxLength,
      seed: o.seed,
      behaviour: o.behaviour === true,
      providers: providersFor(o.device),
      onProgress: stageProgress(progress),
    });
    progress.stop();
    emit(o, r, () => formatAudit(r, { profile: o.profile }));
  });
  return cmd;
}
