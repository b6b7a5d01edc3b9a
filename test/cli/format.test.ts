import assert from 'node:assert/strict';
import { test } from 'node:test';
import { verdict } from '../../src/cli/format.ts';

const m = (accuracy: number) => ({ accuracy, macro_f1: accuracy, count: 500 });
const cmp = (b: number, c: number, p: number) => ({ only_baseline_right: b, only_customized_right: c, p_value: p });

test('verdict says plainly when customizing did not beat the baseline, and otherwise reports significance', () => {
  assert.equal(
    verdict({ strategy: 'lora', comparison: cmp(14, 8, 0.2863), baseline: m(0.972), customized: m(0.96) }),
    'customizing did not beat the off-the-shelf baseline here (96.00% vs 97.20%; the difference is not significant, p = 0.286): the frozen encoder + linear head already separates this data well, and what training adds is within the noise of this eval set; keep the baseline unless more data or a target says otherwise',
  );
  assert.match(
    verdict({ strategy: 'lora', comparison: cmp(5, 8, 0.58), baseline: m(0.97), customized: m(0.976) }),
    /^no significant difference from the baseline at the 5% level \(p = 0\.580\)/,
  );
  assert.match(
    verdict({ strategy: 'lora', comparison: cmp(1, 20, 1e-5), baseline: m(0.9), customized: m(0.938) }),
    /significantly better/,
  );
  assert.match(
    verdict({ strategy: 'lora', comparison: cmp(20, 1, 1e-5), baseline: m(0.938), customized: m(0.9) }),
    /significantly WORSE/,
  );
  assert.equal(
    verdict({ strategy: 'none', comparison: cmp(0, 0, 1) }),
    'the baseline is kept as the model (no customization)',
  );
});
