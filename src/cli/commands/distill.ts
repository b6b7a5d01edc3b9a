/**
 * `tailor distill`: train a smaller zoo BERT student to mimic a classifier teacher (any Tailor classifier folder or
 * registered model, e.g. one `tailor customize` wrote) on labelled and/or unlabelled domain text, measure teacher
 * vs student, write the student as a classifier folder and register it with lineage to the teacher.
 */
import path from 'node:path';
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
import { loadSource, nameFromOut, profileText, readLabelled, readTexts, registerDerived } from './quantize.ts';

interface DistillCliOptions extends GlobalOptions {
  teacher: string;
  studentLayers: number;
  studentHidden?: number;
  studentHeads?: number;
  studentIntermediate?: number;
  temperature: number;
  alpha: number;
  hiddenWeight: number;
  epochs: number;
  lr: number;
  batchSize: number;
  train?: string;
  unlabelled?: string[];
  validation?: string;
  eval?: string;
  textColumn: string;
  labelColumn: string;
  maxLength?: number;
  seed: number;
  out: string;
  name?: string;
  alias?: string[];
  latencyIterations: number;
}

/** One line saying where the student's weights came from. */
function initLine(init: {
  kind: string;
  teacherLayers: number[] | null;
  copiedParams: number;
  hidden: number;
  layers: number;
  removedLayers?: number[];
  intermediate?: number;
}): string {
  if (init.kind === 'teacher-graph') {
    return `student: the teacher's own graph with layer${init.removedLayers!.length > 1 ? 's' : ''} ${init.removedLayers!.join(', ')} removed (kept ${init.teacherLayers!.join(', ')}${init.intermediate !== undefined ? `, FFN narrowed to ${init.intermediate} units` : ''}); all ${init.copiedParams} parameters from the teacher`;
  }
  if (init.kind === 'teacher-layers')
    return `student: a ${init.layers}-layer zoo BERT (hidden ${init.hidden}) holding teacher layers ${init.teacherLayers!.join(', ')}; ${init.copiedParams} parameters copied`;
  return `student: a freshly initialised ${init.layers}-layer zoo BERT (hidden ${init.hidden})`;
}

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
    const [
      { distillTextClassifier, formatDistillationReport },
      { assertFreshOut, writeClassifier, writeFolderAtomic },
      { writeFileSynced },
      { ConfigError },
    ] = await Promise.all([
      import('../../compress/distill/index.ts'),
      import('../artifacts.ts'),
      import('../../onnx/io.ts'),
      import('../../errors.ts'),
    ]);
    const progress = progressFor(o);
    const out = path.resolve(o.out);
    // Every input is checked before anything is written: out folder, transfer text, teacher, data files.
    await assertFreshOut(out);
    if (!o.train && !o.unlabelled?.length)
      throw new ConfigError('distill needs transfer text: --train FILE (labelled) and/or --unlabelled FILE', {
        field: 'train',
      });
    const t = await loadSource(o.teacher, o.home, '--teacher');
    const labels = t.info.labels;
    const maxLength = o.maxLength ?? t.info.maxLength;
    const train = o.train ? await readLabelled(o.train, o.textColumn, o.labelColumn, labels, 'train') : undefined;
    const unlabelled: string[] = [];
    for (const f of o.unlabelled ?? []) unlabelled.push(...(await readTexts(f, o.textColumn, 'unlabelled')));
    const validation = o.validation
      ? await readLabelled(o.validation, o.textColumn, o.labelColumn, labels, 'validation')
      : undefined;
    const evalSet = o.eval ? await readLabelled(o.eval, o.textColumn, o.labelColumn, labels, 'eval') : undefined;
    progress.log(
      `distilling ${o.teacher} into a ${o.studentLayers}-layer student on ${(train?.texts.length ?? 0) + unlabelled.length} texts (${train?.texts.length ?? 0} labelled)`,
    );
    const r = await distillTextClassifier(t.model, {
      layers: o.studentLayers,
      ...(o.studentHidden !== undefined ? { hidden: o.studentHidden } : {}),
      ...(o.studentHeads !== undefined ? { heads: o.studentHeads } : {}),
      ...(o.studentIntermediate !== undefined ? { intermediate: o.studentIntermediate } : {}),
      ...(train ? { train } : {}),
      unlabelled,
      ...(validation ? { validation } : {}),
      ...(evalSet ? { eval: evalSet } : {}),
      temperature: o.temperature,
      alpha: o.alpha,
      hiddenWeight: o.hiddenWeight,
      epochs: o.epochs,
      lr: o.lr,
      batchSize: o.batchSize,
      maxLength,
      seed: o.seed,
      iterations: o.latencyIterations,
      providers: providersFor(o.device),
      throughputIterations: Math.max(2, Math.ceil(o.latencyIterations / 6)),
      onEpoch: (e) =>
        progress.log(
          `epoch ${e.epoch + 1}: train loss ${e.trainLoss.toFixed(4)}${e.metrics.accuracy !== undefined ? `, validation accuracy ${(e.metrics.accuracy * 100).toFixed(2)}%` : ''}`,
        ),
    });
    const settings = {
      student_layers: o.studentLayers,
      student_intermediate: o.studentIntermediate ?? null,
      student_hidden: r.init.hidden,
      student_heads: r.init.heads,
      init: r.init.kind,
      teacher_layers: r.init.teacherLayers,
      temperature: o.temperature,
      alpha: o.alpha,
      hidden_weight: o.hiddenWeight,
      epochs: o.epochs,
      lr: o.lr,
      batch_size: o.batchSize,
      max_length: maxLength,
      seed: o.seed,
      train: o.train ? path.resolve(o.train) : null,
      unlabelled: (o.unlabelled ?? []).map((f) => path.resolve(f)),
      validation: o.validation ? path.resolve(o.validation) : null,
    };
    const report = { ...r.report, reportOn: r.reportOn, init: r.init, train: r.train, config: r.config };
    await writeFolderAtomic(out, async (tmp) => {
      await writeClassifier(r.student, tmp, {
        labels,
        maxLength,
        strategy: 'distilled',
        base: o.teacher,
        distillation: { ...settings, teacher: o.teacher },
      });
      await writeFileSynced(
        path.join(tmp, 'distillation.json'),
        new TextEncoder().encode(`${JSON.stringify(report, null, 2)}\n`),
      );
    });
    const reg = await registerDerived({
      home: o.home,
      out,
      name: o.name ?? nameFromOut(out),
      aliases: o.alias,
      sourceRef: o.teacher,
      sourceDir: t.dir,
      relation: 'distilled-from',
      experiment: 'distill',
      params: settings,
      description: `${o.studentLayers}-layer student distilled from ${o.teacher}`,
      metrics: {
        accuracy: r.report.student.accuracy,
        macro_f1: r.report.student.macroF1,
        teacher_accuracy: r.report.teacher.accuracy,
        accuracy_delta: r.report.accuracyDelta,
        agreement: r.report.agreement,
        speedup_batch1: r.report.speedupBatch1,
        speedup_throughput: r.report.speedupThroughput,
        params: r.report.student.params,
      },
      metadata: {
        strategy: 'distilled',
        accuracy: r.report.student.accuracy,
        teacher_accuracy: r.report.teacher.accuracy,
        report_on: r.reportOn,
      },
    });
    progress.stop();
    const sample = evalSet?.texts[0] ?? train?.texts[0] ?? unlabelled[0];
    const profile = o.profile ? await profileText(r.student, sample, maxLength, providersFor(o.device)) : undefined;
    const value = { ...report, teacherRef: o.teacher, out, run_id: reg.runId, model: reg.model };
    emit(
      o,
      value,
      () =>
        `${initLine(r.init)}\n${formatDistillationReport(r.report)}${profile ? `\n\nONNX Runtime profile of the student (batch 1):\n${profile}` : ''}\n(accuracies on the ${r.reportOn} set)\nwritten to ${out}; registered ${reg.model.ref} (distilled-from ${reg.model.parents[0].model ?? reg.model.parents[0].external})`,
    );
  });
  return cmd;
}
