/** `tailor evaluate`: score a model (registry reference or folder) on an eval file, optionally against another. */
import { Command } from 'commander';
import { ConfigError } from '../../errors.ts';
import type { EvalReport } from '../../eval/index.ts';
import { collect, emit, num, progressFor, providersFor, withGlobals, type GlobalOptions } from '../common.ts';

interface EvaluateCliOptions extends GlobalOptions {
  model: string;
  eval: string[];
  baseline?: string;
  textColumn: string;
  labelColumn: string;
  maxLength?: number;
  latency: boolean;
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
    .option('--no-latency', 'skip the latency measurement');
  withGlobals(cmd, { device: true });
  cmd.action(async (o: EvaluateCliOptions) => {
    const [
      { loadDomainData },
      { predictTexts, argmaxRows, textFeeds },
      { evaluate, formatEvalReport, measureLatency, sessionRunner },
      { Session },
      { toOnnxModel },
      { formatProfile },
      { resolveModelRef },
    ] = await Promise.all([
      import('../../audit/index.ts'),
      import('../../models/text.ts'),
      import('../../eval/index.ts'),
      import('../../runtime/session.ts'),
      import('../../models/model.ts'),
      import('../../runtime/profile.ts'),
      import('../../workflow/sources.ts'),
    ]);
    const progress = progressFor(o);
    const providers = providersFor(o.device);
    // The eval file doubles as "train" for prepareDataset: only its rows and label set are used.
    const data = await loadDomainData({
      train: o.eval,
      textColumn: o.textColumn,
      labelColumn: o.labelColumn,
      prepare: { validationFraction: 0, minExamplesPerClass: 1, nearDuplicates: 'keep', leakage: 'keep' },
    });
    const rows = [...data.train, ...data.validation];
    const m = await resolveModelRef(o.model, o.home);
    const labels = m.info.labels;
    const index = new Map(labels.map((l, i) => [l, i]));
    const unknown = rows.find((r) => !index.has(r.label));
    if (unknown)
      throw new ConfigError(
        `${unknown.file}:${unknown.line}: label "${unknown.label}" is not one the model ${o.model} knows (${labels.slice(0, 10).join(', ')}${labels.length > 10 ? ', ...' : ''})`,
        { file: unknown.file, line: unknown.line, field: o.labelColumn, value: unknown.label },
      );
    const yTrue = rows.map((r) => index.get(r.label)!);
    const maxLength = o.maxLength ?? m.info.maxLength;
    const texts = rows.map((r) => r.text);
    progress.start('scoring', texts.length);
    const { logits, classes } = await predictTexts(m.model, texts, {
      maxLength,
      providers,
      onProgress: (d, t) => progress.update(d, t),
    });
    let baseline: { name: string; yPred: number[] } | undefined;
    if (o.baseline) {
      const b = await resolveModelRef(o.baseline, o.home);
      if (b.info.labels.join('\u0000') !== labels.join('\u0000'))
        throw new ConfigError(
          `--baseline ${o.baseline} has labels [${b.info.labels.join(', ')}], unlike ${o.model}'s`,
          { field: 'baseline' },
        );
      progress.start('scoring baseline', texts.length);
      const bl = await predictTexts(b.model, texts, {
        maxLength: o.maxLength ?? b.info.maxLength,
        providers,
        onProgress: (d, t) => progress.update(d, t),
      });
      baseline = { name: o.baseline, yPred: argmaxRows(bl.logits, bl.classes) };
    }
    progress.stop();
    let latency: EvalReport['latency'];
    let profileText = '';
    if (o.latency || o.profile) {
      const session = await Session.create(toOnnxModel(m.model), {
        providers,
        profile: o.profile === true,
        label: o.model,
      });
      try {
        const run = sessionRunner(
          session,
          (n) =>
            textFeeds(
              m.model,
              Array.from({ length: n }, (_, i) => texts[i % texts.length]),
              { maxLength },
            ),
          ['logits'],
        );
        if (o.latency)
          latency = await measureLatency(run, { iterations: 30, throughputBatchSize: 8, throughputIterations: 5 });
        else for (let i = 0; i < 10; i++) await run(1);
        if (o.profile) profileText = formatProfile(await session.endProfiling());
      } finally {
        await session.release();
      }
    }
    const report = await evaluate({
      labels,
      yTrue,
      scores: Array.from({ length: rows.length }, (_, i) => logits.subarray(i * classes, (i + 1) * classes)),
      scoresAre: 'logits',
      model: o.model,
      datasetFingerprint: data.fingerprint,
      ...(baseline ? { baseline } : {}),
      modelPath: m.dir,
      parameters: [...m.model.params.values()].map((p) => ({ name: p.path, shape: p.shape, trainable: false })),
    });
    if (latency) report.latency = latency;
    emit(
      o,
      report,
      () => formatEvalReport(report) + (profileText ? `\n\nONNX Runtime profile (batch 1):\n${profileText}` : ''),
    );
  });
  return cmd;
}
