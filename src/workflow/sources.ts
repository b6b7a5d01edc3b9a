/**
 * Reading what the compression and evaluation workflows take: model references (a folder, or a registry reference
 * `name`, `name:3`, `name@alias`), text and labelled files, and registering a model derived from another one.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { assertReadable } from '../audit/data.ts';
import { readTable } from '../data/index.ts';
import { DataError, ModelFileError, RegistryError } from '../errors.ts';
import { loadArtifact } from '../models/artifact.ts';
import type { Model } from '../models/model.ts';
import { textFeeds } from '../models/text.ts';
import { openRegistry, resolveBackends, resolveHome, type Json, type Registry } from '../registry/index.ts';
import { formatProfile } from '../runtime/profile.ts';
import { Session, type ProviderSpec } from '../runtime/session.ts';
import { toOnnxModel } from '../models/model.ts';

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

/** Runs `fn` with an open registry (created when `create`) and closes it afterwards. */
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

/** A classifier loaded from a reference, with where it was read. */
export type LoadedModelRef = Awaited<ReturnType<typeof loadArtifact>> & { ref: string };

/** Loads a classifier from a folder path, or from the registry when the argument is not an existing path. */
export async function resolveModelRef(ref: string, home?: string): Promise<LoadedModelRef> {
  if (existsSync(ref)) return { ...(await loadArtifact(ref)), ref };
  // Not a path: a registry reference. The artifact is read in place (objects are read-only, never moved).
  const dir = await withRegistry(home, (reg) => reg.modelPath(ref));
  return { ...(await loadArtifact(dir)), ref };
}

/** Texts of one column of a CSV/TSV/JSONL/Parquet file (empty cells skipped), at most `limit`. */
export async function readTexts(file: string, column: string, what: string, limit = Infinity): Promise<string[]> {
  await assertReadable([file], what);
  const out: string[] = [];
  for await (const ev of readTable(file, { requiredColumns: [column] })) {
    if (ev.kind !== 'row') continue;
    const v = ev.values[column];
    if (typeof v === 'string' && v.trim() !== '') out.push(v);
    else if (typeof v === 'number') out.push(String(v));
    if (out.length >= limit) break;
  }
  if (out.length === 0)
    throw new DataError(`${what} file ${file} has no text in column "${column}"`, { file, field: column });
  return out;
}

/** Texts and label indices (into `labels`) of a labelled file; a label outside `labels` is an error naming its line. */
export async function readLabelled(
  file: string,
  textColumn: string,
  labelColumn: string,
  labels: readonly string[],
  what: string,
): Promise<{ texts: string[]; labels: number[] }> {
  await assertReadable([file], what);
  const index = new Map(labels.map((l, i) => [l, i]));
  const texts: string[] = [],
    ys: number[] = [];
  for await (const ev of readTable(file, { requiredColumns: [textColumn, labelColumn] })) {
    if (ev.kind !== 'row') continue;
    const t = ev.values[textColumn],
      l = ev.values[labelColumn];
    if (t === null || t === undefined || String(t).trim() === '') continue;
    const y = index.get(String(l));
    if (y === undefined) {
      throw new DataError(
        `${file}:${ev.line}: label "${String(l)}" is not one of the model's ${labels.length} labels (${labels.slice(0, 8).join(', ')}${labels.length > 8 ? ', ...' : ''})`,
        { file, line: ev.line, field: labelColumn, value: String(l) },
      );
    }
    texts.push(String(t));
    ys.push(y);
  }
  if (texts.length === 0) throw new DataError(`${what} file ${file} has no labelled rows`, { file });
  return { texts, labels: ys };
}

export interface DerivedModel {
  name: string;
  version: number;
  ref: string;
  aliases: string[];
  parents: Array<{ relation: string; model?: string; external?: string }>;
}

/**
 * Records a run (params, metrics, the folder as its 'model' artifact) and registers the folder as a new version of
 * `name` whose lineage parent is the source: the registered version when `sourceRef` is a registry reference, else
 * the source folder as an external id.
 */
export async function registerDerived(o: {
  home?: string;
  out: string;
  name: string;
  aliases?: string[];
  sourceRef: string;
  sourceDir: string;
  relation: string;
  experiment: string;
  params: Record<string, Json>;
  metrics: Record<string, number>;
  description: string;
  metadata: Record<string, Json>;
}): Promise<{ runId: string; model: DerivedModel }> {
  return withRegistry(
    o.home,
    async (reg) => {
      const fromRegistry = !existsSync(o.sourceRef);
      const parent = fromRegistry ? await reg.getModel(o.sourceRef) : undefined;
      const spec = parent
        ? { relation: o.relation, model: `${parent.name}:${parent.version}` }
        : { relation: o.relation, external: path.resolve(o.sourceDir) };
      const run = await reg.startRun({
        name: o.experiment,
        experiment: o.experiment,
        params: o.params,
        baseModel: spec.model ?? spec.external,
        tags: { source: spec.model ?? spec.external! },
      });
      try {
        const finite = Object.fromEntries(Object.entries(o.metrics).filter(([, v]) => Number.isFinite(v)));
        if (Object.keys(finite).length) await run.logMetrics(finite);
        await run.logArtifact(o.out, { path: 'model', kind: 'model' });
        const mv = await run.registerModel({
          name: o.name,
          source: { runId: run.id, artifactPath: 'model' },
          parents: [spec],
          ...(o.aliases?.length ? { aliases: o.aliases } : {}),
          description: o.description,
          metadata: o.metadata,
        });
        await run.finish();
        return {
          runId: run.id,
          model: {
            name: mv.name,
            version: mv.version,
            ref: `${mv.name}:${mv.version}`,
            aliases: mv.aliases,
            parents: mv.parents.map((p) => ({
              relation: p.relation,
              ...(p.model ? { model: `${p.model.name}:${p.model.version}` } : { external: p.external ?? '' }),
            })),
          },
        };
      } catch (e) {
        await run.fail(e);
        throw e;
      }
    },
    { create: true },
  );
}

/** `--profile`: ONNX Runtime's per-op profile of `model` over 10 runs at batch 1 on `text`, as text. */
export async function profileText(
  model: Model,
  text: string,
  maxLength: number,
  providers: ProviderSpec[] | undefined,
): Promise<string> {
  const s = await Session.create(toOnnxModel(model), { providers, profile: true, label: 'profile' });
  try {
    const feeds = textFeeds(model, [text], { maxLength });
    for (let i = 0; i < 10; i++) await s.run(feeds, ['logits']);
    return formatProfile(await s.endProfiling());
  } finally {
    await s.release();
  }
}

/**
 * A `--model`/`--teacher` reference: an existing folder, else a registry reference. Something that looks like a
 * path (has a slash, or starts with '.') but does not exist is a missing folder, not a registry lookup.
 */
export async function loadSource(ref: string, home: string | undefined, what: string): Promise<LoadedModelRef> {
  if (!existsSync(ref) && (ref.includes('/') || ref.startsWith('.')))
    throw new ModelFileError(`${what} ${ref}: no such model folder`, { file: ref, field: what.replace(/^--/, '') });
  return resolveModelRef(ref, home);
}

/** Default registry name for a derived model: the --out folder's name, made a valid model name. */
export function nameFromOut(out: string): string {
  return path.basename(path.resolve(out)).replace(/[^A-Za-z0-9._-]/g, '-');
}
