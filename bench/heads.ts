/**
 * Head types on the full CLINC150 (150 intents, 15,000 train / 3,000 validation / 4,500 test rows): the `head`
 * strategy on USE-lite's frozen features with the linear head (the baseline, customize's defaults) and with the MLP
 * head (models/head.ts kind `mlp`: RoBERTa's classification head), at its default learning rate, at others, for 3
 * and 10 epochs (the head strategy's default, set from this table) and from a random start instead of the warm one. The features of every row are computed once and shared
 * (`precomputed`, as a search's trials share them); test accuracy runs each returned head on the test features.
 *
 *   node --import tsx bench/heads.ts [--json] [--max-length 32] [--threads 2] [--configs '<json list of customize options>']
 *
 * Reads ../shared/datasets/clinc150 beside the repository (or $CLINC150_DIR); `npm run bench -- --sections heads`
 * runs it as the `heads` section (about 6 minutes on 2 idle cores).
 */
import { customize } from '../src/customize/customize.ts';
import type { CustomizeOptions } from '../src/customize/types.ts';
import { headGraph, LOGITS } from '../src/models/head.ts';
import { loadUseLite } from '../src/models/use/index.ts';
import { textFeatures } from '../src/models/text.ts';
import { modelFromGraph } from '../src/onnx/ir.ts';
import { ort, Session } from '../src/runtime/session.ts';
import { renderTable } from '../src/util/table.ts';
import { readClinc } from './clinc150.ts';
import { sayer, loadAverage } from './output.ts';

const args = process.argv.slice(2);
const json = args.includes('--json');
const arg = (k: string, d: string): string => (args.includes(k) ? args[args.indexOf(k) + 1] : d);
const MAX_LENGTH = Number(arg('--max-length', '32'));
const THREADS = Number(arg('--threads', '2'));
type Config = Pick<CustomizeOptions, 'headType' | 'lr' | 'epochs' | 'warmStartHead'>;
const CONFIGS: Config[] = JSON.parse(
  arg(
    '--configs',
    JSON.stringify([
      { epochs: 3 },
      {},
      { headType: 'mlp', epochs: 3 },
      { headType: 'mlp' },
      { headType: 'mlp', lr: 1e-3 },
      { headType: 'mlp', lr: 1e-2, epochs: 3 },
      { headType: 'mlp', lr: 1e-3, warmStartHead: false },
    ]),
  ),
) as Config[];
const say = sayer(json);
const load = loadAverage;

const describe = (c: Config, epochs: unknown): string =>
  [
    c.headType ?? 'linear',
    c.lr !== undefined ? `lr ${c.lr}` : 'default lr',
    `${String(epochs)} epochs`,
    ...(c.warmStartHead === false ? ['random start'] : []),
  ].join(', ');

const train = readClinc('train');
const validation = readClinc('validation');
const test = readClinc('test');
say(`load ${load()}; ${train.length} train, ${validation.length} validation, ${test.length} test rows`);
const { model: base } = await loadUseLite();
const t0 = performance.now();
const feats = async (rows: readonly { text: string }[]): Promise<{ features: Float32Array; width: number }> =>
  textFeatures(
    base,
    rows.map((r) => r.text),
    { maxLength: MAX_LENGTH, intraOpThreads: THREADS },
  );
const [ftr, fva, fte] = [await feats(train), await feats(validation), await feats(test)];
const D = ftr.width;
say(`features of every row: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
const labels = [...new Set(train.map((r) => r.label))].sort();
const C = labels.length;

interface Row {
  config: string;
  lr: number;
  valAccuracy: number;
  testAccuracy: number;
  kept: string;
  ece: number;
  seconds: number;
}
const rows: Row[] = [];
for (const c of CONFIGS) {
  const t = performance.now();
  const r = await customize(
    base,
    { train, validation },
    {
      strategy: 'head',
      seed: 1,
      threads: THREADS,
      maxLength: MAX_LENGTH,
      labels,
      precomputed: { train: ftr.features, validation: fva.features, width: D },
      ...c,
    },
  );
  const seconds = (performance.now() - t) / 1000;
  const hg = headGraph(r.model);
  const s = await Session.create(modelFromGraph(hg.graph), { intraOpThreads: THREADS });
  const out = await s.run({ [hg.feature]: new ort.Tensor('float32', fte.features, [test.length, D]) }, [LOGITS]);
  await s.release();
  const logits = out[LOGITS].data as Float32Array;
  let correct = 0;
  test.forEach((row, i) => {
    let b = 0;
    for (let j = 1; j < C; j++) if (logits[i * C + j] > logits[i * C + b]) b = j;
    if (labels[b] === row.label) correct++;
  });
  const row: Row = {
    config: describe(c, r.lineage.hyperparameters.epochs),
    lr: r.lineage.hyperparameters.lr as number,
    valAccuracy: r.report.accuracy,
    testAccuracy: correct / test.length,
    kept: r.report.headChoice?.kept ?? `epoch ${r.report.bestEpoch + 1}`,
    ece: r.report.calibration.eceAfter,
    seconds,
  };
  rows.push(row);
  say(`${row.config}: validation ${(row.valAccuracy * 100).toFixed(2)}%, test ${(row.testAccuracy * 100).toFixed(2)}%`);
}
const baseline = rows[0];
say(
  `\nHead types on frozen USE-lite features, full CLINC150 (load ${load()}); the first row (the linear head at 3 epochs, the default before this table) is the baseline`,
);
say(
  renderTable(
    ['head', 'lr', 'val acc', 'test acc', 'test vs baseline', 'kept', 'ECE', 's'],
    rows.map((r) => [
      r.config,
      String(r.lr),
      `${(r.valAccuracy * 100).toFixed(2)}%`,
      `${(r.testAccuracy * 100).toFixed(2)}%`,
      `${((r.testAccuracy - baseline.testAccuracy) * 100).toFixed(2)}`,
      r.kept,
      r.ece.toFixed(4),
      r.seconds.toFixed(1),
    ]),
    'auto',
  ),
);
if (json) console.log(JSON.stringify({ maxLength: MAX_LENGTH, rows }, null, 2));
