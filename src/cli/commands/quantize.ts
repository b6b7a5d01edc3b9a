/**
 * `tailor quantize`: dynamic INT8, static INT8 (QDQ, calibrated on domain text) or weight-only INT4 of a classifier,
 * measured against the float model (size, latency, accuracy, per-layer error), written as a new classifier folder
 * and registered as a model version whose lineage points at the source. Also exports the helpers `distill` shares:
 * reading a text column, reading a labelled file against a model's labels, registering a derived model.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { DataError } from '../../errors.ts';
import type { Json } from '../../registry/index.ts';
import type { Model } from '../../models/model.ts';
import type { ProviderSpec } from '../../runtime/session.ts';
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

/** Texts of one column of a CSV/TSV/JSONL/Parquet file (empty cells skipped), at most `limit`. */
export async function readTexts(file: string, column: string, what: string, limit = Infinity): Promise<string[]> {
  const [{ assertReadable }, { readTable }] = await Promise.all([
    import('../../audit/data.ts'),
    import('../../data/index.ts'),
  ]);
  await assertReadable([file], what);
  const out: string[] = [];
  for await (const ev of readTable(file, { requiredColumns: [column] })) {
    if (ev.kind !== 'row') continue;
    const v = ev.values[column];
    if (typeof v === 'string' && v.trim() !== '') out.push(v);
    else if (typeof v === 'number') out.push(String(v));
    if (out.length >= limit) break;
  }
  if (out.length === 0)
    throw new DataError(`${what} file ${file} has no text in column "${column}"`, { file, field: column });
  return out;
}

/** Texts and label indices (into `labels`) of a labelled file; a label outside `labels` is an error naming its line. */
export async function readLabelled(
  file: string,
  textColumn: string,
  labelColumn: string,
  labels: readonly string[],
  what: string,
): Promise<{ texts: string[]; labels: number[] }> {
  const [{ assertReadable }, { readTable }] = await Promise.all([
    import('../../audit/data.ts'),
    import('../../data/index.ts'),
  ]);
  await assertReadable([file], what);
  const index = new Map(labels.map((l, i) => [l, i]));
  const texts: string[] = [],
    ys: number[] = [];
  for await (const ev of readTable(file, { requiredColumns: [textColumn, labelColumn] })) {
    if (ev.kind !== 'row') continue;
    const t = ev.values[textColumn],
      l = ev.values[labelColumn];
    if (t === null || t === undefined || String(t).trim() === '') continue;
    const y = index.get(String(l));
    if (y === undefined) {
      throw new DataError(
        `${file}:${ev.line}: label "${String(l)}" is not one of the model's ${labels.length} labels (${labels.slice(0, 8).join(', ')}${labels.length > 8 ? ', ...' : ''})`,
        { file, line: ev.line, field: labelColumn, value: String(l) },
      );
    }
    texts.push(String(t));
    ys.push(y);
  }
  if (texts.length === 0) throw new DataError(`${what} file ${file} has no labelled rows`, { file });
  return { texts, labels: ys };
}

export interface DerivedModel {
  name: string;
  version: number;
  ref: string;
  aliases: string[];
  parents: Array<{ relation: string; model?: string; external?: string }>;
}

/**
 * Records a run (params, metrics, the folder as its 'model' artifact) and registers the folder as a new version of
 * `name` whose lineage parent is the source: the registered version when `sourceRef` is a registry reference, else
 * the source folder as an external id.
 */
export async function registerDerived(o: {
  home?: string;
  out: string;
  name: string;
  aliases?: string[];
  sourceRef: string;
  sourceDir: string;
  relation: string;
  experiment: string;
  params: Record<string, Json>;
  metrics: Record<string, number>;
  description: string;
  metadata: Record<string, Json>;
}): Promise<{ runId: string; model: DerivedModel }> {
  const { withRegistry } = await import('../registry.ts');
  return withRegistry(
    o.home,
    async (reg) => {
      const fromRegistry = !existsSync(o.sourceRef);
      const parent = fromRegistry ? await reg.getModel(o.sourceRef) : undefined;
      const spec = parent
        ? { relation: o.relation, model: `${parent.name}:${parent.version}` }
        : { relation: o.relation, external: path.resolve(o.sourceDir) };
      const run = await reg.startRun({
        name: o.experiment,
        experiment: o.experiment,
        params: o.params,
        baseModel: spec.model ?? spec.external,
        tags: { source: spec.model ?? spec.external! },
      });
      try {
        const finite = Object.fromEntries(Object.entries(o.metrics).filter(([, v]) => Number.isFinite(v)));
        if (Object.keys(finite).length) await run.logMetrics(finite);
        await run.logArtifact(o.out, { path: 'model', kind: 'model' });
        const mv = await run.registerModel({
          name: o.name,
          source: { runId: run.id, artifactPath: 'model' },
          parents: [spec],
          ...(o.aliases?.length ? { aliases: o.aliases } : {}),
          description: o.description,
          metadata: o.metadata,
        });
        await run.finish();
        return {
          runId: run.id,
          model: {
            name: mv.name,
            version: mv.version,
            ref: `${mv.name}:${mv.version}`,
            aliases: mv.aliases,
            parents: mv.parents.map((p) => ({
              relation: p.relation,
              ...(p.model ? { model: `${p.model.name}:${p.model.version}` } : { external: p.external ?? '' }),
            })),
          },
        };
      } catch (e) {
        await run.fail(e);
        throw e;
      }
    },
    { create: true },
  );
}

/** `--profile`: ONNX Runtime's per-op profile of `model` over 10 runs at batch 1 on `text`, as text. */
export async function profileText(
  model: Model,
  text: string,
  maxLength: number,
  providers: ProviderSpec[],
): Promise<string> {
  const [{ Session }, { toOnnxModel }, { formatProfile }, { textFeeds }] = await Promise.all([
    import('../../runtime/session.ts'),
    import('../../models/model.ts'),
    import('../../runtime/profile.ts'),
    import('../../models/text.ts'),
  ]);
  const s = await Session.create(toOnnxModel(model), { providers, profile: true, label: 'profile' });
  try {
    const feeds = textFeeds(model, [text], { maxLength });
    for (let i = 0; i < 10; i++) await s.run(feeds, ['logits']);
    return formatProfile(await s.endProfiling());
  } finally {
    await s.release();
  }
}

/**
 * A `--model`/`--teacher` reference: an existing folder, else a registry reference. Something that looks like a
 * path (has a slash, or starts with '.') but does not exist is a missing folder, not a registry lookup.
 */
export async function loadSource(
  ref: string,
  home: string | undefined,
  what: string,
): Promise<Awaited<ReturnType<typeof import('../resolve.ts').resolveModelRef>>> {
  const [{ resolveModelRef }, { ModelFileError }] = await Promise.all([
    import('../resolve.ts'),
    import('../../errors.ts'),
  ]);
  if (!existsSync(ref) && (ref.includes('/') || ref.startsWith('.')))
    throw new ModelFileError(`${what} ${ref}: no such model folder`, { file: ref, field: what.replace(/^--/, '') });
  return resolveModelRef(ref, home);
}

/** Default registry name for a derived model: the --out folder's name, made a valid model name. */
export function nameFromOut(out: string): string {
  return path.basename(path.resolve(out)).replace(/[^A-Za-z0-9._-]/g, '-');
}

interface QuantizeCliOptions extends GlobalOptions {
  model: string;
  mode: 'dynamic' | 'static' | 'int4';
  format?: 'matmul-integer' | 'dynamic-quantize-matmul';
  calibration?: string;
  calibrationMethod: 'minmax' | 'percentile' | 'entropy';
  calibrationSize: number;
  percentile?: number;
  include?: string[];
  exclude?: string[];
  blockSize: number;
  asymmetric?: boolean;
  minWeightElements?: number;
  accuracyLevel?: number;
  embeddings: boolean;
  eval?: string;
  textColumn: string;
  labelColumn: string;
  out: string;
  name?: string;
  alias?: string[];
  latencyIterations: number;
}

export function quantizeCommand(): Command {
  const cmd = new Command('quantize')
    .description(
      'quantize a classifier (dynamic INT8, static INT8 calibrated on your text, or INT4 weights), measure it against the float model, save and register it',
    )
    .requiredOption('--model <ref>', 'registered model (name, name:3, name@alias) or a model folder')
    .addOption(
      new Option(
        '--mode <mode>',
        'dynamic: int8 weights, activations quantized at run time; static: QDQ with calibrated activation ranges; int4: MatMulNBits weights',
      )
        .choices(['dynamic', 'static', 'int4'])
        .default('dynamic'),
    )
    .addOption(
      new Option(
        '--format <f>',
        'dynamic: standard MatMulInteger chain or com.microsoft DynamicQuantizeMatMul',
      ).choices(['matmul-integer', 'dynamic-quantize-matmul']),
    )
    .option('--calibration <file>', 'static: domain text to calibrate activation ranges on (CSV, TSV, JSONL, Parquet)')
    .addOption(
      new Option('--calibration-method <m>', 'static: how a range is picked from the observed values')
        .choices(['minmax', 'percentile', 'entropy'])
        .default('minmax'),
    )
    .option('--calibration-size <n>', 'static: calibrate on at most this many texts', num({ min: 1, int: true }), 256)
    .option('--percentile <p>', 'static with percentile: clip |x| at this percentile', num({ min: 0, max: 100 }))
    .option('--include <regex>', 'quantize only MatMuls whose module path matches (repeatable)', collect)
    .option('--exclude <regex>', 'keep MatMuls whose module path matches float (repeatable)', collect)
    .option('--block-size <n>', 'int4: weights per block along K (power of two >= 16)', num({ min: 16, int: true }), 32)
    .option('--asymmetric', 'int4: per-block min/max with stored zero points (default symmetric)')
    .option(
      '--accuracy-level <n>',
      'int4: MatMulNBits accuracy_level (0 float, 4 int8 activations)',
      num({ min: 0, max: 4, int: true }),
    )
    .option(
      '--min-weight-elements <n>',
      'leave weights with fewer elements float (default 0; int4: 4096)',
      num({ min: 0, int: true }),
    )
    .option('--no-embeddings', 'keep embedding tables float (default: int8 with per-row scales)')
    .option('--eval <file>', 'labelled file: accuracy and macro-F1 before and after')
    .option('--text-column <name>', 'column holding the text (calibration and eval files)', 'text')
    .option('--label-column <name>', 'column holding the label (eval file)', 'label')
    .option(
      '--latency-iterations <n>',
      'timed runs at batch 1 per model (0: no timing)',
      num({ min: 0, int: true }),
      30,
    );
  withGlobals(withOutputOptions(cmd, 'the quantized model'), { device: true });
  cmd.action(async (o: QuantizeCliOptions) => {
    const [
      { quantizeClassifier, formatQuantizationReport },
      { assertFreshOut, writeClassifier, writeFolderAtomic },
      { writeFileSynced },
      { ConfigError },
    ] = await Promise.all([
      import('../../compress/quantize/index.ts'),
      import('../artifacts.ts'),
      import('../../onnx/io.ts'),
      import('../../errors.ts'),
    ]);
    const progress = progressFor(o);
    const out = path.resolve(o.out);
    // Every input is checked before anything is written: out folder, flags, model, calibration and eval files.
    await assertFreshOut(out);
    if (o.mode === 'static' && !o.calibration)
      throw new ConfigError('--mode static needs --calibration FILE (domain text to calibrate activation ranges on)', {
        field: 'calibration',
      });
    if (o.mode !== 'static' && o.calibration)
      throw new ConfigError(`--calibration is for --mode static; --mode ${o.mode} needs no calibration`, {
        field: 'calibration',
      });
    if (o.format && o.mode !== 'dynamic')
      throw new ConfigError(`--format is for --mode dynamic, not ${o.mode}`, { field: 'format' });
    if (o.mode === 'int4' && (o.blockSize & (o.blockSize - 1)) !== 0)
      throw new ConfigError(`--block-size must be a power of two >= 16, got ${o.blockSize}`, {
        field: 'block-size',
        value: String(o.blockSize),
      });
    for (const [flag, list] of [
      ['include', o.include],
      ['exclude', o.exclude],
    ] as const) {
      for (const p of list ?? []) {
        try {
          new RegExp(p);
        } catch (e) {
          throw new ConfigError(`--${flag} '${p}' is not a regular expression: ${(e as Error).message}`, {
            field: flag,
            value: p,
          });
        }
      }
    }
    const src = await loadSource(o.model, o.home, '--model');
    const labels = src.info.labels;
    const calibrationTexts = o.calibration
      ? await readTexts(o.calibration, o.textColumn, 'calibration', o.calibrationSize)
      : undefined;
    const evalSet = o.eval ? await readLabelled(o.eval, o.textColumn, o.labelColumn, labels, 'eval') : undefined;
    progress.log(
      `quantizing ${o.model} (${o.mode}${o.mode === 'static' ? `, ${o.calibrationMethod} calibration on ${calibrationTexts!.length} texts` : ''})`,
    );
    const {
      model: qModel,
      result,
      report,
    } = await quantizeClassifier(src.model, {
      mode: o.mode,
      ...(o.format ? { format: o.format } : {}),
      ...(calibrationTexts ? { calibrationTexts, calibrationMethod: o.calibrationMethod } : {}),
      ...(o.percentile !== undefined ? { percentile: o.percentile } : {}),
      ...(o.include ? { include: o.include } : {}),
      ...(o.exclude ? { exclude: o.exclude } : {}),
      blockSize: o.blockSize,
      asymmetric: o.asymmetric === true,
      ...(o.accuracyLevel !== undefined ? { accuracyLevel: o.accuracyLevel as 0 | 1 | 2 | 3 | 4 } : {}),
      ...(o.minWeightElements !== undefined ? { minWeightElements: o.minWeightElements } : {}),
      embeddings: o.embeddings,
      ...(evalSet ? { eval: evalSet } : {}),
      maxLength: src.info.maxLength,
      iterations: o.latencyIterations,
      providers: providersFor(o.device),
    });
    const settings = {
      mode: o.mode,
      format: o.mode === 'dynamic' ? (o.format ?? 'matmul-integer') : null,
      calibration: o.calibration ? path.resolve(o.calibration) : null,
      calibration_method: o.mode === 'static' ? o.calibrationMethod : null,
      percentile: o.percentile ?? null,
      include: o.include ?? [],
      exclude: o.exclude ?? [],
      block_size: o.mode === 'int4' ? o.blockSize : null,
      asymmetric: o.mode === 'int4' ? o.asymmetric === true : null,
      accuracy_level: o.accuracyLevel ?? null,
      min_weight_elements: o.minWeightElements ?? null,
      embeddings: o.embeddings,
    };
    await writeFolderAtomic(out, async (tmp) => {
      await writeClassifier(qModel, tmp, {
        ...src.info,
        strategy: `${src.info.strategy}+${result.mode}`,
        quantization: {
          ...settings,
          from: o.model,
          quantized: result.quantized.length,
          embeddings: result.embeddings.length,
          skipped: result.skipped.length,
        },
      });
      await writeFileSynced(
        path.join(tmp, 'quantization.json'),
        new TextEncoder().encode(`${JSON.stringify(report, null, 2)}\n`),
      );
    });
    const reg = await registerDerived({
      home: o.home,
      out,
      name: o.name ?? nameFromOut(out),
      aliases: o.alias,
      sourceRef: o.model,
      sourceDir: src.dir,
      relation: 'quantized-from',
      experiment: 'quantize',
      params: settings,
      description: `${result.mode} of ${o.model}`,
      metrics: {
        size_ratio: report.sizeRatio,
        bytes_float: report.float.bytes,
        bytes_quantized: report.quantized.bytes,
        ...(report.speedupBatch1 !== undefined
          ? { speedup_batch1: report.speedupBatch1, speedup_throughput: report.speedupThroughput! }
          : {}),
        ...(report.quantized.accuracy !== undefined
          ? {
              accuracy: report.quantized.accuracy,
              macro_f1: report.quantized.macroF1!,
              accuracy_float: report.float.accuracy!,
              accuracy_delta: report.accuracyDelta!,
            }
          : {}),
      },
      metadata: {
        mode: result.mode,
        size_ratio: report.sizeRatio,
        ...(report.quantized.accuracy !== undefined
          ? { accuracy: report.quantized.accuracy, accuracy_delta: report.accuracyDelta! }
          : {}),
      },
    });
    const profile = o.profile
      ? await profileText(
          qModel,
          evalSet?.texts[0] ?? calibrationTexts?.[0] ?? 'hello',
          src.info.maxLength,
          providersFor(o.device),
        )
      : undefined;
    const value = { ...report, source: o.model, out, run_id: reg.runId, model: reg.model };
    emit(
      o,
      value,
      () =>
        `${formatQuantizationReport(report)}${profile ? `\n\nONNX Runtime profile of the quantized model (batch 1):\n${profile}` : ''}\nwritten to ${out}; registered ${reg.model.ref} (quantized-from ${reg.model.parents[0].model ?? reg.model.parents[0].external})`,
    );
  });
  return cmd;
}
