/** Opening the registry for read-only commands without creating it as a side effect. */
import { existsSync } from 'node:fs';
import { RegistryError } from '../errors.ts';
import { openRegistry, resolveBackends, resolveHome, type Registry } from '../registry/index.ts';

/**
 * Opens an existing registry; a missing local one is an error naming the folder (and nothing is created). With
 * `$TAILOR_REGISTRY` pointing at a database there is no folder to check: the database answers for itself.
 */
export async function openExistingRegistry(home?: string): Promise<Registry> {
  const dir = resolveHome(home);
  if (!resolveBackends().remoteMetadata && !existsSync(dir)) {
    throw new RegistryError(
      `no registry at ${dir} (run 'tailor customize' first, or point --home / TAILOR_HOME at one)`,
      { file: dir },
    );
  }
  return openRegistry({ home: dir });
}

/** Runs `fn` with an open registry and closes it afterwards. */
export async function withRegistry<T>(
  home: string | undefined,
  fn: (reg: Registry) => Promise<T>,
  opts: { create?: boolean } = {},
): Promise<T> {
  const reg = opts.create ? await openRegistry(home !== undefined ? { home } : {}) : await openExistingRegistry(home);
  try {
    return await fn(reg);
  } finally {
    await reg.close();
  }
}
