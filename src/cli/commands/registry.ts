/** `tailor registry migrate`: copy a local registry into PostgreSQL + S3 (or any other pair of backends). */
import { Command } from 'commander';
import { join, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { RegistryError } from '../../errors.ts';
import { emit, withGlobals, type GlobalOptions } from '../common.ts';

interface MigrateFlags extends GlobalOptions {
  from: string;
  to: string;
  artifacts?: string;
  s3Endpoint?: string;
}

export function registryCommand(): Command {
  const registry = new Command('registry').description('the registry itself: move it to shared storage');

  const migrate = new Command('migrate')
    .description(
      'copy a local registry (runs, metrics, artifacts, model versions, aliases) into another one, e.g. PostgreSQL + S3, then verify counts and artifact hashes',
    )
    .requiredOption('--from <dir>', 'local registry folder to copy (e.g. .tailor)')
    .requiredOption('--to <url>', 'target metadata store: postgres://user@host:5432/db[?schema=name]')
    .option('--artifacts <url>', 'target artifact store: s3://bucket/prefix (default: $TAILOR_ARTIFACTS)')
    .option('--s3-endpoint <url>', 'S3-compatible endpoint (default: $TAILOR_S3_ENDPOINT, else AWS)');
  withGlobals(migrate).action(async (o: MigrateFlags) => {
    const { openRegistry, migrateRegistry } = await import('../../registry/index.ts');
    const fromHome = resolve(o.from);
    if (!existsSync(join(fromHome, 'registry.db'))) {
      throw new RegistryError(`no registry at ${fromHome} (expected ${join(fromHome, 'registry.db')})`, {
        file: fromHome,
      });
    }
    // The source is always the local folder, whatever TAILOR_REGISTRY / TAILOR_ARTIFACTS say.
    const from = await openRegistry({
      home: fromHome,
      registryUrl: join(fromHome, 'registry.db'),
      artifactsUrl: fromHome,
    });
    try {
      const to = await openRegistry({
        ...(o.home !== undefined ? { home: o.home } : {}),
        registryUrl: o.to,
        ...(o.artifacts !== undefined ? { artifactsUrl: o.artifacts } : {}),
        ...(o.s3Endpoint !== undefined ? { s3Endpoint: o.s3Endpoint } : {}),
      });
      try {
        const r = await migrateRegistry(from, to, {
          onProgress: (line) => {
            if (!o.quiet && !o.json) process.stderr.write(`${line}\n`);
          },
        });
        emit(o, r, () =>
          [
            `migrated ${o.from} -> ${r.to} (artifacts: ${to.artifacts.location})`,
            `runs: ${r.runs.copied} copied, ${r.runs.skipped} already there; ${r.metrics} metric points, ${r.artifacts} artifacts, ${r.predictions} predictions`,
            `model versions: ${r.modelVersions.copied} copied, ${r.modelVersions.skipped} already there; ${r.aliases} aliases`,
            `objects: ${r.objects.copied} uploaded (${r.objects.bytes} bytes), ${r.objects.present} already there`,
            `verified: ${r.verified.runs} runs, ${r.verified.modelVersions} model versions, ${r.verified.objects} objects re-hashed in the target`,
          ].join('\n'),
        );
      } finally {
        await to.close();
      }
    } finally {
      await from.close();
    }
  });

  return registry.addCommand(migrate);
}
