/**
 * `tailor quantize`: dynamic INT8, static INT8 (QDQ, calibrated on domain text) or weight-only INT4 of a classifier,
 * measured against the float model (size, latency, accuracy, per-layer error), written as a new classifier folder
 * and registered as a model version whose lineage points at the source. The work is the library's `quantizeModel`.
 */
import { Command, Option } from 'commander';
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
import type { QuantizeModelOptions } from '../../workflow/compress.ts';

/** The library call's options, as commander parses them (the flags' names are the options' names). */
type QuantizeCliOptions = GlobalOptions & Omit<QuantizeModelOptions, 'providers' | 'progress' | 'home' | 'profile'>;

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
    const [{ quantizeModel }, { formatQuantizationReport }] = await Promise.all([
      import('../../workflow/compress.ts'),
      import('../../compress/quantize/index.ts'),
    ]);
    const { json: _json, quiet: _quiet, device, ...rest } = o;
    const r = await quantizeModel({ ...rest, providers: providersFor(device), progress: progressFor(o) });
    emit(
      o,
      r,
      () =>
        `${formatQuantizationReport(r)}${r.profile ? `\n\nONNX Runtime profile of the quantized model (batch 1):\n${r.profile}` : ''}\nwritten to ${r.out}; registered ${r.model.ref} (quantized-from ${r.model.parents[0].model ?? r.model.parents[0].external})`,
    );
  });
  return cmd;
}
