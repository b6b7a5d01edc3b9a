/**
 * Few-shot customization on USE-lite (the table in docs/customize.md, "Few-shot"): full CLINC150, k training
 * examples per in-scope intent drawn with a seed (and k validation examples per intent, drawn the same way from the
 * validation split), each method trained and then scored on the full in-scope test split; mean ± sd over seeds.
 *
 *   node --import tsx bench/fewshot.ts [--k 5,10,20] [--seeds 3] [--intents 150] [--methods head,lora,setfit,auto]
 *     [--auto-budget 2m]
 *     [--test-per-intent N] [--setfit '{"pairsPerExample":20}'] [--json]
 *
 * Methods are strategies of the strategy table with their defaults (maxLength 32, threads 2), and `auto`: the
 * search `tailor customize --strategy auto` runs (`searchCustomize`, the audit's recommendation for this many
 * examples per class first, its little-data regularisation) with `--auto-budget` (default 2m) per run.
 * `--intents` and `--test-per-intent` shrink the run (the first intents, sorted; the first test rows of each) for a
 * machine that cannot afford the whole of it. Also a section of `npm run bench` (`--sections fewshot`, options
 * through `--fewshot-args "..."`).
 */
import * as os from 'node:os';
import { customize } from '../src/customize/customize.ts';
import { STRATEGY_TABLE } from '../src/customize/strategies/index.ts';
import type { CustomizeOptions, LabeledText } from '../src/customize/types.ts';
import { loadUseLite } from '../src/models/use/index.ts';
import { argmaxRows, predictTexts } from '../src/models/text.ts';
import { seedFor } from '../src/util/hash.ts';
import { createRng } from '../src/util/rng.ts';
import { renderTable } from '../src/util/table.ts';
import { parseDuration } from '../src/util/duration.ts';
import { recommend } from '../src/audit/recommend.ts';
import { searchCustomize } from '../src/customize/search.ts';
import { recommendedSearch } from '../src/workflow/tailor.ts';
import type { CustomizeResult } from '../src/customize/customize.ts';
import { clincIntents, firstPerIntent, readClinc } from './clinc150.ts';
import { loadAverage, sayer } from './output.ts';

const args = process.argv.slice(2);
const argOf = (k: string): string | undefined => {
  const i = args.indexOf(k);
  return i >= 0 ? args[i + 1] : undefined;
};
const json = args.includes('--json');
const ks = (argOf('--k') ?? '5,10,20').split(',').map(Number);
const seeds = Number(argOf('--seeds') ?? 3);
const intents = clincIntents(Number(argOf('--intents') ?? 150));
const methods = (argOf('--methods') ?? 'head,lora,setfit,auto').split(',').filter(Boolean);
for (const m of methods)
  if (m !== 'auto' && !(m in STRATEGY_TABLE)) throw new Error(`--methods: unknown method '${m}' (strategies or auto)`);
const autoBudget = parseDuration(argOf('--auto-budget') ?? '2m', '--auto-budget');
const testPer = argOf('--test-per-intent');
const setfit = JSON.parse(argOf('--setfit') ?? '{}') as CustomizeOptions['setfit'];
const MAX_LENGTH = 32;
const THREADS = 2;
const say = sayer(json);
const loadAvg = loadAverage;

/** k rows of each kept intent, drawn without replacement by a generator seeded from (seed, split). */
export function drawPerIntent(rows: readonly LabeledText[], k: number, seed: number, split: string): LabeledText[] {
  const by = new Map<string, LabeledText[]>();
  for (const r of rows) if (intents.has(r.label)) (by.get(r.label) ?? by.set(r.label, []).get(r.label)!).push(r);
  const rng = createRng(seedFor(seed, `fewshot.${split}`));
  return [...by.keys()].sort().flatMap((label) => rng.shuffle([...by.get(label)!]).slice(0, k));
}

const test = testPer ? firstPerIntent(readClinc('test'), Number(testPer), intents) : readClinc('test');
const testRows = test.filter((r) => intents.has(r.label));
const { model: base } = await loadUseLite();
say(
  `few-shot CLINC150: ${intents.size} intents, k = ${ks.join(', ')} per intent (train and validation), ${seeds} seed(s), ` +
    `test ${testRows.length} rows; USE-lite, maxLength ${MAX_LENGTH}, ${THREADS} threads; ${os.cpus().length} cores, load ${loadAvg()}`,
);

interface Run {
  method: string;
  k: number;
  seed: number;
  accuracy: number;
  seconds: number;
  validation: number;
  bodySeconds?: number;
  /** auto: the configuration that won the search. */
  winner?: string;
}
const runs: Run[] = [];
for (const k of ks) {
  for (let seed = 0; seed < seeds; seed++) {
    const data = {
      train: drawPerIntent(readClinc('train'), k, seed, 'train'),
      validation: drawPerIntent(readClinc('validation'), k, seed, 'validation'),
    };
    for (const method of methods) {
      const t0 = performance.now();
      let winner: string | undefined;
      let r: CustomizeResult;
      if (method === 'auto') {
        // As `tailor customize --strategy auto`: the audit's rules (no target accuracy) order the search and add
        // their little-data regularisation; the baseline accuracy and latency do not enter those rules.
        const rec = recommend({ baselineAccuracy: 0, latencyP50Ms: 0, examplesPerClass: [k] });
        const s = await searchCustomize(base, data, {
          budgetSeconds: autoBudget,
          seed,
          ...recommendedSearch(rec),
          maxLength: MAX_LENGTH,
          threads: THREADS,
        });
        r = s.result!;
        winner = s.winner.config;
      } else
        r = await customize(base, data, {
          strategy: method,
          seed,
          maxLength: MAX_LENGTH,
          threads: THREADS,
          ...(method === 'setfit' && setfit ? { setfit } : {}),
        });
      const seconds = (performance.now() - t0) / 1000;
      const p = await predictTexts(
        r.model,
        testRows.map((x) => x.text),
        { maxLength: MAX_LENGTH, intraOpThreads: THREADS, batchSize: 256 },
      );
      const pred = argmaxRows(p.logits, p.classes);
      const accuracy = pred.filter((y, i) => r.labels[y] === testRows[i].label).length / testRows.length;
      const run: Run = {
        method,
        k,
        seed,
        accuracy,
        seconds,
        validation: r.report.accuracy,
        ...(r.report.bodyPhase ? { bodySeconds: r.report.bodyPhase.seconds } : {}),
        ...(winner ? { winner } : {}),
      };
      runs.push(run);
      process.stderr.write(
        `k=${k} seed=${seed} ${method}: test ${(100 * accuracy).toFixed(2)}%, validation ${(100 * run.validation).toFixed(2)}%, ` +
          `${seconds.toFixed(0)} s${winner ? ` (winner ${winner})` : ''}${r.report.bodyPhase ? ` (body phase ${r.report.bodyPhase.seconds.toFixed(0)} s, ${JSON.stringify(r.report.bodyPhase.metrics)})` : ''}; load ${loadAvg()}\n`,
      );
    }
  }
}

const stats = (xs: number[]): { mean: number; sd: number } => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, sd };
};
const rows = ks.flatMap((k) =>
  methods.map((method) => {
    const mine = runs.filter((r) => r.k === k && r.method === method);
    const acc = stats(mine.map((r) => 100 * r.accuracy));
    const sec = stats(mine.map((r) => r.seconds));
    return { k, method, accuracy: acc, seconds: sec, runs: mine.length };
  }),
);
if (json) console.log(JSON.stringify({ intents: intents.size, test: testRows.length, seeds, rows, runs }));
else {
  say(
    renderTable(
      ['k', 'method', 'test accuracy %', 'seconds'],
      rows.map((r) => [
        String(r.k),
        r.method,
        `${r.accuracy.mean.toFixed(2)} ± ${r.accuracy.sd.toFixed(2)}`,
        `${r.seconds.mean.toFixed(0)} ± ${r.seconds.sd.toFixed(0)}`,
      ]),
      ['right', 'left', 'right', 'right'],
    ),
  );
  say(`load at end ${loadAvg()}`);
}
