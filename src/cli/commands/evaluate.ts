/** `tailor evaluate`: score a model (registry reference or folder) on an eval file, optionally against another. */
import { Command } from 'commander';
import { ConfigError, DataError, GateError } from '../../errors.ts';
import type { BehaviourReport, BudgetResult, EvalReport, FairnessBudget } from '../../eval/index.ts';
import { collect, emit, num, progressFor, providersFor, withGlobals, type GlobalOptions } from '../common.ts';

interface EvaluateCliOptions extends GlobalOptions {
  model: string;
  eval: string[];
  baseline?: string;
  textColumn: string;
  labelColumn: string;
  maxLength?: number;
  latency: boolean;
  sensitiveColumn?: string[];
  minGroupSize: number;
  positiveLabel?: string[];
  behaviour?: boolean;
  nameTemplate?: string[];
  seed: number;
  bootstrap: number;
  maxParityDifference?: number;
  minDisparateImpact?: number;
  maxEqualizedOddsDifference?: number;
  maxFlipRate?: number;
}

/**
 * The value of each sensitive column for every row of the eval files, keyed by file and line. A second read of the
 * files: the prepared dataset keeps only text, label and one group column, and its rows carry file and line.
 */
async function readSensitive(files: string[], columns: string[]): Promise<Map<string, string[]>> {
  const { readTable } = await import('../../data/load.ts');
  const out = new Map<string, string[]>();
  for (const file of files) {
    for await (const ev of readTable(file, { requiredColumns: columns })) {
      if (ev.kind !== 'row') continue;
      out.set(
        `${ev.file}\u0000${ev.line}`,
        columns.map((c) => {
          const v = ev.values[c];
          return v === null || v === undefined ? '' : String(v).trim();
        }),
      );
    }
  }
  return out;
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
    );
  withGlobals(cmd, { device: true });
  cmd.action(async (o: EvaluateCliOptions) => {
    const [
      { loadDomainData },
      { predictTexts, argmaxRows, textFeeds },
      {
        evaluate,
        formatEvalReport,
        measureLatency,
        sessionRunner,
        softmax,
        argmax,
        runBehaviourTests,
        checkFairnessBudget,
        formatBehaviour,
        formatBudget,
      },
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
    const budget: FairnessBudget = {
      ...(o.maxParityDifference !== undefined ? { maxParityDifference: o.maxParityDifference } : {}),
      ...(o.minDisparateImpact !== undefined ? { minDisparateImpact: o.minDisparateImpact } : {}),
      ...(o.maxEqualizedOddsDifference !== undefined
        ? { maxEqualizedOddsDifference: o.maxEqualizedOddsDifference }
        : {}),
      ...(o.maxFlipRate !== undefined ? { maxFlipRate: o.maxFlipRate } : {}),
    };
    const columns = [...new Set(o.sensitiveColumn ?? [])];
    const groupLimits = ['maxParityDifference', 'minDisparateImpact', 'maxEqualizedOddsDifference'] as const;
    const needsColumn = groupLimits.find((k) => budget[k] !== undefined);
    if (needsColumn && columns.length === 0)
      throw new ConfigError(
        `--${needsColumn.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} needs at least one --sensitive-column`,
        { field: 'sensitive-column' },
      );
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
    let sensitive: Record<string, string[]> | undefined;
    if (columns.length) {
      const values = await readSensitive(o.eval, columns);
      sensitive = Object.fromEntries(columns.map((c) => [c, [] as string[]]));
      for (const r of rows) {
        const v = values.get(`${r.file}\u0000${r.line}`);
        if (!v)
          throw new DataError(`${r.file}:${r.line}: row not found when reading the sensitive columns`, {
            file: r.file,
            line: r.line,
          });
        columns.forEach((c, j) => {
          if (v[j] === '')
            throw new DataError(`${r.file}:${r.line}: sensitive column "${c}" is empty`, {
              file: r.file,
              line: r.line,
              field: c,
            });
          sensitive![c].push(v[j]);
        });
      }
    }
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
    let behaviour: BehaviourReport | undefined;
    if (o.behaviour || o.maxFlipRate !== undefined) {
      progress.start('behavioural tests', 1);
      behaviour = await runBehaviourTests(
        texts,
        async (batch) => {
          const r = await predictTexts(m.model, batch, { maxLength, providers });
          return Array.from({ length: batch.length }, (_, i) => {
            const probabilities = softmax(r.logits.subarray(i * r.classes, (i + 1) * r.classes));
            return { label: labels[argmax(probabilities)], probabilities };
          });
        },
        { seed: o.seed, templates: o.nameTemplate, batchSize: 4096 },
      );
      progress.update(1, 1);
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
      bootstrap: { iterations: o.bootstrap, seed: o.seed },
      ...(sensitive ? { sensitive, minGroupSize: o.minGroupSize } : {}),
      ...(o.positiveLabel ? { positiveLabels: o.positiveLabel } : {}),
    });
    if (latency) report.latency = latency;
    const gate: BudgetResult | undefined =
      Object.keys(budget).length > 0
        ? checkFairnessBudget(budget, { fairness: report.disaggregated, behaviour })
        : undefined;
    const out = { ...report, ...(behaviour ? { behaviour } : {}), ...(gate ? { fairnessBudget: gate } : {}) };
    emit(
      o,
      out,
      () =>
        formatEvalReport(report) +
        (behaviour ? `\n\n${formatBehaviour(behaviour)}` : '') +
        (gate ? `\n\n${formatBudget(gate)}` : '') +
        (profileText ? `\n\nONNX Runtime profile (batch 1):\n${profileText}` : ''),
    );
    if (gate && !gate.pass)
      throw new GateError(`fairness budget failed: ${gate.reasons.join('; ')}`, {
        details: { checks: gate.checks },
      });
  });
  return cmd;
}
