import { test } from 'node:test';
import assert from 'node:assert/strict';
import { recommend } from '../../src/audit/recommend.ts';

const plenty = [100, 120, 80];

test('R1: a baseline at or above the target needs no customization', () => {
  const r = recommend({ baselineAccuracy: 0.93, targetAccuracy: 0.93, latencyP50Ms: 5, examplesPerClass: plenty });
  assert.equal(r.strategy, 'none');
  assert.deepEqual(r.rules, ['R1-meets-target']);
  assert.deepEqual(r.compression, []);
  // Little data does not matter when nothing is trained.
  assert.deepEqual(
    recommend({ baselineAccuracy: 0.95, targetAccuracy: 0.9, latencyP50Ms: 5, examplesPerClass: [2, 3] }).rules,
    ['R1-meets-target'],
  );
});

test('R2/R3: the relative gap decides full fine-tuning vs LoRA, with 20% as the boundary', () => {
  // gap = (0.9 - 0.72) / 0.9 = 0.2 exactly: not above 20%, so LoRA.
  let r = recommend({ baselineAccuracy: 0.72, targetAccuracy: 0.9, latencyP50Ms: 5, examplesPerClass: plenty });
  assert.equal(r.strategy, 'lora');
  assert.deepEqual(r.rules, ['R3-moderate-gap']);
  assert.match(r.reasons[0].text, /20\.0% \(relative\) below the target 90\.0%/);
  r = recommend({ baselineAccuracy: 0.71, targetAccuracy: 0.9, latencyP50Ms: 5, examplesPerClass: plenty });
  assert.equal(r.strategy, 'full');
  assert.deepEqual(r.rules, ['R2-large-gap']);
});

test('R4: without a target, LoRA', () => {
  const r = recommend({ baselineAccuracy: 0.5, latencyP50Ms: 5, examplesPerClass: plenty });
  assert.equal(r.strategy, 'lora');
  assert.deepEqual(r.rules, ['R4-no-target']);
});

test('R5: latency over budget adds quantization, and distillation beyond 2x', () => {
  let r = recommend({
    baselineAccuracy: 0.5,
    targetAccuracy: 0.6,
    latencyP50Ms: 15,
    maxLatencyMs: 10,
    examplesPerClass: plenty,
  });
  assert.deepEqual(r.compression, ['quantize']);
  assert.deepEqual(r.rules, ['R3-moderate-gap', 'R5-latency']);
  r = recommend({
    baselineAccuracy: 0.95,
    targetAccuracy: 0.9,
    latencyP50Ms: 21,
    maxLatencyMs: 10,
    examplesPerClass: plenty,
  });
  assert.equal(r.strategy, 'none');
  assert.deepEqual(r.compression, ['quantize', 'distill']);
  assert.deepEqual(r.rules, ['R1-meets-target', 'R5-latency']);
  assert.deepEqual(
    recommend({ baselineAccuracy: 0.5, latencyP50Ms: 10, maxLatencyMs: 10, examplesPerClass: plenty }).compression,
    [],
  );
});

test('R6: little data per class turns full or LoRA into SetFit (or head below 2) with strong regularisation', () => {
  let r = recommend({ baselineAccuracy: 0.3, targetAccuracy: 0.9, latencyP50Ms: 5, examplesPerClass: [10, 12, 30] });
  assert.equal(r.strategy, 'setfit');
  assert.deepEqual(r.rules, ['R2-large-gap', 'R6-little-data']);
  assert.deepEqual(r.hyperparameters, { weightDecay: 0.1, loraDropout: 0.1 });
  assert.equal(
    r.reasons[1].text,
    'only 12 train examples per class (median; under 20): setfit instead of full: contrastive pairs of training texts ' +
      'give the encoder many signals from few examples with strong regularisation (weight decay 0.1, adapter dropout ' +
      '0.1 for LoRA) to avoid memorising the training set',
  );
  r = recommend({ baselineAccuracy: 0.3, latencyP50Ms: 5, examplesPerClass: [3, 4, 4, 20] });
  assert.equal(r.strategy, 'setfit');
  // The median of an even count is the mean of the middle two.
  assert.match(r.reasons[1].text, /only 4 train examples per class \(median; under 20\): setfit instead of lora/);
  r = recommend({ baselineAccuracy: 0.3, latencyP50Ms: 5, examplesPerClass: [1, 1, 2] });
  assert.equal(r.strategy, 'head');
  assert.match(
    r.reasons[1].text,
    /only 1 train examples per class .*: head instead of lora: too few for a same-label pair/,
  );
});

test('bad targets and budgets are ConfigErrors naming the field', () => {
  assert.throws(
    () => recommend({ baselineAccuracy: 0.5, targetAccuracy: 1.5, latencyP50Ms: 1, examplesPerClass: plenty }),
    /target accuracy must be in \(0, 1\], got 1\.5/,
  );
  assert.throws(
    () => recommend({ baselineAccuracy: 0.5, maxLatencyMs: -1, latencyP50Ms: 1, examplesPerClass: plenty }),
    /max latency must be a positive number of ms, got -1/,
  );
});
