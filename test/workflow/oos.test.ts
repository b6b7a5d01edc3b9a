/**
 * Out-of-scope detection in the product loop, on the embedded USE-lite base and the committed CLINC150 slice: 10
 * intents in scope, CLINC150's own out-of-scope queries ("oos") held out. `tailorModel({ oosLabel, abstain })` fits
 * the threshold on validation, stores it with the model, and the stored rule, reloaded by `Classifier.load` and by
 * `evaluateModel`, gives the figures the customize run reported. Trained with the oos rows as a class, the model
 * rejects by predicting it and the report counts that.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { abstainScore, OUT_OF_SCOPE, outOfScopeMetrics, type AbstainSpec } from '../../src/eval/abstain.ts';
import { Classifier } from '../../src/models/classifier.ts';
import { evaluateModel } from '../../src/workflow/evaluate.ts';
import { tailorModel, type TailorResult } from '../../src/workflow/tailor.ts';
import { clincIntents, firstPerIntent, readClinc } from '../clinc150.ts';
import { writeCsv } from '../cli/fixtures.ts';

const intents = clincIntents(10);
const train = firstPerIntent(readClinc('train'), 20, intents);
const test_ = firstPerIntent(readClinc('test'), 10, intents);
const oosTrain = readClinc('oos_train').slice(0, 40);
const oosVal = readClinc('oos_validation').slice(0, 40);
const oosTest = readClinc('oos_test').slice(0, 100);

let dir: string;
const files = {} as Record<'train' | 'trainWithOos' | 'test' | 'oosTest', string>;
const common = (): Parameters<typeof tailorModel>[0] => ({
  train: files.train,
  eval: [files.test, files.oosTest],
  labelColumn: 'intent',
  strategy: 'head',
  epochs: 2,
  maxLength: 32,
  threads: 2,
  home: path.join(dir, '.tailor'),
  out: '',
});

before(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'tailor-oos-'));
  files.train = writeCsv(path.join(dir, 'train.csv'), train);
  files.trainWithOos = writeCsv(path.join(dir, 'train-oos.csv'), [...train, ...oosTrain]);
  files.test = writeCsv(path.join(dir, 'test.csv'), test_);
  files.oosTest = writeCsv(path.join(dir, 'oos-test.csv'), oosTest);
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('abstain msp: fitted for 5% false rejections on validation, stored, and reloaded with the same answers', async () => {
  const r: TailorResult = await tailorModel({
    ...common(),
    out: path.join(dir, 'msp'),
    oosLabel: 'oos',
    abstain: { score: 'msp', oosValidation: oosVal.map((x) => x.text) },
  });
  const o = r.out_of_scope!;
  assert.ok(o, 'out_of_scope is reported');
  assert.equal(o.trainedClass, false);
  assert.deepEqual(r.data.labels, [...intents].sort(), "'oos' is not a class: train has no row of it");
  assert.equal(r.data.eval, test_.length);
  // Without abstention a closed-set model answers every oos query with an intent.
  assert.equal(o.withoutAbstention.outOfScope, oosTest.length);
  assert.equal(o.withoutAbstention.inScope, test_.length);
  assert.equal(o.withoutAbstention.outOfScopeRecall, 0);
  assert.equal(o.withoutAbstention.falseRejectionRate, 0);
  // The main metrics stay closed-set, on the in-scope rows only.
  assert.equal(r.customized.count, test_.length);
  const a = o.abstain!;
  assert.equal(a.score, 'msp');
  assert.deepEqual(a.target, { kind: 'false_rejection_rate', value: 0.05 });
  // Validation: 10% of the 200 train rows (20), FRR at most 5%: ⌊0.05 · 20⌋ = 1 row.
  assert.equal(a.validation.inScope, 20);
  assert.ok(a.validation.falseRejectionRate <= 0.05);
  assert.equal(a.validation.outOfScope, oosVal.length);
  const w = o.withAbstention!;
  // Detection beats chance: a threshold rejecting a share f of in-scope rows at random would reject f of oos too.
  assert.ok(w.outOfScopeRecall! > 0.2, `oos recall ${w.outOfScopeRecall}`);
  assert.ok(w.outOfScopeRecall! > 2 * w.falseRejectionRate!, JSON.stringify(w));
  assert.ok(w.falseRejectionRate! <= 0.2, `test FRR ${w.falseRejectionRate} far above the 5% target`);

  // Stored beside model.onnx, and the reloaded classifier gives exactly the reported eval figures.
  const file = path.join(r.artifacts.model, 'abstain.json');
  assert.ok(existsSync(file));
  assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')) as AbstainSpec, JSON.parse(JSON.stringify(a)));
  const clf = await Classifier.load(r.artifacts.model, { intraOpThreads: 2 });
  const rows = [...test_, ...oosTest];
  try {
    const texts = rows.map((x) => x.text);
    const preds = await clf.predict(texts);
    const logits = await clf.logits(texts);
    const k = intents.size;
    preds.forEach((p, i) => {
      // Rejected exactly when the row's log MSP is below the stored threshold; probabilities still returned.
      const score = abstainScore(logits.subarray(i * k, (i + 1) * k), 'msp');
      assert.equal(p.label === OUT_OF_SCOPE, score < a.threshold, `row ${i}: score ${score}, label ${p.label}`);
      assert.equal(p.probabilities.length, k);
    });
    assert.ok(preds.some((p) => p.label === OUT_OF_SCOPE));
    assert.deepEqual(
      outOfScopeMetrics(
        rows.map((x) => x.label),
        preds.map((p) => p.label),
        { oosLabel: 'oos' },
      ),
      w,
    );
  } finally {
    await clf.release();
  }

  // evaluate reads the stored rule too: the same figures on the same files.
  const e = await evaluateModel({
    model: r.artifacts.model,
    eval: [files.test, files.oosTest],
    textColumn: 'text',
    labelColumn: 'intent',
    latency: false,
    minGroupSize: 30,
    seed: 0,
    bootstrap: 10,
    oosLabel: 'oos',
    home: path.join(dir, '.tailor'),
  });
  assert.equal(e.report.count, test_.length, 'oos rows are left out of the closed-set report');
  assert.deepEqual(e.outOfScope?.withAbstention, w);
  assert.deepEqual(e.outOfScope?.withoutAbstention, o.withoutAbstention);
});

test('an explicit oos class: trained on oos rows, it rejects by predicting them, and energy abstention adds on top', async () => {
  const r = await tailorModel({
    ...common(),
    train: files.trainWithOos,
    out: path.join(dir, 'class'),
    oosLabel: 'oos',
    abstain: { score: 'energy', targetFrr: 0.1 },
  });
  const o = r.out_of_scope!;
  assert.equal(o.trainedClass, true);
  assert.deepEqual(r.data.labels, [...intents, 'oos'].sort());
  // The oos eval rows are an ordinary class of the closed-set report here.
  assert.equal(r.customized.count, test_.length + oosTest.length);
  const plain = o.withoutAbstention;
  assert.equal(plain.outOfScope, oosTest.length);
  assert.ok(plain.outOfScopeRecall! > 0.3, `the oos class catches oos queries: recall ${plain.outOfScopeRecall}`);
  const w = o.withAbstention!;
  assert.ok(w.outOfScopeRecall! >= plain.outOfScopeRecall!);
  assert.ok(w.falseRejectionRate! >= plain.falseRejectionRate!);
  assert.equal(o.abstain!.score, 'energy');
  assert.equal(o.abstain!.outOfScopeClass, 'oos');
  // The validation split holds oos rows (10% of the 40): they are the rule's out-of-scope validation rows.
  assert.equal(o.abstain!.validation.outOfScope, 4);
  assert.ok(o.abstain!.validation.falseRejectionRate <= 0.1);
});
