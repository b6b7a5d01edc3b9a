/** `tailor quantize`: dynamic INT8 quantization of a classifier's weight MatMuls, measured before/after. */
import path from 'node:path';
import { Command } from 'commander';
import type { Model } from '../../models/model.ts';
import type { ProviderSpec } from '../../runtime/session.ts';
import { renderTable } from '../../data/table.ts';
import { collect, emit, progressFor, providersFor, withGlobals, type GlobalOptions } from '../common.ts';

interface QuantizeCliOptions extends GlobalOptions {
  model: string;
  out: string;
  eval?: string[];
  textColumn: string;
  labelColumn: string;
  keepHead: boolean;
}

async function p50(model: Model, text: string, maxLength: number, providers: ProviderSpec[]): Promise<number> {
  const [{ Session }, { toOnnxModel }, { textFeeds }, { measureLatency }] = await Promise.all([import('../../runtime/session.ts'), import('../../models/model.ts'), import('../../audit/index.ts'), import('../../eval/index.ts')]);
  const s = await Session.create(toOnnxModel(model), { providers });
  try {
    const feeds = textFeeds(model, [text], maxLength);
    const r = await measureLatency(async () => { await s.run(feeds, ['logits']); }, { iterations: 30, throughputBatchSize: 1, throughputIterations: 1 });
    return r.batch1.p50Ms;
  } finally {
    await s.release();
  }
}

export function quantizeCommand(): Command {
  const cmd = new Command('quantize')
    .description('quantize a classifier\'s weights to INT8 (dynamic, per-channel) and write it as a new model folder; with --eval, accuracy before/after')
    .requiredOption('--model <ref>', 'registered model (name, name:3, name@alias) or a model folder')
    .requiredOption('--out <dir>', 'new folder for the quantized model')
    .option('--eval <file>', 'labelled file to measure accuracy before and after (repeatable)', collect)
    .option('--text-column <name>', 'column holding the text', 'text')
    .option('--label-column <name>', 'column holding the label', 'label')
    .option('--no-keep-head', 'quantize the classifier too (default: it stays float)');
  withGlobals(cmd, { device: true });
  cmd.action(async (o: QuantizeCliOptions) => {
    const [{ quantizeDynamic }, { argmaxRows, loadDomainData, predictTexts }, { metricsFromConfusion, confusionMatrix, modelSizeOnDisk }, { toOnnxModel }, { assertFreshOut, writeClassifier, writeFolderAtomic }, { resolveModelRef }] = await Promise.all([
      import('../../customize/quantize/index.ts'), import('../../audit/index.ts'), import('../../eval/index.ts'), import('../../models/model.ts'), import('../artifacts.ts'), import('../resolve.ts'),
    ]);
    const progress = progressFor(o);
    const providers = providersFor(o.device);
    await assertFreshOut(o.out);
    const src = await resolveModelRef(o.model, o.home);
    const data = o.eval ? await loadDomainData({ train: o.eval, textColumn: o.textColumn, labelColumn: o.labelColumn, prepare: { validationFraction: 0, minExamplesPerClass: 1, nearDuplicates: 'keep', leakage: 'keep' } }) : undefined;
    progress.log('quantizing');
    const q = quantizeDynamic(toOnnxModel(src.model), o.keepHead ? { exclude: [/^classifier/] } : {});
    // Same tokenizer, labels and parameter table; the graph and its opsets (com.microsoft) are the quantizer's.
    const qModel: Model = { ...src.model, graph: q.model.graph, opsets: q.model.opsetImports };
    const out = path.resolve(o.out);
    await writeFolderAtomic(out, (tmp) => writeClassifier(qModel, tmp, { ...src.info, strategy: `${src.info.strategy}+int8`, quantization: { mode: q.mode, quantized: q.quantized.length, skipped: q.skipped.length, from: o.model } }));
    const labels = src.info.labels;
    const accuracy: Record<string, number> = {};
    let sample = 'hello';
    if (data) {
      const rows = [...data.train, ...data.validation];
      sample = rows[0].text;
      const index = new Map(labels.map((l, i) => [l, i]));
      const yTrue = rows.map((r) => index.get(r.label) ?? -1);
      for (const [k, m] of [['before', src.model], ['after', qModel]] as const) {
        progress.start(`scoring ${k}`, rows.length);
        const { logits, classes } = await predictTexts(m, rows.map((r) => r.text), { maxLength: src.info.maxLength, providers, onProgress: (d, t) => progress.update(d, t) });
        const pred = argmaxRows(logits, classes);
        const keep = yTrue.map((y, i) => [y, pred[i]]).filter(([y]) => y >= 0);
        accuracy[k] = metricsFromConfusion(confusionMatrix(keep.map((x) => x[0]), keep.map((x) => x[1]), labels.length), labels).accuracy;
      }
      progress.stop();
    }
    const result = {
      out, mode: q.mode, quantized: q.quantized.length, skipped: q.skipped.map((s) => `${s.module}: ${s.reason}`),
      sizeBytes: { before: (await modelSizeOnDisk(path.join(src.dir, 'model.onnx'))).totalBytes, after: (await modelSizeOnDisk(path.join(out, 'model.onnx'))).totalBytes },
      latencyP50Ms: { before: await p50(src.model, sample, src.info.maxLength, providers), after: await p50(qModel, sample, src.info.maxLength, providers) },
      ...(data ? { accuracy } : {}),
    };
    emit(o, result, () => [
      `quantized ${result.quantized} MatMul weights to INT8 (${result.mode}); written to ${out}`,
      renderTable(['', 'before', 'after'], [
        ['model.onnx size', `${(result.sizeBytes.before / 1048576).toFixed(2)} MiB`, `${(result.sizeBytes.after / 1048576).toFixed(2)} MiB`],
        ['latency p50 (batch 1)', `${result.latencyP50Ms.before.toFixed(2)} ms`, `${result.latencyP50Ms.after.toFixed(2)} ms`],
        ...(data ? [['accuracy', `${(accuracy.before * 100).toFixed(2)}%`, `${(accuracy.after * 100).toFixed(2)}%`]] : []),
      ], ['left', 'right', 'right']),
    ].join('\n'));
  });
  return cmd;
}
