/** Model references on the command line: a registered model (`name`, `name:3`, `name@alias`) or a folder. */
import { existsSync } from 'node:fs';
import { withRegistry } from './registry.ts';
import { loadArtifact } from './artifacts.ts';

/** Loads a classifier from a folder path, or from the registry when the argument is not an existing path. */
export async function resolveModelRef(
  ref: string,
  home?: string,
): Promise<Awaited<ReturnType<typeof loadArtifact>> & { ref: string }> {
  if (existsSync(ref)) return { ...(await loadArtifact(ref)), ref };
  // Not a path: a registry reference. The artifact is read in place (objects are read-only, never moved).
  const dir = await withRegistry(home, (reg) => reg.modelPath(ref));
  return { ...(await loadArtifact(dir)), ref };
}
