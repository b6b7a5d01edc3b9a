/**
 * Automatic customization: successive halving (Jamieson & Talwalkar, 2016; the bracket Hyperband repeats, Li et al.,
 * 2018) over strategies and their hyper-parameters under a wall-clock budget. Every candidate configuration trains
 * on a small stratified fraction of the training data at rung 0; the best 1/eta by validation accuracy (then
 * log-loss) go on to a rung with eta times the data, and the last rung trains the one survivor on all of it for
 * `maxEpochs` epochs with early stopping. Trials restart from the base at each rung (no weights carried over), so a
 * trial's result depends only on its configuration, its rung and the seed.
 *
 * The budget. The work every trial shares (the frozen encoder's features of the train and validation rows and the
 * warm head fitted on them) is done once, first, and counts against the budget. A trial's cost is estimated from
 * the measured time of an earlier trial of the same configuration, else of the same strategy: its fixed part
 * (graph, sessions, the final validation pass) plus, per epoch, one validation pass and a training time per row.
 * A trial starts only when its estimate fits the time left after keeping back the estimated cost of the last rung
 * for the current leader; the last rung itself is shortened to the epochs that fit. A trial is never interrupted,
 * and the first trial of a strategy has no estimate yet (it starts when any time is left; the search's very first
 * trial always runs, so there is a result), so the search ends at most one trial's time past the budget: by how far
 * the last trial outran its estimate (or, when the setup itself outran the budget, by that plus the first trial). Everything is deterministic given the seed except these timing-driven skips
 * and shortenings, which the trial table records.
 */
import { ConfigError } from '../errors.ts';
import type { HeadKind } from '../models/head.ts';
import type { Model } from '../models/model.ts';
import { DEFAULT_MAX_LENGTH, encodeTextBatch, featureSession, textFeatures } from '../models/text.ts';
import { fitWarmHead, type WarmHead } from '../train/warm-head.ts';
import { createRng } from '../util/rng.ts';
import { seedFor } from '../util/hash.ts';
import { renderTable } from '../util/table.ts';
import { customize, labelIds, type CustomizeResult } from './customize.ts';
import { defaultLrOf, STRATEGY_TABLE, strategyDef, type Strategy } from './strategies/index.ts';
import type { TargetKind } from './sites.ts';
import type { CustomizeData, CustomizeOptions } from './types.ts';

/** One point of the search space: a strategy and the hyper-parameters that differ from its defaults. */
export interface SearchConfig {
  strategy: Strategy;
  /** Peak learning rate (default: the strategy's). */
  lr?: number;
  /**
   * lora: rank (alpha = 2·rank, as `--rank`), which linear modules get adapters (a kind, or a regular expression
   * over module paths as `--targets`) and the adapters' dropout.
   */
  lora?: { r: number; targets: string; dropout?: number };
  /** partial: the top encoder blocks that train. */
  partial?: { layers: number };
  /** full: layer-wise learning-rate decay. */
  layerDecay?: number;
  /** The head's kind (models/head.ts); absent: linear. */
  head?: HeadKind;
}

/** A rung of the halving schedule: how many configurations run on it and with what resources. */
export interface Rung {
  rung: number;
  configs: number;
  /** Fraction of the training rows (stratified by label; the rows of a rung include those of the rungs below). */
  fraction: number;
  /** Epochs over those rows (the last rung's are a maximum: early stopping may end it sooner). */
  epochs: number;
}

export interface ScheduleOptions {
  /** Configurations at rung 0. */
  configs: number;
  /** Keep the best 1/eta at each rung and give them eta times the data (default 3). */
  eta?: number;
  /** Data fraction at rung 0 (default 1/eta²); it grows eta-fold per rung up to all the data. */
  minFraction?: number;
  /** Epochs of the last rung, over all the data (default 2). */
  maxEpochs?: number;
}

/**
 * The successive-halving schedule: rung i runs floor(configs / eta^i) configurations on minFraction·eta^i of the
 * data for one epoch, until a rung would keep one configuration; that last rung trains it on all the data for
 * `maxEpochs`. A rung whose resources equal the rung's below it is left out (re-running a configuration with the
 * same data and epochs gives the same result), so small data sets, where the fraction reaches 1 early, get fewer
 * rungs. Pure.
 */
export function halvingSchedule(o: ScheduleOptions): Rung[] {
  const eta = o.eta ?? 3;
  const maxEpochs = o.maxEpochs ?? 2;
  const minFraction = o.minFraction ?? 1 / (eta * eta);
  if (!Number.isInteger(o.configs) || o.configs < 1)
    throw new ConfigError(`a search needs at least one configuration, got ${o.configs}`, {
      field: 'configs',
      value: String(o.configs),
    });
  if (!(eta > 1)) throw new ConfigError(`eta must be above 1, got ${eta}`, { field: 'eta', value: String(eta) });
  if (!(minFraction > 0 && minFraction <= 1))
    throw new ConfigError(`minFraction must lie in (0, 1], got ${minFraction}`, {
      field: 'minFraction',
      value: String(minFraction),
    });
  if (!Number.isInteger(maxEpochs) || maxEpochs < 1)
    throw new ConfigError(`maxEpochs must be a positive integer, got ${maxEpochs}`, {
      field: 'maxEpochs',
      value: String(maxEpochs),
    });
  const planned: Omit<Rung, 'rung'>[] = [];
  for (let i = 0; ; i++) {
    const n = Math.floor(o.configs / eta ** i + 1e-9);
    if (n <= 1) {
      planned.push({ configs: 1, fraction: 1, epochs: maxEpochs });
      break;
    }
    planned.push({ configs: n, fraction: Math.min(1, minFraction * eta ** i), epochs: 1 });
  }
  const rungs: Rung[] = [];
  for (const r of planned) {
    const prev = rungs[rungs.length - 1];
    if (prev && prev.fraction === r.fraction && prev.epochs === r.epochs) continue;
    rungs.push({ rung: rungs.length, ...r });
  }
  return rungs;
}

/**
 * The default search space, in search order (`orderCandidates`): the linear head on frozen features; LoRA on every
 * linear layer (ranks 8 and 16) and on the attention projections; the top encoder block; full fine-tuning at two
 * learning rates; an MLP head on frozen features. Learning rates are the strategies' defaults and their neighbours (the issue's CLINC150 runs).
 * The head type is a dimension where it is cheap: the head strategy also runs with an MLP head (RoBERTa's
 * classification head, trained on the same cached features). With `littleData` (the audit's rule R6: under 20
 * training rows per label) `setfit` joins them.
 */
export function defaultCandidates(first?: string, o: { littleData?: boolean } = {}): SearchConfig[] {
  const all: SearchConfig[] = [
    // Few examples per label (the audit's rule R6): SetFit's contrastive pairs, the few-shot table's best row.
    ...(o.littleData ? [{ strategy: 'setfit' as const }] : []),
    { strategy: 'head' },
    { strategy: 'lora', lora: { r: 8, targets: 'all-linear' }, lr: 2e-3 },
    { strategy: 'lora', lora: { r: 16, targets: 'all-linear' }, lr: 1e-3 },
    { strategy: 'lora', lora: { r: 8, targets: 'attention' }, lr: 2e-3 },
    { strategy: 'partial', partial: { layers: 1 }, lr: 5e-4 },
    { strategy: 'full', lr: 1e-4 },
    { strategy: 'full', lr: 2e-4 },
    // In the place of full fine-tuning at 5e-5, so that the bracket stays 8 -> 2 -> 1 (the head type is searched
    // where it is cheap: on the cached features; full at 5e-5 was pruned at rung 0 of the
    // 10-minute full-CLINC150 search, docs/customize.md).
    { strategy: 'head', head: 'mlp' },
  ];
  return orderCandidates(all, first);
}

/**
 * The search order: strategy `first` (the audit's) first, then one configuration of each strategy in turn (round
 * robin, each strategy's own in the given order), so that a budget which runs out at rung 0 has still tried every
 * strategy once before a second configuration of any. Stable and pure.
 */
export function orderCandidates(candidates: readonly SearchConfig[], first?: string): SearchConfig[] {
  const groups = new Map<string, SearchConfig[]>();
  if (first !== undefined && candidates.some((c) => c.strategy === first)) groups.set(first, []);
  for (const c of candidates) {
    const g = groups.get(c.strategy);
    if (g) g.push(c);
    else groups.set(c.strategy, [c]);
  }
  const out: SearchConfig[] = [];
  for (let i = 0; out.length < candidates.length; i++)
    for (const g of groups.values()) if (i < g.length) out.push(g[i]);
  return out;
}

/**
 * `candidates` with the hyper-parameters a caller fixed (`--lr`, `--rank`, `--targets`, `--layers`, the audit's
 * adapter dropout) set in every configuration they apply to; configurations that become equal are kept once.
 */
export function fixCandidates(
  candidates: readonly SearchConfig[],
  fixed: { lr?: number; rank?: number; targets?: string; loraDropout?: number; layers?: number; head?: HeadKind },
): SearchConfig[] {
  const out = new Map<string, SearchConfig>();
  for (const c of candidates) {
    const f: SearchConfig = {
      ...c,
      ...(fixed.lr !== undefined ? { lr: fixed.lr } : {}),
      ...(c.lora
        ? {
            lora: {
              ...c.lora,
              ...(fixed.rank !== undefined ? { r: fixed.rank } : {}),
              ...(fixed.targets !== undefined ? { targets: fixed.targets } : {}),
              ...(fixed.loraDropout !== undefined ? { dropout: fixed.loraDropout } : {}),
            },
          }
        : {}),
      ...(c.partial && fixed.layers !== undefined ? { partial: { layers: fixed.layers } } : {}),
      ...(fixed.head !== undefined ? { head: fixed.head } : {}),
    };
    if (f.head === 'linear') delete f.head;
    const key = describeConfig(f);
    if (!out.has(key)) out.set(key, f);
  }
  return [...out.values()];
}

/** A configuration as one short line: `lora all-linear r8 lr 2e-3`. */
export function describeConfig(c: SearchConfig): string {
  const parts: string[] = [c.strategy];
  if (c.lora)
    parts.push(
      TARGET_KINDS.includes(c.lora.targets) ? c.lora.targets : `/${c.lora.targets}/`,
      `r${c.lora.r}`,
      ...(c.lora.dropout ? [`dropout ${c.lora.dropout}`] : []),
    );
  if (c.partial) parts.push(`${c.partial.layers} block${c.partial.layers === 1 ? '' : 's'}`);
  if (c.layerDecay !== undefined) parts.push(`decay ${c.layerDecay}`);
  // `head mlp lr 3e-4`, `lora all-linear r8 mlp head lr 2e-3`.
  if (c.head && c.head !== 'linear') parts.push(c.strategy === 'head' ? c.head : `${c.head} head`);
  const lr = c.lr ?? defaultLrOf(STRATEGY_TABLE[c.strategy], c.head);
  parts.push(`lr ${lr.toExponential().replace(/\.?0*e\+?/, 'e')}`);
  return parts.join(' ');
}

const TARGET_KINDS: readonly string[] = ['attention', 'ffn', 'all-linear'] satisfies TargetKind[];

/** The customize options a configuration sets. */
export function configOptions(
  c: SearchConfig,
): Pick<CustomizeOptions, 'strategy' | 'lr' | 'lora' | 'partial' | 'layerDecay' | 'headType'> {
  return {
    strategy: c.strategy,
    ...(c.head ? { headType: c.head } : {}),
    ...(c.lr !== undefined ? { lr: c.lr } : {}),
    ...(c.lora
      ? {
          lora: {
            r: c.lora.r,
            alpha: 2 * c.lora.r,
            targets: TARGET_KINDS.includes(c.lora.targets) ? { kind: c.lora.targets as TargetKind } : c.lora.targets,
            ...(c.lora.dropout !== undefined ? { dropout: c.lora.dropout } : {}),
          },
        }
      : {}),
    ...(c.partial ? { partial: { layers: c.partial.layers } } : {}),
    ...(c.layerDecay !== undefined ? { layerDecay: c.layerDecay } : {}),
  };
}

/**
 * Row indices of a stratified `fraction` of `labels` (each label keeps round(fraction·count) rows, at least one),
 * in file order. Each label's rows are shuffled once from the seed, and a fraction takes a prefix of that order, so
 * a larger fraction's rows include a smaller one's. Pure.
 */
export function stratifiedRows(labels: readonly string[], fraction: number, seed: number): number[] {
  if (fraction >= 1) return labels.map((_, i) => i);
  const byLabel = new Map<string, number[]>();
  labels.forEach((l, i) => {
    const rows = byLabel.get(l);
    if (rows) rows.push(i);
    else byLabel.set(l, [i]);
  });
  const keep: number[] = [];
  for (const [label, rows] of byLabel) {
    createRng(seedFor(seed, `search-rows:${label}`)).shuffle(rows);
    keep.push(...rows.slice(0, Math.max(1, Math.round(fraction * rows.length))));
  }
  return keep.sort((a, b) => a - b);
}

function labelCounts(labels: readonly string[]): number[] {
  const n = new Map<string, number>();
  for (const l of labels) n.set(l, (n.get(l) ?? 0) + 1);
  return [...n.values()];
}

/** What a trial runner is asked to do. */
export interface TrialPlan {
  config: SearchConfig;
  rung: number;
  /** Indices into the training rows (a stratified fraction, or all of them). */
  rows: readonly number[];
  fraction: number;
  epochs: number;
  /** Early stopping (the last rung only). */
  patience?: number;
}

/** What a trial gives back: its validation score and where its time went. */
export interface TrialOutcome {
  /** Validation accuracy and mean log-loss of the returned (best, calibrated) weights. */
  accuracy: number;
  logLoss: number;
  /** Wall-clock seconds of each epoch run (training + validation). */
  epochSeconds: number[];
  /** The trained model, when the runner trains one (kept for the winner only). */
  result?: CustomizeResult;
}

/** Trains configurations; `customizeTrials` is the real one, tests inject their own. */
export interface TrialRunner {
  /** Work every trial shares, done once before the first (its time counts against the budget). */
  prepare?(): Promise<{ validationSeconds?: number }>;
  run(plan: TrialPlan): Promise<TrialOutcome>;
}

/** One row of the trial table. */
export interface TrialRecord {
  /** Position in the candidate list (the search order). */
  candidate: number;
  config: string;
  strategy: Strategy;
  rung: number;
  fraction: number;
  trainRows: number;
  /** Epochs planned (the last rung: the maximum after any shortening for the budget) and epochs run. */
  epochs: number;
  epochsRun: number;
  seconds: number;
  /** Absent for a trial skipped for the budget. */
  accuracy?: number;
  logLoss?: number;
  /** winner; promoted to the next rung; pruned (ran, not promoted); skipped (never ran: the budget). */
  status: 'winner' | 'promoted' | 'pruned' | 'skipped';
  /** Why a trial was skipped or shortened (timing-driven decisions). */
  note?: string;
  /** Run on the last rung with time left after the schedule (see `SearchOptions.fill`), not promoted there. */
  extra?: boolean;
}

/** The search's report (JSON): the schedule, every trial, the winner and why. */
export interface SearchReport {
  budgetSeconds: number;
  seed: number;
  eta: number;
  maxEpochs: number;
  patience: number;
  schedule: Rung[];
  candidates: string[];
  /** Seconds of the work shared by all trials (features, warm head). */
  setupSeconds: number;
  /** Estimated seconds of one validation pass (from the setup's feature pass), used by the cost estimates. */
  validationSeconds: number;
  seconds: number;
  trials: TrialRecord[];
  /** The winning trial (an entry of `trials`). */
  winner: TrialRecord;
  /** Why the winner won and what the budget changed, in sentences. */
  reasons: string[];
}

export interface SearchResult extends SearchReport {
  /** The winner's trained model (when the runner trains models). */
  result?: CustomizeResult;
}

export interface SearchOptions extends Omit<ScheduleOptions, 'configs'> {
  /** Wall-clock budget of the whole search, setup included. */
  budgetSeconds: number;
  seed?: number;
  /** The search space, in search order (`orderCandidates` reorders it when `first` is given); default `defaultCandidates(first)`. */
  candidates?: readonly SearchConfig[];
  /** A strategy whose candidates go first, then one of each strategy in turn (the audit's recommendation). */
  first?: string;
  /** Early-stopping patience of the last rung (default 1). */
  patience?: number;
  /**
   * At the last rung (and in the time-left stage), train a strategy that defaults to more epochs than `maxEpochs`
   * for its own default (`StrategyDef.defaultEpochs`; head: 10, which cost next to nothing on cached features)
   * (default false; `searchCustomize` turns it on unless the caller gives `maxEpochs`).
   */
  strategyEpochs?: boolean;
  /**
   * The fewest training rows a rung trains on (raises `minFraction` on small data; default 0). searchCustomize
   * asks for 4 batches: fewer rows than one batch make no step at all.
   */
  minRows?: number;
  /**
   * Spend time left after the schedule on more configurations at the last rung (default true): the best of each
   * strategy not yet there first, then the rest, while their estimates fit.
   */
  fill?: boolean;
  /** Called after each trial, run or skipped. */
  onTrial?: (t: TrialRecord) => void;
  /** Seconds on some monotonic clock (default performance.now()/1000); tests drive a fake one. */
  clock?: () => number;
}

/** Orders trials best first: validation accuracy, then log-loss, then search order. */
function better(a: TrialRecord, b: TrialRecord): number {
  return b.accuracy! - a.accuracy! || a.logLoss! - b.logLoss! || a.candidate - b.candidate;
}

interface Measured {
  seconds: number;
  epochSeconds: number[];
  rows: number;
}

const pctOf = (f: number): string => `${+(100 * f).toFixed(1)}%`;

/**
 * Successive halving over `candidates` with `runner`, on `trainLabels` (the label of each training row, for the
 * stratified fractions); see the module comment. Returns the report and the winner's model.
 */
export async function runSearch(
  trainLabels: readonly string[],
  runner: TrialRunner,
  opts: SearchOptions,
): Promise<SearchResult> {
  const budget = opts.budgetSeconds;
  if (!(budget > 0) || !Number.isFinite(budget))
    throw new ConfigError(`the search budget must be a positive number of seconds, got ${budget}`, {
      field: 'budgetSeconds',
      value: String(budget),
    });
  if (trainLabels.length === 0) throw new ConfigError('the training split is empty', { field: 'train' });
  const ordered = !opts.candidates
    ? defaultCandidates(opts.first)
    : opts.first !== undefined
      ? orderCandidates(opts.candidates, opts.first)
      : [...opts.candidates];
  for (const c of ordered) strategyDef(c.strategy);
  // A configuration the data cannot feed (setfit when no label has two rows) is left out, with a reason.
  const counts = labelCounts(trainLabels);
  const most = Math.max(...counts);
  const fed = (c: SearchConfig): boolean => most >= (strategyDef(c.strategy).minPerLabel ?? 0);
  const candidates = ordered.filter(fed);
  const unfedWhy = ordered
    .filter((c) => !fed(c))
    .map(
      (c) =>
        `${describeConfig(c)} left out: it needs ${strategyDef(c.strategy).minPerLabel} training rows of some label, the most any label has is ${most}`,
    );
  if (candidates.length === 0)
    throw new ConfigError(`no configuration can train on these rows: ${unfedWhy.join('; ')}`, {
      field: 'candidates',
    });
  const seed = opts.seed ?? 0;
  const eta = opts.eta ?? 3;
  const maxEpochs = opts.maxEpochs ?? 2;
  const patience = opts.patience ?? 1;
  // A strategy that needs some rows of every label (setfit: a same-label pair) gets them at every rung.
  const perLabel = Math.max(0, ...candidates.map((c) => strategyDef(c.strategy).minPerLabel ?? 0));
  const rarest = Math.min(...counts);
  const schedule = halvingSchedule({
    configs: candidates.length,
    eta,
    maxEpochs,
    minFraction: Math.min(
      1,
      Math.max(opts.minFraction ?? 1 / (eta * eta), (opts.minRows ?? 0) / trainLabels.length, perLabel / rarest),
    ),
  });
  const clock = opts.clock ?? (() => performance.now() / 1000);
  const t0 = clock();
  const elapsed = (): number => clock() - t0;
  const prepared = (await runner.prepare?.()) ?? {};
  const setupSeconds = elapsed();
  const validationSeconds = Math.max(0, prepared.validationSeconds ?? 0);
  const rowsOf = new Map<number, number[]>();
  const rows = (fraction: number): number[] => {
    const key = Math.min(1, fraction);
    let r = rowsOf.get(key);
    if (!r) rowsOf.set(key, (r = stratifiedRows(trainLabels, key, seed)));
    return r;
  };

  // Cost model: the latest measurement of the same configuration, else of the same strategy.
  const byConfig = new Map<number, Measured>();
  const byStrategy = new Map<Strategy, Measured>();
  const estimate = (candidate: number, nRows: number, epochs: number): number | undefined => {
    const m = byConfig.get(candidate) ?? byStrategy.get(candidates[candidate].strategy);
    if (!m) return undefined;
    const epochTotal = m.epochSeconds.reduce((a, b) => a + b, 0);
    const fixed = Math.max(0, m.seconds - epochTotal);
    const perEpoch = m.epochSeconds.length ? epochTotal / m.epochSeconds.length : 0;
    const perRow = Math.max(0, perEpoch - validationSeconds) / Math.max(1, m.rows);
    return fixed + epochs * (Math.min(validationSeconds, perEpoch) + perRow * nRows);
  };

  const trials: TrialRecord[] = [];
  let winnerResult: CustomizeResult | undefined;
  let leader: TrialRecord | undefined;
  const top = schedule[schedule.length - 1];
  // The last rung's epochs for a candidate: the schedule's, or its strategy's default when that is more.
  const topEpochs = (candidate: number): number =>
    opts.strategyEpochs
      ? Math.max(top.epochs, STRATEGY_TABLE[candidates[candidate].strategy].defaultEpochs ?? 0)
      : top.epochs;
  const timing: { what: string; why: string }[] = [];
  let previous: TrialRecord[] = [];

  /** Runs one trial, records it, and keeps its model when it becomes the leader. */
  const runTrial = async (
    base: Omit<TrialRecord, 'epochsRun' | 'seconds' | 'status'>,
    planRows: number[],
    isTop: boolean,
    note: string | undefined,
    extra = false,
  ): Promise<TrialRecord> => {
    const config = candidates[base.candidate];
    const ts = clock();
    const out = await runner.run({
      config,
      rung: base.rung,
      rows: planRows,
      fraction: base.fraction,
      epochs: base.epochs,
      ...(isTop ? { patience } : {}),
    });
    const seconds = clock() - ts;
    const m: Measured = { seconds, epochSeconds: out.epochSeconds, rows: planRows.length };
    byConfig.set(base.candidate, m);
    byStrategy.set(config.strategy, m);
    const rec: TrialRecord = {
      ...base,
      epochsRun: out.epochSeconds.length,
      seconds,
      accuracy: out.accuracy,
      logLoss: out.logLoss,
      status: 'pruned',
      ...(note ? { note } : {}),
      ...(extra ? { extra } : {}),
    };
    trials.push(rec);
    // The leader: the best trial of the highest rung reached; only its model is kept.
    if (!leader || rec.rung > leader.rung || better(rec, leader) < 0) {
      leader = rec;
      winnerResult = out.result;
    }
    opts.onTrial?.(rec);
    return rec;
  };

  for (const rung of schedule) {
    const isTop = rung === top;
    // Rung 0 runs every candidate; a later rung walks the rung below's trials best first until `configs` have run,
    // so a promoted configuration that cannot fit the time left gives its place to the next one (only the promoted
    // ones get a row when skipped).
    const entrants =
      rung.rung === 0
        ? candidates.map((_, i) => i)
        : [...previous]
            .filter((t) => t.accuracy !== undefined)
            .sort(better)
            .map((t) => t.candidate);
    const ran: TrialRecord[] = [];
    for (const [rank, candidate] of entrants.entries()) {
      if (ran.length >= rung.configs) break;
      const config = candidates[candidate];
      const planRows = rows(rung.fraction);
      let epochs = isTop ? topEpochs(candidate) : rung.epochs;
      let note: string | undefined;
      const left = budget - elapsed();
      const est = estimate(candidate, planRows.length, epochs);
      // The leader's last rung is kept back while lower rungs run, so the search can always finish it.
      const reserve =
        !isTop && leader ? (estimate(leader.candidate, rows(1).length, topEpochs(leader.candidate)) ?? 0) : 0;
      let skip: string | undefined;
      const first = trials.every((t) => t.status === 'skipped');
      if (isTop && est !== undefined && est > left) {
        let e = epochs - 1;
        while (e >= 1 && estimate(candidate, planRows.length, e)! > left) e--;
        if (e >= 1) {
          note = `shortened from ${epochs} to ${e} epoch(s): ~${Math.round(est)} s estimated, ${Math.max(0, Math.round(left))} s left`;
          epochs = e;
        } else
          skip = `one epoch over all the data needs ~${Math.round(estimate(candidate, planRows.length, 1)!)} s, ${Math.max(0, Math.round(left))} s left`;
      } else if (!first && left <= 0) skip = 'the budget is spent';
      else if (!first && est !== undefined && est + reserve > left)
        skip = `needs ~${Math.round(est)} s${reserve ? ` + ~${Math.round(reserve)} s kept for the last rung` : ''}, ${Math.round(left)} s left`;
      else if (!first && est === undefined && reserve >= left)
        skip = `${Math.round(left)} s left, all kept for the last rung (~${Math.round(reserve)} s)`;
      const base = {
        candidate,
        config: describeConfig(config),
        strategy: config.strategy,
        rung: rung.rung,
        fraction: rung.fraction,
        trainRows: planRows.length,
        epochs,
      };
      if (skip && rung.rung > 0 && rank >= rung.configs) continue;
      if (skip) {
        const rec: TrialRecord = { ...base, epochsRun: 0, seconds: 0, status: 'skipped', note: skip };
        trials.push(rec);
        timing.push({ what: `${rec.config} at rung ${rung.rung}`, why: `skipped: ${skip}` });
        opts.onTrial?.(rec);
        continue;
      }
      if (note) timing.push({ what: `${base.config} at rung ${rung.rung}`, why: note });
      ran.push(await runTrial(base, planRows, isTop, note));
    }
    if (ran.length) previous = ran;
  }
  // Time left after the schedule buys more configurations on the last rung (all the rows, maxEpochs): the best
  // untried-at-the-top configuration of each strategy first, since a low rung's ranking *across* strategies is the
  // least trustworthy (learning curves cross: full fine-tuning gains more from data than a head does), then the
  // rest; each by the highest rung it reached and its score there. One that does not fit is passed over for a
  // cheaper one.
  const extras = { ran: [] as string[], passed: [] as string[], left: Math.max(0, budget - elapsed()) };
  const ranAtTop = trials.filter((t) => t.rung === top.rung && t.accuracy !== undefined);
  if (opts.fill !== false && schedule.length > 1 && ranAtTop.length > 0) {
    const atTop = new Set(ranAtTop.map((t) => t.candidate));
    const bestOf = new Map<number, TrialRecord>();
    for (const t of trials) {
      if (t.accuracy === undefined || atTop.has(t.candidate)) continue;
      const b = bestOf.get(t.candidate);
      if (!b || t.rung > b.rung || (t.rung === b.rung && better(t, b) < 0)) bestOf.set(t.candidate, t);
    }
    const ranked = [...bestOf.values()].sort((a, b) => b.rung - a.rung || better(a, b));
    const covered = new Set(ranAtTop.map((t) => t.strategy));
    const firsts = ranked.filter((t) => !covered.has(t.strategy) && (covered.add(t.strategy), true));
    const allRows = rows(1);
    for (const prev of [...firsts, ...ranked.filter((t) => !firsts.includes(t))]) {
      const epochs = topEpochs(prev.candidate);
      const est = estimate(prev.candidate, allRows.length, epochs)!;
      if (est > budget - elapsed()) {
        extras.passed.push(prev.config);
        continue;
      }
      extras.ran.push(prev.config);
      await runTrial(
        {
          candidate: prev.candidate,
          config: prev.config,
          strategy: prev.strategy,
          rung: top.rung,
          fraction: top.fraction,
          trainRows: allRows.length,
          epochs,
        },
        allRows,
        true,
        'extra: run with the time left after the schedule',
        true,
      );
    }
  }
  if (!leader) throw new ConfigError('the search ran no trial', { field: 'budgetSeconds', value: String(budget) });
  const winner = leader;
  for (const t of trials) {
    if (t.status === 'skipped') continue;
    if (t === winner) t.status = 'winner';
    else if (trials.some((u) => u.candidate === t.candidate && u.rung > t.rung && !u.extra)) t.status = 'promoted';
  }
  const ranAt = (r: number): TrialRecord[] => trials.filter((t) => t.rung === r && t.status !== 'skipped');
  const reasons = [
    `${candidates.length} configurations${opts.first ? ` (the audit's strategy, ${opts.first}, first)` : ''}, ${schedule.length} rung(s): ` +
      schedule
        .map((r) => `${r.configs} on ${pctOf(r.fraction)} of the training rows for ${r.epochs} epoch(s)`)
        .join(', then ') +
      (schedule.length > 1 ? `; the best 1/${eta} by validation accuracy (then log-loss) go on` : ''),
    `winner: ${winner.config}, validation accuracy ${pctOf(winner.accuracy!)} (log-loss ${winner.logLoss!.toFixed(4)}) ` +
      `at rung ${winner.rung} (${pctOf(winner.fraction)} of the training rows, ${winner.epochsRun} epoch(s)), ` +
      `the best of ${ranAt(winner.rung).length} trial(s) there`,
    ...unfedWhy,
    ...(extras.ran.length
      ? [
          `${Math.round(extras.left)} s were left after the schedule, so ${extras.ran.length} more configuration(s) ran on all the rows: ${extras.ran.join(', ')}` +
            (extras.passed.length ? `; ${extras.passed.join(', ')} did not fit` : ''),
        ]
      : []),
    // One sentence per distinct decision: a spent budget skips everything left in the same words.
    ...[...new Set(timing.map((t) => t.why))].map(
      (why) =>
        `${timing
          .filter((t) => t.why === why)
          .map((t) => t.what)
          .join(', ')} ${why}`,
    ),
  ];
  return {
    budgetSeconds: budget,
    seed,
    eta,
    maxEpochs,
    patience,
    schedule,
    candidates: candidates.map(describeConfig),
    setupSeconds,
    validationSeconds,
    seconds: elapsed(),
    trials,
    winner,
    reasons,
    ...(winnerResult ? { result: winnerResult } : {}),
  };
}

/** Customize options every trial shares (the configuration, epochs and data are the search's). */
export type SharedTrialOptions = Omit<
  CustomizeOptions,
  | 'strategy'
  | 'lr'
  | 'lora'
  | 'partial'
  | 'layerDecay'
  | 'headType'
  | 'epochs'
  | 'patience'
  | 'precomputed'
  | 'head'
  | 'checkpoint'
> & {
  /**
   * The frozen encoder's features of every train and validation row ([rows, width] row-major, in order), when the
   * caller has them (the audit does): the setup then only fits the warm head. Ignored unless their sizes fit.
   */
  features?: { train: Float32Array; validation: Float32Array; width: number };
};

/**
 * Seconds of one pass of the frozen encoder over the validation rows as `customize` runs it during training (batches
 * of 256, every row padded to the longest training text), timed on one such batch: the feature pass pads each batch
 * to its own longest text only, and on short texts (CLINC150: 9 tokens at the median, 32 at most) it is several
 * times faster than the validation it would otherwise stand for.
 */
async function validationPassSeconds(
  base: Model,
  data: CustomizeData,
  maxLength: number,
  threads: number | undefined,
): Promise<number> {
  const seq = encodeTextBatch(
    base,
    data.train.map((r) => r.text),
    { maxLength },
  ).seq;
  const sample = data.validation.slice(0, 256).map((r) => r.text);
  const { feeds } = encodeTextBatch(base, sample, { maxLength, padTo: seq });
  const { session, feature } = await featureSession(base, threads ? { intraOpThreads: threads } : {});
  try {
    await session.run(feeds, [feature]);
    const t = performance.now();
    await session.run(feeds, [feature]);
    return (((performance.now() - t) / 1000) * data.validation.length) / sample.length;
  } finally {
    await session.release();
  }
}

/**
 * The real trial runner: `customize` on the plan's rows. `prepare` computes the frozen encoder's features of every
 * train and validation row and fits the warm head on them once; every trial reuses both (`precomputed`), so a
 * trial on a fraction of the rows starts from the head fitted on all of them.
 */
export function customizeTrials(base: Model, data: CustomizeData, options: SharedTrialOptions = {}): TrialRunner {
  const { features: given, ...shared } = options;
  const labels = shared.labels ? [...shared.labels] : [...new Set(data.train.map((r) => r.label))].sort();
  const maxLength = shared.maxLength ?? DEFAULT_MAX_LENGTH;
  const threads = shared.threads;
  let pre: { train: Float32Array; validation: Float32Array; width: number; warmHead?: WarmHead } | undefined;
  const prepare = async (): Promise<{ validationSeconds: number }> => {
    const yTrain = labelIds(data.train, labels, 'the training split');
    const yVal = labelIds(data.validation, labels, 'the validation split');
    const n = data.train.length;
    const { features, width } =
      given &&
      given.width > 0 &&
      given.train.length === n * given.width &&
      given.validation.length === data.validation.length * given.width
        ? { features: undefined, width: given.width }
        : await textFeatures(
            base,
            [...data.train, ...data.validation].map((r) => r.text),
            { maxLength, batchSize: 64, ...(threads ? { intraOpThreads: threads } : {}) },
          );
    const validationSeconds = await validationPassSeconds(base, data, maxLength, threads);
    const train = features ? features.slice(0, n * width) : given!.train;
    const validation = features ? features.slice(n * width) : given!.validation;
    const warm = shared.warmStartHead ?? true;
    const warmHead =
      warm === false
        ? undefined
        : await fitWarmHead(
            { features: train, labels: Array.from(yTrain, Number) },
            { features: validation, labels: Array.from(yVal, Number) },
            width,
            labels.length,
            { ...(typeof warm === 'object' ? warm : {}), ...(threads ? { threads } : {}) },
          );
    pre = { train, validation, width, ...(warmHead ? { warmHead } : {}) };
    return { validationSeconds };
  };
  return {
    prepare,
    async run(plan) {
      if (!pre) await prepare();
      const p = pre!;
      const w = p.width;
      const trainFeatures = new Float32Array(plan.rows.length * w);
      plan.rows.forEach((r, i) => trainFeatures.set(p.train.subarray(r * w, (r + 1) * w), i * w));
      const result = await customize(
        base,
        { train: plan.rows.map((r) => data.train[r]), validation: data.validation },
        {
          ...shared,
          ...configOptions(plan.config),
          labels,
          epochs: plan.epochs,
          ...(plan.patience ? { patience: plan.patience } : {}),
          precomputed: { train: trainFeatures, validation: p.validation, width: w, warmHead: p.warmHead },
        },
      );
      return {
        accuracy: result.report.accuracy,
        logLoss: result.report.calibration.logLossAfter,
        epochSeconds: result.report.epochSeconds,
        result,
      };
    },
  };
}

/**
 * Searches strategies and hyper-parameters for `base` on `data` under `budgetSeconds` (see the module comment) and
 * returns the trial table with the winner's trained model (`result`). `runner` replaces the real trainer (tests).
 *
 * @example
 * const s = await searchCustomize(base, data, { budgetSeconds: 600, seed: 1, first: 'lora' });
 * console.log(formatSearch(s)); // the trial table
 * s.result!.model;              // the winner, as customize returns it
 */
export async function searchCustomize(
  base: Model,
  data: CustomizeData,
  opts: SearchOptions & SharedTrialOptions & { runner?: TrialRunner },
): Promise<SearchResult> {
  const {
    budgetSeconds,
    seed,
    candidates,
    first,
    patience,
    onTrial,
    clock,
    eta,
    minFraction,
    maxEpochs,
    strategyEpochs,
    minRows,
    fill,
    runner,
    ...shared
  } = opts;
  if (data.validation.length === 0) throw new ConfigError('the validation split is empty', { field: 'validation' });
  return runSearch(
    data.train.map((r) => r.label),
    runner ?? customizeTrials(base, data, { ...shared, seed: seed ?? 0 }),
    {
      budgetSeconds,
      ...(seed !== undefined ? { seed } : {}),
      ...(candidates ? { candidates } : {}),
      ...(first !== undefined ? { first } : {}),
      ...(patience !== undefined ? { patience } : {}),
      ...(onTrial ? { onTrial } : {}),
      ...(clock ? { clock } : {}),
      ...(fill !== undefined ? { fill } : {}),
      ...(eta !== undefined ? { eta } : {}),
      ...(minFraction !== undefined ? { minFraction } : {}),
      // customize's default epochs: on full CLINC150 full fine-tuning's best epoch was the 2nd of 3 and LoRA's the 3rd;
      // the head's default (10) where the caller did not set the epochs.
      maxEpochs: maxEpochs ?? 3,
      strategyEpochs: strategyEpochs ?? maxEpochs === undefined,
      minRows: minRows ?? 4 * (shared.batchSize ?? 32),
    },
  );
}

/** The report without the model (what runs record as `search.json` and `--json` prints). */
export function searchReport(s: SearchResult): SearchReport {
  const { result: _result, ...report } = s;
  return report;
}

/** The trial table, one row per trial in the order they ran (renderTable). */
export function formatSearchTrials(s: Pick<SearchReport, 'trials'>): string {
  return renderTable(
    ['#', 'config', 'rung', 'data', 'rows', 'epochs', 'seconds', 'val acc', 'val loss', 'result'],
    s.trials.map((t, i) => [
      String(i + 1),
      t.config,
      String(t.rung),
      pctOf(t.fraction),
      String(t.trainRows),
      t.status === 'skipped' ? '-' : `${t.epochsRun}/${t.epochs}`,
      t.status === 'skipped' ? '-' : t.seconds.toFixed(1),
      t.accuracy === undefined ? '-' : `${(100 * t.accuracy).toFixed(2)}%`,
      t.logLoss === undefined ? '-' : t.logLoss.toFixed(4),
      t.note ? `${t.status} (${t.note})` : t.status,
    ]),
    ['right', 'left', 'right', 'right', 'right', 'right', 'right', 'right', 'right', 'left'],
  );
}

/** The search in words and a table: schedule, reasons, trials. */
export function formatSearch(s: SearchReport): string {
  return [
    `Search: ${s.trials.filter((t) => t.status !== 'skipped').length} trial(s) in ${s.seconds.toFixed(0)} s of a ${s.budgetSeconds.toFixed(0)} s budget (setup ${s.setupSeconds.toFixed(0)} s: features and warm head, shared by all trials)`,
    ...s.reasons.map((r) => `  ${r}`),
    formatSearchTrials(s),
  ].join('\n');
}
