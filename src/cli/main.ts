/**
 * The `tailor` command line. Commands are thin wrappers over the library API; `--json` prints the API's return
 * value. Exit codes (docs/cli.md): 0 ok, 1 an error from the library (TailorError: bad data, missing model,
 * registry problem, ...), 2 a usage error (unknown command or option, missing or malformed argument).
 */
import { Command, CommanderError } from 'commander';
import { TailorError } from '../errors.ts';
import { VERSION } from '../version.ts';
import { auditCommand } from './commands/audit.ts';
import { customizeCommand } from './commands/customize.ts';
import { demoCommand } from './commands/demo.ts';
import { distillCommand } from './commands/distill.ts';
import { evaluateCommand } from './commands/evaluate.ts';
import { modelsCommand } from './commands/models.ts';
import { abCommand, feedbackCommand, monitorCommand, watchCommand } from './commands/monitor.ts';
import { quantizeCommand } from './commands/quantize.ts';
import { runsCommand } from './commands/runs.ts';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('tailor')
    .description('Turn generic pretrained ONNX models into models tailored to your domain, and keep them tailored.')
    .version(VERSION, '-v, --version')
    .showHelpAfterError()
    .addHelpText(
      'after',
      '\nExit codes: 0 ok, 1 error (bad data, missing model, registry problem), 2 usage error.\nRegistry: ./.tailor, or --home DIR, or $TAILOR_HOME.',
    );
  for (const c of [
    auditCommand(),
    customizeCommand(),
    evaluateCommand(),
    runsCommand(),
    modelsCommand(),
    quantizeCommand(),
    distillCommand(),
    monitorCommand(),
    watchCommand(),
    abCommand(),
    feedbackCommand(),
    demoCommand(),
  ]) {
    program.addCommand(c);
  }
  return program;
}

/** Exit codes documented in docs/cli.md. */
export const EXIT = { ok: 0, error: 1, usage: 2 } as const;

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
    return EXIT.ok;
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
