/**
 * recommendedSearch: the search `--strategy auto` runs for an audit's recommendation (the strategy first, setfit on
 * little data, the rule's dropout and weight decay, the caller's fixed hyper-parameters).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { recommend } from '../../src/audit/recommend.ts';
import { describeConfig } from '../../src/customize/search.ts';
import { recommendedSearch } from '../../src/workflow/tailor.ts';

test('recommendedSearch on little data: setfit first, LoRA with dropout 0.1, weight decay 0.1', () => {
  const rec = recommend({ baselineAccuracy: 0.5, latencyP50Ms: 1, examplesPerClass: [5, 5, 5] });
  const s = recommendedSearch(rec);
  assert.equal(s.first, 'setfit');
  assert.equal(s.weightDecay, 0.1);
  assert.deepEqual(s.candidates.map(describeConfig), [
    'setfit lr 1e-2',
    'head lr 1e-2',
    'lora all-linear r8 dropout 0.1 lr 2e-3',
    'partial 1 block lr 5e-4',
    'full lr 1e-4',
    'head mlp lr 3e-4',
    'lora all-linear r16 dropout 0.1 lr 1e-3',
    'full lr 2e-4',
    'lora attention r8 dropout 0.1 lr 2e-3',
  ]);
});

test('recommendedSearch with plenty of data: no setfit, no regularisation; fixed hyper-parameters apply', () => {
  const rec = recommend({ baselineAccuracy: 0.5, latencyP50Ms: 1, examplesPerClass: [50, 50] });
  const s = recommendedSearch(rec, { rank: 4, targets: 'attention' });
  assert.equal(s.first, 'lora');
  assert.equal(s.weightDecay, undefined);
  // One of each strategy in turn (runSearch puts `first` ahead); with rank 4 and attention targets fixed, the
  // attention r8 configuration equals the all-linear r8 one and is kept once.
  assert.deepEqual(s.candidates.map(describeConfig), [
    'head lr 1e-2',
    'lora attention r4 lr 2e-3',
    'partial 1 block lr 5e-4',
    'full lr 1e-4',
    'head mlp lr 3e-4',
    'lora attention r4 lr 1e-3',
    'full lr 2e-4',
  ]);
  // A fixed head type applies to every configuration.
  const mlp = recommendedSearch(rec, { head: 'mlp' }).candidates;
  assert.ok(mlp.length === 7 && mlp.every((c) => c.head === 'mlp'), mlp.map(describeConfig).join(', '));
});
