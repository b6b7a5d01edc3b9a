// The library API in one file: customize the embedded base on a CSV, then answer texts with the new model.
// Run from the repository: npm run example (or, with the package installed: node quickstart.mjs)
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadClassifier, tailorModel } from 'tailor';

const data = new URL('../test/fixtures/clinc150/', import.meta.url).pathname;
const work = mkdtempSync(path.join(os.tmpdir(), 'tailor-example-'));

const r = await tailorModel({
  train: path.join(data, 'train.csv'),
  eval: path.join(data, 'test.csv'),
  labelColumn: 'intent',
  strategy: 'lora',
  epochs: 2,
  maxLength: 32,
  out: path.join(work, 'intents'),
  home: path.join(work, '.tailor'),
  progress: { log: (line) => console.error(line) },
});
console.log(`${r.model.ref}: ${r.strategy}, accuracy ${(r.customized.accuracy * 100).toFixed(2)}% ` +
  `(baseline ${(r.baseline.accuracy * 100).toFixed(2)}%, McNemar p = ${r.comparison.p_value.toPrecision(3)})`);

const clf = await loadClassifier(r.model.ref, { home: path.join(work, '.tailor') });
for (const p of await clf.predict(['how much money is in my checking account', 'book me a flight to paris'])) {
  console.log(p.label, p.confidence.toFixed(3));
}
await clf.release();
