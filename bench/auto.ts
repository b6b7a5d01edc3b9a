/**
 * The automatic search on full CLINC150 (the customization issue's target: `tailor customize --strategy auto
 * --budget 10m` on 2 cores reaching test accuracy >= 94.80%): `searchCustomize` on USE-lite with the 15,000 train
 * and 3,000 validation utterances, then the winner's test accuracy on the 4,500 in-scope test utterances.
 *
 *   node --import tsx bench/auto.ts [--budget 10m] [--threads 2] [--max-length 32] [--batch-size 32] [--seed 1] [--json]
 *
 * This is the search `tailor customize --strategy auto` runs after its audit: without a target accuracy the audit
 * recommends lora (rule R4-no-target), so lora's configurations go first, and the audit has already encoded the
 * train and validation rows, which the search reuses; here the same `textFeatures` call stands in for the audit,
 * before the budget starts. The rest of the audit (baseline, latency) and the registry are left out; the budget
 * covers the search only, as in `tailor customize`. Reads
 * ../shared/datasets/clinc150 beside the repository (or $CLINC150_DIR). docs/customize.md ("Automatic search")
 * shows a run.
 */
import * as os from 'node:os';
import { mergedModel } from '../src/customize/save.ts';
import { formatSearch, searchCustomize, searchReport } from '../src/customize/search.ts';
import { loadUseLite } from '../src/models/use/index.ts';
import { argmaxRows, predictTexts, textFeatures } from '../src/models/text.ts';
import { parseDuration } from '../src/util/duration.ts';
import { readClinc } from './clinc150.ts';
import { loadAverage } from './output.ts';

const args = process.argv.slice(2);
const json = args.includes('--json');
const argOf = (k: string): string | undefined => {
  const i = args.indexOf(k);
  return i >= 0 ? args[i + 1] : undefined;
};
const budgetSeconds = parseDuration(argOf('--budget') ?? '10m', '--budget');
const threads = Number(argOf('--threads') ?? 2);
const maxLength = Number(argOf('--max-length') ?? 32);
const batchSize = Number(argOf('--batch-size') ?? 32);
const seed = Number(argOf('--seed') ?? 1);
const say = (s: string): void => {
  process.stderr.write(`${s}\n`);
};
const load = loadAverage;

const data = { train: readClinc('train'), validation: readClinc('validation') };
const test = readClinc('test');
const loadBefore = load();
say(
  `CLINC150: ${data.train.length} train / ${data.validation.length} validation / ${test.length} test; budget ${budgetSeconds} s, ` +
    `${threads} threads, maxLength ${maxLength}, batch ${batchSize}, seed ${seed}; ${os.cpus().length} cores, load average ${loadBefore}`,
);
const { model: base } = await loadUseLite();
// What the audit computes before the search (src/audit/index.ts: textFeatures over train and validation).
const tf = performance.now();
const encoded = await textFeatures(
  base,
  [...data.train, ...data.validation].map((r) => r.text),
  { maxLength, intraOpThreads: threads },
);
const n = data.train.length * encoded.width;
const features = {
  train: encoded.features.subarray(0, n),
  validation: encoded.features.subarray(n),
  width: encoded.width,
};
const auditFeatureSeconds = (performance.now() - tf) / 1000;
say(
  `features of the train and validation rows (the audit's, before the budget): ${auditFeatureSeconds.toFixed(0)} s, load ${load()}`,
);
const t0 = performance.now();
const s = await searchCustomize(base, data, {
  budgetSeconds,
  seed,
  first: 'lora',
  threads,
  maxLength,
  batchSize,
  features,
  onTrial: (t) =>
    say(
      `[${((performance.now() - t0) / 1000).toFixed(0)} s, load ${load()}] ${t.config} rung ${t.rung} (${t.trainRows} rows, ${t.epochs} epoch(s)): ` +
        (t.status === 'skipped'
          ? `skipped, ${t.note}`
          : `val ${(100 * t.accuracy!).toFixed(2)}% in ${t.seconds.toFixed(1)} s (${t.epochsRun} epoch(s))`),
    ),
});
const loadAfterSearch = load();
const final = mergedModel(s.result!, base);
const { logits, classes } = await predictTexts(
  final,
  test.map((r) => r.text),
  { maxLength, batchSize: 64, intraOpThreads: threads },
);
const pred = argmaxRows(logits, classes);
const labels = s.result!.labels;
const right = pred.filter((p, i) => labels[p] === test[i].label).length;
const testAccuracy = right / test.length;
const report = searchReport(s);
const summary = {
  budget_seconds: budgetSeconds,
  search_seconds: s.seconds,
  threads,
  max_length: maxLength,
  batch_size: batchSize,
  seed,
  cores: os.cpus().length,
  load_before: loadBefore,
  audit_feature_seconds: auditFeatureSeconds,
  load_after_search: loadAfterSearch,
  winner: s.winner.config,
  validation_accuracy: s.winner.accuracy,
  test_accuracy: testAccuracy,
  test_right: right,
  test_rows: test.length,
  search: report,
};
if (json) console.log(JSON.stringify(summary));
else {
  console.log(formatSearch(report));
  console.log(
    `\ntest accuracy of the winner (${s.winner.config}): ${(100 * testAccuracy).toFixed(2)}% (${right} of ${test.length}); ` +
      `search ${s.seconds.toFixed(0)} s of ${budgetSeconds} s; load average ${loadBefore} at the start, ${loadAfterSearch} after the search`,
  );
}
