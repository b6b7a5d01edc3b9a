/**
 * Strategy comparison on USE-lite for a CLINC150 slice via `compareStrategies` (the table in docs/customize.md).
 *
 *   node --import tsx bench/customize-compare.ts [intents=10] [trainPerIntent=20] [valPerIntent=10] [epochs=2] [strategies=head,lora,bitfit,partial,full]
 *
 * Reads ../shared/datasets/clinc150 beside the repository (or $CLINC150_DIR): the first `intents` intents (sorted), the first rows
 * of each. LORA_TARGETS (attention | ffn | all-linear), LORA_R and LORA_LR override LoRA's settings. `150 100 20` is the full in-scope data (15,000 train / 3,000 validation); all seven strategies at 2 epochs take
 * about an hour on 2 cores.
 */
import * as os from 'node:os';
import { compareStrategies, formatComparison } from '../src/customize/compare.ts';
import type { CustomizeOptions } from '../src/customize/types.ts';
import type { Strategy } from '../src/customize/strategies/index.ts';
import type { TargetKind } from '../src/customize/sites.ts';
import { loadUseLite } from '../src/models/use/index.ts';
import { clincIntents, firstPerIntent, readClinc } from './clinc150.ts';

const [intents, perTrain, perVal, epochs] = [10, 20, 10, 2].map((d, i) => Number(process.argv[2 + i] ?? d));
const only = (process.argv[6] ?? 'head,lora,bitfit,partial,full').split(',') as Strategy[];
const keep = clincIntents(intents);
const data = {
  train: firstPerIntent(readClinc('train'), perTrain, keep),
  validation: firstPerIntent(readClinc('validation'), perVal, keep),
};
const lr: Partial<Record<Strategy, number>> = {
  head: 1e-2,
  lora: Number(process.env.LORA_LR ?? 2e-3),
  bitfit: 5e-3,
  ia3: 5e-3,
  partial: 5e-4,
  full: 1e-4,
  scratch: 1e-3,
};
const runs: CustomizeOptions[] = only.map((strategy) => ({
  strategy,
  epochs: strategy === 'head' ? 5 * epochs : epochs,
  lr: lr[strategy],
  seed: 1,
  maxLength: 32,
  batchSize: 16,
  ...(strategy === 'lora'
    ? {
        lora: {
          targets: { kind: (process.env.LORA_TARGETS ?? 'attention') as TargetKind },
          r: Number(process.env.LORA_R ?? 8),
          alpha: 2 * Number(process.env.LORA_R ?? 8),
        },
      }
    : {}),
}));
const load = os.loadavg()[0];
console.error(
  `CLINC150 slice: ${intents} intents, ${data.train.length} train / ${data.validation.length} validation; ${os.cpus().length} cores, load average ${load.toFixed(1)}`,
);
const { model } = await loadUseLite();
const rows = await compareStrategies(model, data, runs, (r) => {
  const { report: rep } = r;
  const warm =
    rep.headInit.kind === 'warm'
      ? `warm head ${(100 * rep.headInit.valAccuracy).toFixed(2)}% (${rep.headInit.seconds.toFixed(0)} s), `
      : '';
  const curve = rep.curve.map((e) => `${(100 * e.accuracy).toFixed(2)}%/${e.valLoss.toFixed(3)}`).join(' ');
  console.error(
    `done ${rep.strategy}: val accuracy ${(100 * rep.accuracy).toFixed(2)}% in ${rep.totalSeconds.toFixed(0)} s; ${warm}features ${(rep.featureSeconds ?? 0).toFixed(0)} s; epochs (accuracy/loss): ${curve}`,
  );
});
console.log(
  `CLINC150 slice: ${intents} intents x ${perTrain} train / ${perVal} validation utterances, USE-lite, ${epochs} epoch(s) (head: ${5 * epochs}), maxLength 32, seed 1; ${os.cpus().length} cores, load average at start ${load.toFixed(1)}, ${os.loadavg()[0].toFixed(1)} at end`,
);
console.log(formatComparison(rows));
