/**
 * The `tailor` command line. Commands are thin wrappers over the library API; `--json` prints the API's return
 * value. Errors from the library (TailorError) print their message and exit with code 1; usage errors exit 2.
 */
import { Command, CommanderError } from 'commander';
import { TailorError } from '../errors.ts';
import { VERSION } from '../version.ts';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('tailor')
    .description('Turn generic pretrained ONNX models into models tailored to your domain, and keep them tailored.')
    .version(VERSION, '-v, --version')
    .showHelpAfterError();
  return program;
}

/** Exit codes documented in the README. */
export const EXIT = { ok: 0, error: 1, usage: 2 } as const;

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram().exitOverride();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help' ? EXIT.ok : EXIT.usage;
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
