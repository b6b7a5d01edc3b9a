import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/errors.ts';
import {
  AbstainRule,
  abstainedLabel,
  abstainScore,
  fitAbstainRule,
  OUT_OF_SCOPE,
  outOfScopeMetrics,
  thresholdText,
} from '../../src/eval/abstain.ts';

const close = (a: number, b: number, eps = 1e-12): void => assert.ok(Math.abs(a - b) < eps, `${a} != ${b}`);
const { log } = Math;
/** Two-class logits [ln q, 0] whose MSP is q / (q + 1) (for q >= 1): its msp score is log(q / (q + 1)). */
const odds = (q: number): number[] => [log(q), 0];

test('abstainScore: MSP (as its log) and energy by hand', () => {
  // softmax([ln 3, 0]) = [3/4, 1/4].
  close(abstainScore([log(3), 0], 'msp'), log(0.75));
  close(abstainScore([0, 0, 0, 0], 'msp'), log(0.25));
  // Margins of 40 and 50: both MSPs round to 1, their logs stay apart (−e^−40 vs −e^−50) and in order.
  assert.equal(1 / (1 + Math.exp(-40)), 1);
  close(abstainScore([40, 0], 'msp'), -Math.exp(-40), 1e-30);
  assert.ok(abstainScore([40, 0], 'msp') < abstainScore([50, 0], 'msp'));
  // T·logsumexp(l / T): logsumexp([ln 3, 0]) = ln 4; T = 2: 2 ln(e^{ln3/2} + 1) = 2 ln(√3 + 1).
  close(abstainScore([log(3), 0], 'energy'), log(4));
  close(abstainScore([log(3), 0], 'energy', 2), 2 * log(Math.sqrt(3) + 1));
  // Shift by the maximum: no overflow at logits of 1000, and energy moves with the scale where MSP does not.
  close(abstainScore([1000, 1000], 'energy'), 1000 + log(2), 1e-9);
  close(abstainScore([1000, 1000], 'msp'), log(0.5));
  close(abstainScore([1, 1], 'energy'), 1 + log(2));
});

test('fitAbstainRule: false-rejection target places the threshold between the r-th and (r+1)-th lowest score', () => {
  // MSPs 0.5, 0.6, 0.75, 0.8, 0.9 (q = 1, 1.5, 3, 4, 9); target 0.4 over 5 rows: r = 2 rejected, the threshold
  // halfway between the 2nd and 3rd lowest log MSP.
  const inScope = [odds(3), odds(1), odds(9), odds(1.5), odds(4)];
  const rule = fitAbstainRule({ labels: ['a', 'b'], inScope, targetFrr: 0.4 });
  close(rule.spec.threshold, (log(0.6) + log(0.75)) / 2);
  assert.deepEqual(rule.spec.target, { kind: 'false_rejection_rate', value: 0.4 });
  assert.deepEqual(rule.spec.validation, {
    inScope: 5,
    outOfScope: 0,
    falseRejectionRate: 0.4,
    outOfScopeRecall: null,
    inScopePrecision: null,
    targetMet: true,
  });
  assert.deepEqual(
    inScope.map((l) => rule.abstains(l)),
    [false, true, false, true, false],
  );
  // Target 0.3: r = ⌊1.5⌋ = 1, between 0.5 and 0.6. Target 0.1: r = 0, the lowest score itself (none rejected).
  close(fitAbstainRule({ labels: ['a', 'b'], inScope, targetFrr: 0.3 }).spec.threshold, (log(0.5) + log(0.6)) / 2);
  const none = fitAbstainRule({ labels: ['a', 'b'], inScope, targetFrr: 0.1 });
  close(none.spec.threshold, log(0.5));
  assert.equal(none.spec.validation.falseRejectionRate, 0);
  // Default target 5% of 20 rows: exactly 1 rejected (the floating 0.05 * 20 is not rounded down to 0).
  const twenty = Array.from({ length: 20 }, (_, i) => odds(1 + i));
  const d = fitAbstainRule({ labels: ['a', 'b'], inScope: twenty });
  assert.equal(d.spec.target.value, 0.05);
  close(d.spec.threshold, (log(0.5) + log(2 / 3)) / 2);
  assert.equal(d.spec.validation.falseRejectionRate, 0.05);
});

test('fitAbstainRule: ties at the threshold are accepted, so the achieved rate stays at or below the target', () => {
  const inScope = [odds(1), odds(3), odds(3), odds(3)];
  // r = 2 falls inside the tie at 0.75: the midpoint is log 0.75 itself and only the 0.5 row is below it.
  const rule = fitAbstainRule({ labels: ['a', 'b'], inScope, targetFrr: 0.5 });
  close(rule.spec.threshold, log(0.75));
  assert.equal(rule.spec.validation.falseRejectionRate, 0.25);
});

test('fitAbstainRule: energy score, and out-of-scope rows measured on the way', () => {
  // Energy of [x, x] is x + ln 2: in-scope 1, 2, 3, 4 (+ ln 2); out-of-scope 0.5, 2.5 (+ ln 2).
  const e = (x: number): number[] => [x, x];
  const rule = fitAbstainRule({
    labels: ['a', 'b'],
    score: 'energy',
    inScope: [e(1), e(2), e(3), e(4)],
    outOfScope: [e(0.5), e(2.5)],
    targetFrr: 0.25,
  });
  close(rule.spec.threshold, 1.5 + log(2));
  assert.equal(rule.spec.temperature, 1);
  // Rejected: in-scope 1 (1 of 4); out-of-scope 0.5 (1 of 2); accepted 3 in + 1 out.
  assert.equal(rule.spec.validation.falseRejectionRate, 0.25);
  assert.equal(rule.spec.validation.outOfScopeRecall, 0.5);
  assert.equal(rule.spec.validation.inScopePrecision, 0.75);
});

test('fitAbstainRule: precision target takes the lowest threshold reaching it, or the best precision when none does', () => {
  // Sorted MSPs: 0.5 out, 0.6 in, 0.75 out, 0.8 in, 0.9 in.
  const inScope = [odds(1.5), odds(4), odds(9)];
  const outOfScope = [odds(1), odds(3)];
  // Accept all: 3/5 = 0.6; reject 0.5: 3/4; reject 0.5, 0.6: 2/3; reject three: 2/2 = 1.
  const p = fitAbstainRule({ labels: ['a', 'b'], inScope, outOfScope, targetPrecision: 0.7 });
  close(p.spec.threshold, (log(0.5) + log(0.6)) / 2);
  assert.equal(p.spec.validation.inScopePrecision, 0.75);
  assert.equal(p.spec.validation.falseRejectionRate, 0);
  assert.equal(p.spec.validation.outOfScopeRecall, 0.5);
  assert.equal(p.spec.validation.targetMet, true);
  const q = fitAbstainRule({ labels: ['a', 'b'], inScope, outOfScope, targetPrecision: 0.9 });
  close(q.spec.threshold, (log(0.75) + log(0.8)) / 2);
  assert.equal(q.spec.validation.inScopePrecision, 1);
  close(q.spec.validation.falseRejectionRate, 1 / 3);
  // Out of reach: an out-of-scope row scores above every in-scope one.
  const r = fitAbstainRule({
    labels: ['a', 'b'],
    inScope: [odds(1.5), odds(3)],
    outOfScope: [odds(9), odds(1)],
    targetPrecision: 0.9,
  });
  assert.equal(r.spec.validation.targetMet, false);
  // Accept all 2/4; reject 0.5: 2/3; reject 0.5, 0.6: 1/2; reject three: 0/1. Best: 2/3, between 0.5 and 0.6.
  close(r.spec.threshold, (log(0.5) + log(0.6)) / 2);
  close(r.spec.validation.inScopePrecision!, 2 / 3);
});

test('fitAbstainRule: an explicit out-of-scope class counts as a rejection against the target', () => {
  // Class 'oos' (index 2): in-scope row 0 is predicted oos by the model. 4 in-scope rows, target 0.5: r = 2, one
  // of them already spent, so the threshold rejects only the lowest of the other three.
  const inScope = [
    [0, 0, 5],
    [log(3), 0, 0],
    [log(9), 0, 0],
    [log(4), 0, 0],
  ];
  const rule = fitAbstainRule({ labels: ['a', 'b', 'oos'], inScope, targetFrr: 0.5, outOfScopeClass: 'oos' });
  // MSPs of the three: 3/5, 9/11, 4/6; halfway between log 0.6 and log 2/3.
  close(rule.spec.threshold, (log(0.6) + log(2 / 3)) / 2);
  assert.equal(rule.spec.validation.falseRejectionRate, 0.5);
  assert.equal(rule.spec.outOfScopeClass, 'oos');
  assert.throws(
    () => fitAbstainRule({ labels: ['a', 'b'], inScope, outOfScopeClass: 'oos' }),
    (e: unknown) => e instanceof ConfigError && /out-of-scope class "oos" is not one of/.test(e.message),
  );
});

test('fitAbstainRule: bad options are ConfigErrors naming the option and its flag', () => {
  const inScope = [odds(1), odds(2)];
  for (const targetFrr of [0, 1, -0.1, 1.5, Number.NaN])
    assert.throws(
      () => fitAbstainRule({ labels: ['a', 'b'], inScope, targetFrr }),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.context.field === 'abstain.targetFrr' &&
        e.message.includes('--abstain-frr') &&
        e.message.includes('(0, 1)'),
    );
  assert.throws(
    () => fitAbstainRule({ labels: ['a', 'b'], inScope, targetPrecision: 0.9 }),
    (e: unknown) => e instanceof ConfigError && /needs out-of-scope validation rows/.test(e.message),
  );
  assert.throws(
    () => fitAbstainRule({ labels: ['a', 'b'], inScope, outOfScope: inScope, targetPrecision: 0.9, targetFrr: 0.1 }),
    /not both/,
  );
  assert.throws(
    () => fitAbstainRule({ labels: ['a', 'b'], inScope, score: 'entropy' as 'msp' }),
    (e: unknown) => e instanceof ConfigError && e.context.field === 'abstain.score' && /msp, energy/.test(e.message),
  );
  assert.throws(() => fitAbstainRule({ labels: ['a', 'b'], inScope: [] }), /needs in-scope validation rows/);
  assert.throws(() => fitAbstainRule({ labels: ['a', 'b'], inScope: [[1, 2, 3]] }), /row 0 has 3 logits, expected 2/);
});

test('thresholdText: an msp threshold as a probability, 1 - ε when it rounds to 1', () => {
  assert.equal(thresholdText({ score: 'msp', threshold: log(0.95) }), 'msp < 0.9500');
  assert.equal(thresholdText({ score: 'msp', threshold: -1e-20 }), 'msp < 1 - 1.00e-20');
  assert.equal(thresholdText({ score: 'energy', threshold: 7.4123 }), 'energy < 7.412');
});

test('AbstainRule: JSON round trip, field checks, and abstainedLabel', () => {
  const rule = fitAbstainRule({ labels: ['a', 'b'], inScope: [odds(1), odds(3), odds(9)], targetFrr: 0.4 });
  const back = AbstainRule.fromJSON(JSON.parse(JSON.stringify(rule)), 'abstain.json');
  assert.deepEqual(back.spec, rule.spec);
  assert.equal(abstainedLabel('a', odds(1), back), OUT_OF_SCOPE);
  assert.equal(abstainedLabel('a', odds(9), back), 'a');
  assert.equal(abstainedLabel('a', odds(1), undefined), 'a');
  assert.throws(() => back.abstains([1, 2, 3]), /3 entries, expected 2/);
  const bad = (patch: Record<string, unknown>, field: string): void =>
    assert.throws(
      () => AbstainRule.fromJSON({ ...rule.spec, ...patch }, 'abstain.json'),
      (e: unknown) => e instanceof ConfigError && e.context.field === field && e.message.startsWith('abstain.json: '),
    );
  bad({ kind: 'x' }, 'kind');
  bad({ score: 'entropy' }, 'score');
  bad({ threshold: null }, 'threshold');
  bad({ temperature: 0 }, 'temperature');
  bad({ target: { kind: 'recall', value: 1 } }, 'target');
  bad({ outOfScopeClass: 'zzz' }, 'outOfScopeClass');
});

test('outOfScopeMetrics: by hand, with abstentions and with an explicit oos class', () => {
  // In scope: a→a (right), a→b (wrong), b→__oos__ (rejected), b→oos (rejected by the class); out of scope: oos→oos,
  // oos→a (accepted), oos→__oos__.
  const yTrue = ['a', 'a', 'b', 'b', 'oos', 'oos', 'oos'];
  const yPred = ['a', 'b', OUT_OF_SCOPE, 'oos', 'oos', 'a', OUT_OF_SCOPE];
  assert.deepEqual(outOfScopeMetrics(yTrue, yPred, { oosLabel: 'oos' }), {
    inScope: 4,
    outOfScope: 3,
    inScopeAccuracy: 1 / 4,
    acceptedAccuracy: 1 / 2,
    falseRejectionRate: 2 / 4,
    outOfScopeRecall: 2 / 3,
    inScopePrecision: 2 / 3,
  });
  // Without oosLabel, 'oos' is an ordinary label: only OUT_OF_SCOPE rejects, and no row is out of scope.
  const plain = outOfScopeMetrics(yTrue, yPred);
  assert.equal(plain.outOfScope, 0);
  assert.equal(plain.outOfScopeRecall, null);
  assert.equal(plain.falseRejectionRate, 2 / 7);
  assert.throws(() => outOfScopeMetrics(['a'], []), /1 entries but yPred has 0/);
});
