/**
 * The fairness audit on the seeded synthetic loan task (test/eval/synthetic-bias.ts): audit of the biased model,
 * the budget verdict, group thresholds and reweighing with their accuracy cost. Prints what docs/eval.md shows.
 *   node --import tsx bench/fairness-synthetic.ts
 * With `--csv DIR`, writes the same seeded rows as DIR/{train,validation,test}.csv (columns text, decision,
 * district) for the command-line walk-through in docs/eval.md, and exits.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  argmax,
  checkFairnessBudget,
  disaggregate,
  fitGroupThresholds,
  formatBudget,
  formatDisaggregated,
  reweighingWeights,
  type DisaggregatedReport,
} from '../src/eval/index.ts';
import { renderTable } from '../src/util/table.ts';
import { BowLogistic, loanExamples, type LoanExample } from '../test/eval/synthetic-bias.ts';

const LABELS = ['deny', 'approve'];
const train = loanExamples(800, 'train');
const validation = loanExamples(400, 'validation');
const testSet = loanExamples(400, 'test');
const texts = (rows: LoanExample[]): string[] => rows.map((r) => r.text);

const csvAt = process.argv.indexOf('--csv');
if (csvAt >= 0) {
  const dir = process.argv[csvAt + 1] ?? 'loans';
  mkdirSync(dir, { recursive: true });
  for (const [name, rows] of [
    ['train', train],
    ['validation', validation],
    ['test', testSet],
  ] as const)
    writeFileSync(
      path.join(dir, `${name}.csv`),
      ['text,decision,district', ...rows.map((r) => `"${r.text}",${LABELS[r.label]},${r.group}`)].join('\n') + '\n',
    );
  console.log(
    `wrote ${dir}/train.csv (${train.length}), validation.csv (${validation.length}), test.csv (${testSet.length})`,
  );
  process.exit(0);
}
const audit = (pred: number[]): DisaggregatedReport =>
  disaggregate({
    labels: LABELS,
    yTrue: testSet.map((r) => r.label),
    yPred: pred,
    sensitive: { district: testSet.map((r) => r.group) },
    bootstrap: { iterations: 1000, seed: 0 },
  });
const accuracy = (pred: number[], truth: (r: LoanExample) => number): number =>
  pred.filter((p, i) => p === truth(testSet[i])).length / testSet.length;
const budget = { maxParityDifference: 0.1, minDisparateImpact: 0.8 };

const model = new BowLogistic(texts(train)).fit(
  texts(train),
  train.map((r) => r.label),
);
const probs = model.predictProba(texts(testSet));
const biased = probs.map(argmax);
const before = audit(biased);
console.log(formatDisaggregated(before));
console.log();
console.log(formatBudget(checkFairnessBudget(budget, { fairness: before })));

const thresholds = fitGroupThresholds({
  labels: LABELS,
  probabilities: model.predictProba(texts(validation)),
  yTrue: validation.map((r) => r.label),
  groups: validation.map((r) => r.group),
  tolerance: 0.02,
});
console.log();
const val = thresholds.spec.validation;
console.log(
  `Group thresholds on P(approve), chosen on validation (${val.count} rows): ` +
    Object.entries(thresholds.spec.thresholds)
      .map(([g, t]) => `${g} ${t.toFixed(4)}`)
      .join(', ') +
    `; validation accuracy ${(val.before.accuracy * 100).toFixed(2)}% -> ${(val.after.accuracy * 100).toFixed(2)}%,` +
    ` DP difference ${val.before.demographicParityDifference.toFixed(4)} -> ${val.after.demographicParityDifference.toFixed(4)}`,
);
const mitigated = thresholds.predict(
  probs,
  testSet.map((r) => r.group),
);
const { weights, factors } = reweighingWeights(
  train.map((r) => LABELS[r.label]),
  train.map((r) => r.group),
);
console.log(
  'Reweighing factors:',
  factors.map((f) => `${f.group}/${f.label} (${f.count}): ${f.weight.toFixed(4)}`).join(', '),
);
const reweighed = new BowLogistic(texts(train))
  .fit(
    texts(train),
    train.map((r) => r.label),
    weights,
  )
  .predictProba(texts(testSet))
  .map(argmax);

const recorded = (r: LoanExample): number => r.label;
const unbiased = (r: LoanExample): number => (r.qualified ? 1 : 0);
const row = (name: string, pred: number[]): string[] => {
  const v = audit(pred).views[0];
  const ci = (e: { estimate: number; lower?: number; upper?: number }): string =>
    `${e.estimate.toFixed(4)} [${e.lower!.toFixed(4)}, ${e.upper!.toFixed(4)}]`;
  return [
    name,
    (accuracy(pred, recorded) * 100).toFixed(2) + '%',
    (accuracy(pred, unbiased) * 100).toFixed(2) + '%',
    ci(v.demographicParityDifference),
    ci(v.disparateImpact),
    checkFairnessBudget(budget, { fairness: audit(pred) }).pass ? 'pass' : 'FAIL',
  ];
};
console.log();
console.log(
  renderTable(
    [
      'model (test, 400 rows)',
      'accuracy (recorded labels)',
      'accuracy (unbiased labels)',
      'DP difference [95% CI]',
      'disparate impact [95% CI]',
      'budget',
    ],
    [row('biased', biased), row('group thresholds', mitigated), row('reweighed training', reweighed)],
    ['left', 'right', 'right', 'left', 'left', 'left'],
  ),
);
