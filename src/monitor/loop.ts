/**
 * The loop that keeps a model tailored, after `watchOnce` has decided to retrain: build the retraining set (the
 * champion's reference rows plus de-duplicated, leakage-checked feedback labels), customize a challenger with
 * the champion's strategy and hyper-parameters (registered with no alias), score challenger and champion on the
 * same held-out rows (the champion's eval rows plus a seeded share of the labelled feedback), run the promotion
 * gate, and move `production` in one registry transaction when the challenger is blessed, or record why not.
 * The loop itself is a tracked run (experiment `monitor`); the challenger's customize runs are tagged with it and
 * the challenger's lineage names the champion (`retrained_from`).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../errors.ts';
import { Classifier } from '../models/classifier.ts';
import { openRegistry, parseModelRef, type Json, type ModelVersion } from '../registry/index.ts';
import type { TailorOptions, WorkflowProgress } from '../workflow/tailor.ts';
import { STRATEGY_CHOICES, type StrategyChoice } from '../workflow/strategies.ts';
import { accuracyGap, challengerFairness } from './fairness.ts';
import { evaluateGate, type GateResult, type GateThresholds } from './gate.ts';
import { feedbackLabels, readFeedback, readPredictions, rowKey, type PredictionRow } from './log.ts';
import type { Policy } from './policy.ts';
import { loadReferenceData, tailorWithReference } from './reference.ts';
import { retrainingSet } from './retrain.ts';
import { watchOnce, type WatchTick } from './run.ts';
import type { ReferenceProfile } from './profile.ts';
import type { MonitorOptions } from './report.ts';

/** Options of `retrainAndPromote`. */
export interface RetrainOptions {
  /** Registry folder (its predictions/ and feedback/ logs are read). */
  home: string;
  policy: Policy;
  /** The alias the champion holds and the challenger takes when blessed. Default `production`. */
  alias?: string;
  /** Folder for the challenger's output (default `<home>/monitor/retrain/<name>-<time>`); must not exist. */
  workDir?: string;
  /** Share of the labelled feedback held out for the gate, by a seeded hash of its row key. Default 0.3. */
  holdOutShare?: number;
  /** Fewest labelled feedback rows to retrain on; below it the loop skips. Default 1. */
  minFeedback?: number;
  seed?: number;
  now?: Date;
  /** Changes to the customize call (e.g. `epochs`); they win over the champion's and the policy's values. */
  tailor?: Partial<Pick<TailorOptions, 'epochs' | 'lr' | 'batchSize' | 'maxLength' | 'seed' | 'threads' | 'providers'>>;
  progress?: WorkflowProgress;
}

/** What one pass of the loop did. */
export interface RetrainOutcome {
  status: 'promoted' | 'refused' | 'skipped';
  /** One line per reason (the gate's failed checks when refused; why when skipped). */
  reasons: string[];
  /** The loop's tracked run. */
  runId: string;
  champion: { name: string; version: number };
  challenger?: { name: string; version: number; runId: string };
  strategy?: string;
  gate?: GateResult;
  retraining?: {
    examples: number;
    added: number;
    removed: Record<string, number>;
    newLabels: string[];
    fingerprint: string;
  };
  heldOut?: { rows: number; fromFeedback: number };
  /** Where `alias` points after the loop. */
  production: number;
}

/** Run params of the champion's customize run, as TailorOptions (snake_case -> camelCase). */
const HP: Record<string, keyof TailorOptions> = {
  epochs: 'epochs',
  lr: 'lr',
  batch_size: 'batchSize',
  batchSize: 'batchSize',
  max_length: 'maxLength',
  maxLength: 'maxLength',
  rank: 'rank',
  targets: 'targets',
  layers: 'layers',
  seed: 'seed',
  max_train_examples: 'maxTrainExamples',
  maxTrainExamples: 'maxTrainExamples',
};

function hyperparameters(from: Record<string, unknown>): Partial<TailorOptions> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(from)) {
    const key = HP[k];
    if (key && v !== null && v !== undefined) out[key] = v;
  }
  return out as Partial<TailorOptions>;
}

async function predictLabels(dir: string, texts: string[]): Promise<{ labels: string[]; p95Ms: number }> {
  const clf = await Classifier.load(dir);
  try {
    const labels = (await clf.predict(texts)).map((p) => p.label);
    // Latency as a request sees it: one text per call, over at most 50 texts.
    const times: number[] = [];
    for (const t of texts.slice(0, 50)) {
      const t0 = performance.now();
      await clf.predict([t]);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    const p95Ms = times.length ? times[Math.min(times.length - 1, Math.ceil(0.95 * times.length) - 1)] : 0;
    return { labels, p95Ms };
  } finally {
    await clf.release();
  }
}

async function appendJsonl(file: string, row: unknown): Promise<void> {
  await fs.promises.mkdir(path.dirname(file), { recursive: true });
  await fs.promises.appendFile(file, `${JSON.stringify(row)}\n`);
}

/**
 * Retrains the model the policy watches and promotes the challenger when the gate blesses it; see the module
 * comment. Every outcome is appended to `<home>/monitor/promotions.jsonl` and recorded in the loop's run.
 */
export async function retrainAndPromote(o: RetrainOptions): Promise<RetrainOutcome> {
  const ref = parseModelRef(o.policy.model);
  const name = ref.name;
  const alias = o.alias ?? ('alias' in ref && ref.alias !== 'latest' ? ref.alias : 'production');
  const now = o.now ?? new Date();
  const seed = o.seed ?? 0;
  const holdOutShare = o.holdOutShare ?? 0.3;
  if (!(holdOutShare > 0 && holdOutShare < 1))
    throw new ConfigError(`holdOutShare must be between 0 and 1 (exclusive), got ${holdOutShare}`, {
      field: 'holdOutShare',
      value: String(holdOutShare),
    });
  const reg = await openRegistry({ home: o.home });
  try {
    const champion: ModelVersion = await reg.getModel(`${name}@${alias}`);
    const championDir = await reg.modelPath(`${name}:${champion.version}`);
    const run = await reg.startRun({
      name: 'retrain',
      experiment: 'monitor',
      params: { model: name, alias, champion: champion.version, hold_out_share: holdOutShare, seed },
      tags: { kind: 'monitor-retrain', champion: `${name}:${champion.version}` },
    });
    const promotions = path.join(o.home, 'monitor', 'promotions.jsonl');
    const finish = async (outcome: RetrainOutcome): Promise<RetrainOutcome> => {
      await run.logArtifactBytes(`${JSON.stringify(outcome, null, 2)}\n`, 'outcome.json', 'report');
      await run.setTags({ decision: outcome.status });
      await appendJsonl(promotions, {
        time: now.toISOString(),
        model: name,
        status: outcome.status,
        champion: champion.version,
        challenger: outcome.challenger?.version ?? null,
        production: outcome.production,
        reasons: outcome.reasons,
        run: run.id,
      });
      await run.finish();
      return outcome;
    };
    try {
      const reference = await loadReferenceData(championDir);
      const training = reference.filter((r) => r.split !== 'eval');
      const evalRows = reference.filter((r) => r.split === 'eval');

      // Labelled traffic of this model, split by a seeded hash of the row key: the same row always falls on the
      // same side, so a later pass never trains on what an earlier one scored.
      const preds = (await readPredictions(o.home, { model: name })).rows;
      const feedback = (await readFeedback(o.home)).rows;
      const labels = feedbackLabels(feedback);
      const seen = new Set<string>();
      const labelled: PredictionRow[] = [];
      for (const p of preds) {
        const k = rowKey(p);
        if (seen.has(k) || !labels.has(k) || !p.input || !('text' in p.input)) continue;
        seen.add(k);
        labelled.push(p);
      }
      // SHA-256 rather than the project's FNV-1a: request ids differ in a digit or two, and FNV's top bits barely
      // move then, which put whole requests on one side.
      const isHeld = (p: PredictionRow): boolean =>
        createHash('sha256')
          .update(`${seed}:${rowKey(p)}`)
          .digest()
          .readUInt32BE(0) /
          2 ** 32 <
        holdOutShare;
      const heldFeedback = labelled.filter(isHeld);
      const trainFeedback = labelled.filter((p) => !isHeld(p));
      const base: Omit<RetrainOutcome, 'status' | 'reasons' | 'runId'> = {
        champion: { name, version: champion.version },
        production: champion.version,
      };
      if (trainFeedback.length < (o.minFeedback ?? 1))
        return await finish({
          ...base,
          status: 'skipped',
          runId: run.id,
          reasons: [
            `${trainFeedback.length} labelled feedback row(s) to train on (${labelled.length} labelled, ${heldFeedback.length} held out for the gate); need ${o.minFeedback ?? 1}`,
          ],
        });
      const heldOut = [
        ...evalRows.map((r) => ({ text: r.text, label: r.label })),
        ...heldFeedback.map((p) => ({ text: (p.input as { text: string }).text, label: labels.get(rowKey(p))! })),
      ];
      const set = retrainingSet({
        training: training.map((r) => ({ text: r.text, label: r.label })),
        predictions: trainFeedback,
        feedback,
        heldOut,
        labels: [...new Set(training.map((r) => r.label))],
      });
      await run.logMetrics({
        retraining_examples: set.examples.length,
        feedback_added: set.added,
        held_out: heldOut.length,
      });
      await run.logArtifactBytes(
        set.examples.map((e) => JSON.stringify({ text: e.text, label: e.label })).join('\n') + '\n',
        'retraining-set.jsonl',
        'dataset',
      );

      // The champion's recipe: its customize run's strategy and hyper-parameters, then the policy's, then the caller's.
      const champRun = champion.runId ? await reg.showRun(champion.runId) : undefined;
      const params = (champRun?.params ?? {}) as Record<string, Json>;
      const strategy = (
        o.policy.retrain.strategy === 'same' ? String(params.strategy ?? 'auto') : o.policy.retrain.strategy
      ) as StrategyChoice;
      if (!STRATEGY_CHOICES.includes(strategy))
        throw new ConfigError(`retrain strategy '${strategy}' is not one of ${STRATEGY_CHOICES.join(', ')}`, {
          field: 'retrain.strategy',
          value: strategy,
        });
      const baseSpec = typeof params.base === 'string' ? params.base : undefined;
      const work = path.resolve(
        o.workDir ??
          path.join(o.home, 'monitor', 'retrain', `${name.replace(/[^A-Za-z0-9._-]/g, '_')}-${now.getTime()}`),
      );
      await fs.promises.mkdir(work, { recursive: true });
      const trainFile = path.join(work, 'retraining-set.jsonl');
      await fs.promises.writeFile(
        trainFile,
        set.examples.map((e) => JSON.stringify({ text: e.text, label: e.label })).join('\n') + '\n',
      );
      o.progress?.log?.(`retraining ${name} (${strategy}) on ${set.examples.length} rows, ${set.added} from feedback`);
      const challengerResult = await tailorWithReference({
        ...hyperparameters(params),
        ...hyperparameters(o.policy.retrain.hyperparameters ?? {}),
        ...o.tailor,
        ...(baseSpec ? { base: baseSpec } : {}),
        train: trainFile,
        textColumn: 'text',
        labelColumn: 'label',
        strategy,
        out: path.join(work, 'challenger'),
        name,
        home: o.home,
        tags: { retrain_run: run.id },
        parents: [{ relation: 'retrained_from', model: `${name}:${champion.version}` }],
        ...(o.progress ? { progress: o.progress } : {}),
      });
      const challenger = { name, version: challengerResult.model.version, runId: challengerResult.run_id };

      // Both models on the same held-out rows, in one label space (the challenger may know new intents).
      const texts = heldOut.map((r) => r.text);
      const champ = await predictLabels(championDir, texts);
      const challengerDir = await reg.modelPath(`${name}:${challenger.version}`);
      const chall = await predictLabels(challengerDir, texts);
      const space = [...new Set([...heldOut.map((r) => r.label), ...champ.labels, ...chall.labels])].sort();
      const id = new Map(space.map((l, i) => [l, i]));
      const thresholds: GateThresholds = { ...o.policy.gate };
      const notes: string[] = [];
      // The fairness budget on the challenger: flip rates on the held-out texts, group limits on the policy's
      // fairness data (the log has no group column).
      const fairnessReports =
        thresholds.fairnessBudget || (thresholds.fairnessGapBudget !== undefined && o.policy.fairnessData)
          ? await challengerFairness(challengerDir, o.policy, texts, seed)
          : undefined;
      if (fairnessReports)
        await run.logArtifactBytes(`${JSON.stringify(fairnessReports, null, 2)}\n`, 'fairness.json', 'report');
      if (thresholds.fairnessGapBudget !== undefined && !fairnessReports?.fairness) {
        // Nothing to measure a gap on; say so rather than pass or fail silently.
        delete thresholds.fairnessGapBudget;
        notes.push(
          'fairness gap budget not checked: the feedback carries no group column and the policy names no gate.fairness_data',
        );
      }
      const gate = evaluateGate(
        heldOut.map((r) => id.get(r.label)!),
        space,
        {
          predictions: chall.labels.map((l) => id.get(l)!),
          latencyMs: chall.p95Ms,
          ...(fairnessReports ? { fairnessReports } : {}),
          ...(thresholds.fairnessGapBudget !== undefined && fairnessReports?.fairness
            ? { fairnessGap: accuracyGap(fairnessReports.fairness) }
            : {}),
        },
        { predictions: champ.labels.map((l) => id.get(l)!), latencyMs: champ.p95Ms },
        thresholds,
      );
      await run.logMetrics({
        challenger_accuracy: gate.challenger.accuracy,
        challenger_macro_f1: gate.challenger.macroF1,
        champion_accuracy: gate.champion!.accuracy,
        champion_macro_f1: gate.champion!.macroF1,
        challenger_p95_ms: chall.p95Ms,
        blessed: gate.blessed ? 1 : 0,
      });
      await run.logArtifactBytes(`${JSON.stringify(gate, null, 2)}\n`, 'gate.json', 'report');
      const common = {
        ...base,
        runId: run.id,
        challenger,
        strategy,
        gate,
        retraining: {
          examples: set.examples.length,
          added: set.added,
          removed: set.removed as Record<string, number>,
          newLabels: set.newLabels,
          fingerprint: set.fingerprint,
        },
        heldOut: { rows: heldOut.length, fromFeedback: heldFeedback.length },
      };
      if (!gate.blessed) return await finish({ ...common, status: 'refused', reasons: [...gate.reasons, ...notes] });
      await reg.setAlias(name, 'candidate', challenger.version);
      await reg.setAlias(name, alias, challenger.version);
      return await finish({
        ...common,
        status: 'promoted',
        production: challenger.version,
        reasons: [
          `blessed: ${gate.checks.map((c) => c.detail).join('; ')}`,
          `${name}@${alias}: ${champion.version} -> ${challenger.version}`,
          ...notes,
        ],
      });
    } catch (e) {
      await run.fail(e);
      throw e;
    }
  } finally {
    await reg.close();
  }
}

/** One `tailor watch` tick: check, and when the policy fires, retrain and (maybe) promote. */
export async function watchAndRetrain(
  o: RetrainOptions & { profile: ReferenceProfile; monitor?: Pick<MonitorOptions, 'embed' | 'cbpe'> },
): Promise<WatchTick & { retrain?: RetrainOutcome }> {
  const tick = await watchOnce(o.home, o.policy, o.profile, o.now, o.monitor);
  if (!tick.decision.fire) return tick;
  return { ...tick, retrain: await retrainAndPromote(o) };
}
