/**
 * `tailor monitor`, `tailor watch`, `tailor ab`: thin wrappers over src/monitor. The prediction and feedback
 * logs live under the registry home (`<home>/predictions`, `<home>/feedback`); the reference profile is read from
 * the model version's folder (or from --reference DIR).
 */
import { Command } from 'commander';
import { resolveHome } from '../../registry/index.ts';
import { ConfigError } from '../../errors.ts';
import { emit, num, withGlobals, type GlobalOptions } from '../common.ts';
import { withRegistry } from '../../workflow/sources.ts';

async function lib(): Promise<typeof import('../../monitor/index.ts')> {
  return import('../../monitor/index.ts');
}

/** `--since 24h` (before now) or an ISO date. */
function parseSince(text: string, now: Date, parseDuration: (t: string, f: string) => number): Date {
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const d = new Date(text);
    if (Number.isNaN(d.getTime()))
      throw new ConfigError(`--since "${text}" is not a date`, { field: 'since', value: text });
    return d;
  }
  return new Date(now.getTime() - parseDuration(text, 'since'));
}

/** The reference profile of `ref`: from --reference, or from the registered version's folder. */
async function profileFor(
  ref: string,
  reference: string | undefined,
  home: string | undefined,
): Promise<import('../../monitor/index.ts').ReferenceProfile> {
  const L = await lib();
  if (reference) return L.loadProfile(reference);
  const dir = await withRegistry(home, (reg) => reg.modelPath(ref));
  return L.loadProfile(dir);
}

interface MonitorOpts extends GlobalOptions {
  model: string;
  since: string;
  until?: string;
  window: string;
  minWindow: number;
  reference?: string;
  out: string;
  policy?: string;
}

export function monitorCommand(): Command {
  const cmd = new Command('monitor')
    .description('drift and performance of a deployed model from the prediction log; writes JSON and HTML reports')
    .requiredOption('--model <ref>', 'model reference, e.g. tickets@production')
    .option('--since <when>', 'start: a duration before now (24h, 7d) or an ISO date', '24h')
    .option('--until <iso>', 'end (ISO date; default now)')
    .option('--window <duration>', 'window length', '1h')
    .option('--min-window <n>', 'fewest predictions for a window to be tested', num({ min: 1, int: true }), 30)
    .option('--reference <dir>', "folder holding reference-profile.json (default: the model version's folder)")
    .option('--policy <file>', 'take tests and thresholds from this policy file')
    .option('--out <dir>', 'where to write monitor-report.json and monitor-report.html', 'monitor-report');
  withGlobals(cmd).action(async (o: MonitorOpts) => {
    const L = await lib();
    const now = o.until ? new Date(o.until) : new Date();
    if (Number.isNaN(now.getTime())) throw new ConfigError(`--until "${o.until}" is not a date`, { field: 'until' });
    const policy = o.policy ? L.loadPolicy(o.policy) : undefined;
    const profile = await profileFor(o.model, o.reference, o.home);
    const { report, skippedLines } = await L.monitorHome(resolveHome(o.home), profile, {
      windowMs: L.parseDuration(o.window, 'window'),
      since: parseSince(o.since, now, L.parseDuration),
      until: now,
      minWindowSize: policy?.minWindowSize ?? o.minWindow,
      ...(policy ? { drift: policy.drift, text: policy.text } : {}),
    });
    const files = await L.writeReports(report, o.out);
    emit(o, { ...report, files, skippedLines }, () =>
      [
        L.formatSummary(report),
        skippedLines ? `${skippedLines} corrupt log line(s) skipped` : '',
        `report: ${files.json}, ${files.html}`,
      ]
        .filter(Boolean)
        .join('\n'),
    );
  });
  return cmd;
}

export function watchCommand(): Command {
  const cmd = new Command('watch')
    .description(
      'run the policy checks on its schedule; when the trigger fires, retrain on the reference data plus feedback labels, gate the challenger against the champion and promote it when blessed',
    )
    .requiredOption('--policy <file>', 'policy YAML (tests, thresholds, window, cool-down, schedule, retrain, gate)')
    .option('--reference <dir>', "folder holding reference-profile.json (default: the model version's folder)")
    .option('--no-retrain', 'only report when the trigger fires')
    .option('--once', 'one check, then exit');
  withGlobals(cmd).action(
    async (o: GlobalOptions & { policy: string; reference?: string; once?: boolean; retrain: boolean }) => {
      const L = await lib();
      const policy = L.loadPolicy(o.policy);
      const home = resolveHome(o.home);
      for (;;) {
        const profile = await profileFor(policy.model, o.reference, o.home);
        const tick: import('../../monitor/index.ts').WatchTick & {
          retrain?: import('../../monitor/index.ts').RetrainOutcome;
        } = o.retrain ? await L.watchAndRetrain({ home, policy, profile }) : await L.watchOnce(home, policy, profile);
        const retrain = tick.retrain;
        emit(o, { decision: tick.decision, summary: tick.report.summary, ...(retrain ? { retrain } : {}) }, () =>
          [
            `${new Date().toISOString()} ${policy.model} v${profile.model.version}: ${
              tick.decision.fire ? 'TRIGGER' : 'ok'
            } - ${tick.decision.reasons.join('; ')}`,
            ...(retrain ? [`retrain: ${retrain.status} - ${retrain.reasons.join('; ')}`] : []),
          ].join('\n'),
        );
        if (o.once) return;
        await new Promise((r) => setTimeout(r, policy.scheduleMs ?? policy.windowMs));
      }
    },
  );
  return cmd;
}

export function abCommand(): Command {
  const cmd = new Command('ab')
    .description(
      'A/B analysis of two variants from the log and feedback: always-valid mSPRT p-value and confidence sequence',
    )
    .requiredOption('--model <name>', 'model name')
    .requiredOption('--variants <a,b>', 'the two variants, e.g. production,candidate')
    .option('--since <when>', 'start: a duration before now (7d) or an ISO date', '30d')
    .option(
      '--effect <d>',
      'effect to size a fixed-horizon test for (accuracy difference)',
      num({ min: 0.0001, max: 0.5 }),
      0.02,
    )
    .option('--tau <t>', 'mSPRT mixture standard deviation (expected effect size)', num({ min: 0.0001, max: 1 }), 0.05);
  withGlobals(cmd).action(
    async (o: GlobalOptions & { model: string; variants: string; since: string; effect: number; tau: number }) => {
      const L = await lib();
      const v = o.variants.split(',').map((s) => s.trim());
      if (v.length !== 2 || !v[0] || !v[1])
        throw new ConfigError(`--variants needs two names separated by a comma, got "${o.variants}"`, {
          field: 'variants',
          value: o.variants,
        });
      const r = await L.abHome(resolveHome(o.home), o.model, [v[0], v[1]], {
        since: parseSince(o.since, new Date(), L.parseDuration),
        effect: o.effect,
        tau: o.tau,
      });
      const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;
      emit(o, r, () =>
        [
          `${v[0]}: ${pct(r.a.accuracy)} (${r.a.successes}/${r.a.trials})   ${v[1]}: ${pct(r.b.accuracy)} (${r.b.successes}/${r.b.trials})`,
          `difference ${pct(r.msprt.difference)}, always-valid p = ${r.msprt.pValue.toPrecision(3)}, 95% confidence sequence [${pct(r.msprt.interval[0])}, ${pct(r.msprt.interval[1])}] after ${r.msprt.looks} looks${r.msprt.significant ? ' - significant' : ''}`,
          `fixed-horizon test for a ${pct(r.effect)} effect needs ${r.requiredPerArm} labelled predictions per variant`,
        ].join('\n'),
      );
    },
  );
  return cmd;
}

export function feedbackCommand(): Command {
  const fb = new Command('feedback').description('feedback labels for logged predictions');
  const imp = new Command('import')
    .description('import labels from a CSV (request_id, label, optional index and time) into <home>/feedback')
    .argument('<file>', 'CSV file');
  withGlobals(imp).action(async (file: string, o: GlobalOptions) => {
    const L = await lib();
    const r = await L.importFeedbackCsv(resolveHome(o.home), file);
    emit(o, r, () => `${r.rows} feedback label(s) imported into ${r.file}`);
  });
  fb.addCommand(imp);
  return fb;
}
