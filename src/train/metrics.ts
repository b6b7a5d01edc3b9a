/** Validation metrics for the Trainer, computed from the eval graph's outputs and the batches that produced them. */
import type { ort } from '../runtime/session.ts';

type Batch = Record<string, ort.Tensor>;

/**
 * Argmax accuracy of a [batch, classes] logits output against int64 labels; labels below 0 (unlabelled rows) are
 * skipped. Use as `validation: { data, metrics: logitsAccuracy() }`.
 */
export function logitsAccuracy(
  logits = 'logits',
  labels = 'labels',
): (outputs: Batch[], batches: Batch[]) => Record<string, number> {
  return (outputs, batches) => {
    let ok = 0;
    let n = 0;
    outputs.forEach((o, bi) => {
      const l = o[logits].data as Float32Array;
      const y = batches[bi][labels].data as BigInt64Array;
      const C = o[logits].dims[1];
      for (let i = 0; i < y.length; i++) {
        if (y[i] < 0n) continue;
        let a = 0;
        for (let c = 1; c < C; c++) if (l[i * C + c] > l[i * C + a]) a = c;
        n++;
        if (BigInt(a) === y[i]) ok++;
      }
    });
    return { accuracy: n ? ok / n : 0 };
  };
}
