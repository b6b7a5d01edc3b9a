/** A slice of CLINC150 as token tensors: the first `intents` intents (sorted), whitespace words, fixed length. */
import { ort } from '../../src/runtime/session.ts';
import { tensorData, type TrainData } from '../../src/train/trainer.ts';
import { readClinc, type ClincRow } from '../clinc150.ts';

export interface ClincSlice {
  train: TrainData;
  validation: TrainData;
  vocab: number;
  classes: number;
  validationLabels: number[];
}

export function clincSlice(intents: number, seq: number): ClincSlice {
  const train = readClinc('train');
  const val = readClinc('validation');
  const labels = [...new Set(train.map((r) => r.label))].sort().slice(0, intents);
  const labelId = new Map(labels.map((l, i) => [l, i]));
  const vocab = new Map<string, number>([
    ['[PAD]', 0],
    ['[UNK]', 1],
  ]);
  const trainRows = train.filter((r) => labelId.has(r.label));
  for (const r of trainRows)
    for (const w of r.text.toLowerCase().split(/\s+/).filter(Boolean)) if (!vocab.has(w)) vocab.set(w, vocab.size);
  const encode = (rows: ClincRow[]): { data: TrainData; labels: number[] } => {
    const kept = rows.filter((r) => labelId.has(r.label));
    const ids = new BigInt64Array(kept.length * seq);
    const mask = new Float32Array(kept.length * seq);
    const y = new BigInt64Array(kept.length);
    kept.forEach((r, i) => {
      const words = r.text.toLowerCase().split(/\s+/).filter(Boolean).slice(0, seq);
      words.forEach((w, j) => {
        ids[i * seq + j] = BigInt(vocab.get(w) ?? 1);
        mask[i * seq + j] = 1;
      });
      y[i] = BigInt(labelId.get(r.label) as number);
    });
    return {
      data: tensorData({
        input_ids: new ort.Tensor('int64', ids, [kept.length, seq]),
        attention_mask: new ort.Tensor('float32', mask, [kept.length, seq]),
        labels: new ort.Tensor('int64', y, [kept.length]),
      }),
      labels: Array.from(y, Number),
    };
  };
  const tr = encode(trainRows);
  const va = encode(val);
  return {
    train: tr.data,
    validation: va.data,
    vocab: vocab.size,
    classes: labels.length,
    validationLabels: va.labels,
  };
}
