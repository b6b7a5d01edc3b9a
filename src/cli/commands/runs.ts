/** `tailor runs list | show | compare | gc`. */
import { Command, Option } from 'commander';
import type { RunStatus } from '../../registry/index.ts';
import { emit, num, withGlobals, type GlobalOptions } from '../common.ts';

/** The registry and its formatters, loaded only when a subcommand runs (better-sqlite3 is a native module). */
async function lib(): Promise<typeof import('../../registry/index.ts') & typeof import('../../workflow/sources.ts')> {
  const [a, b] = await Promise.all([import('../../registry/index.ts'), import('../../workflow/sources.ts')]);
  return { ...a, ...b };
}

export function runsCommand(): Command {
  const runs = new Command('runs').description('tracked runs: list, show, compare, gc');

  const list = new Command('list')
    .description('list runs, newest first')
    .addOption(
      new Option('--status <status>', 'only runs with this status').choices([
        'running',
        'finished',
        'failed',
        'killed',
      ]),
    )
    .option('--experiment <name>', 'only runs of this experiment')
    .option('--limit <n>', 'at most this many', num({ min: 1, int: true }), 50);
  withGlobals(list).action(async (o: GlobalOptions & { status?: RunStatus; experiment?: string; limit: number }) => {
    const L = await lib();
    const r = await L.withRegistry(o.home, (reg) =>
      reg.listRuns({
        ...(o.status ? { status: o.status } : {}),
        ...(o.experiment ? { experiment: o.experiment } : {}),
        limit: o.limit,
      }),
    );
    emit(o, r, () => L.formatRunList(r));
  });

  const show = new Command('show')
    .description('one run: params, metrics, artifacts, lineage')
    .argument('<run>', 'run id or a unique prefix (4+ characters)');
  withGlobals(show).action(async (id: string, o: GlobalOptions) => {
    const L = await lib();
    const r = await L.withRegistry(o.home, (reg) => reg.showRun(id));
    emit(o, r, () => L.formatRunDetails(r));
  });

  const compare = new Command('compare')
    .description(
      "metrics of two runs side by side, with paired bootstrap CIs and McNemar's exact test on their shared eval predictions",
    )
    .argument('<a>', 'run id or prefix (A, e.g. the baseline)')
    .argument('<b>', 'run id or prefix (B)')
    .option('--eval-set <name>', 'which logged prediction set to pair on (default: the one both have)')
    .option('--iterations <n>', 'bootstrap resamples', num({ min: 10, int: true }), 1000);
  withGlobals(compare).action(
    async (a: string, b: string, o: GlobalOptions & { evalSet?: string; iterations: number }) => {
      const L = await lib();
      const r = await L.withRegistry(o.home, (reg) =>
        reg.compareRuns(a, b, { ...(o.evalSet ? { evalSet: o.evalSet } : {}), iterations: o.iterations }),
      );
      emit(o, r, () => L.formatComparison(r));
    },
  );

  const gc = new Command('gc')
    .description(
      'delete artifacts no run or model version references (and stale temp files); then verify every referenced object',
    )
    .option('--dry-run', 'only report what would be removed');
  withGlobals(gc).action(async (o: GlobalOptions & { dryRun?: boolean }) => {
    const L = await lib();
    const r = await L.withRegistry(o.home, async (reg) => ({
      gc: await reg.gc({ dryRun: o.dryRun === true }),
      verify: await reg.verify(),
    }));
    emit(o, r, () => `${L.formatGcReport(r.gc)}\n${L.formatVerifyReport(r.verify)}`);
  });

  return runs.addCommand(list).addCommand(show).addCommand(compare).addCommand(gc);
}
