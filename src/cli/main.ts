/**
 * The `tailor` command line. Commands are thin wrappers over the library API; `--json` prints the API's return
 * value. Exit codes (docs/cli.md): 0 ok, 1 an error from the library (TailorError: bad data, missing model,
 * registry problem, ...), 2 a usage error (unknown command or option, missing or malformed argument), 3 `customize`
 * finished but its model is significantly worse than the baseline, so the requested alias was not moved.
 */
import { Command, CommanderError } from 'commander';
import { TailorError } from '../errors.ts';
import { VERSION } from '../version.ts';
import { EXIT, takeRequestedExitCode } from './common.ts';

export { EXIT };
import { auditCommand } from './commands/audit.ts';
import { customizeCommand } from './commands/customize.ts';
import { demoCommand } from './commands/demo.ts';
import { distillCommand } from './commands/distill.ts';
import { evaluateCommand } from './commands/evaluate.ts';
import { jobsCommand, submitCommand, workerCommand } from './commands/jobs.ts';
import { mitigateCommand } from './commands/mitigate.ts';
import { modelsCommand } from './commands/models.ts';
import { abCommand, feedbackCommand, monitorCommand, watchCommand } from './commands/monitor.ts';
import { quantizeCommand } from './commands/quantize.ts';
import { registryCommand } from './commands/registry.ts';
import { runsCommand } from './commands/runs.ts';
import { serveCommand } from './commands/serve.ts';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('tailor')
    .description('Turn generic pretrained ONNX models into models tailored to your domain, and keep them tailored.')
    .version(VERSION, '-v, --version')
    .showHelpAfterError()
    .addHelpText(
      'after',
      '\nExit codes: 0 ok, 1 error (bad data, missing model, registry problem), 2 usage error.\nRegistry: ./.tailor, or --home DIR, or $TAILOR_HOME; shared: $TAILOR_REGISTRY=postgres://..., $TAILOR_ARTIFACTS=s3://bucket/prefix.',
    );
  for (const c of [
    auditCommand(),
    customizeCommand(),
    evaluateCommand(),
    runsCommand(),
    modelsCommand(),
    registryCommand(),
    quantizeCommand(),
    distillCommand(),
    mitigateCommand(),
    submitCommand(),
    workerCommand(),
    jobsCommand(),
    monitorCommand(),
    watchCommand(),
    abCommand(),
    feedbackCommand(),
    demoCommand(),
    serveCommand(),
  ]) {
    program.addCommand(c);
  }
  return program;
}

/** Applies exitOverride to every (sub)command so that usage errors come back as exceptions. */
function override(cmd: Command): void {
  cmd.exitOverride();
  for (const c of cmd.commands) override(c);
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  override(program);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return takeRequestedExitCode() || EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.code === 'commander.helpDisplayed' ||
        e.code === 'commander.version' ||
        e.code === 'commander.help' ||
        e.code === 'commander.executeSubCommandAsync'
        ? EXIT.ok
        : EXIT.usage;
    }
    if (e instanceof TailorError) {
      process.stderr.write(`tailor: ${e.message}\n`);
      return EXIT.error;
    }
    throw e;
  }
}

const isEntry = process.argv[1] !== undefined && /(?:tailor(?:\.js)?|main\.ts)$/.test(process.argv[1]);
if (isEntry) {
  process.exitCode = await main(process.argv.slice(2));
}
