/**
 * Copies one registry into another (typically a local `.tailor` into PostgreSQL + S3), then verifies the copy.
 * Everything goes through the two storage interfaces, so any pair of backends works.
 *
 * The target keeps the registry's invariant while the copy runs: each object is reserved, uploaded and checked
 * against its hash before the row that references it is committed. Run ids and version numbers are kept. The
 * copy is resumable: a run already copied completely is skipped, a partly copied one is copied again, a version
 * already present with the same artifact is skipped, and a conflicting one stops the migration with an error.
 */
import { RegistryError } from '../errors.ts';
import type { Registry } from './registry.ts';
import type { ModelVersion, RunRecord, StoredObject } from './types.ts';
import { HOST, randomHex } from './util.ts';

/** What a migration copied and checked. */
export interface MigrateReport {
  from: string;
  to: string;
  runs: { copied: number; skipped: number };
  metrics: number;
  artifacts: number;
  predictions: number;
  modelVersions: { copied: number; skipped: number };
  aliases: number;
  objects: { copied: number; present: number; bytes: number };
  /** The checks that passed: every count equal, every object re-hashed in the target. */
  verified: { runs: number; modelVersions: number; objects: number };
}

/** Options for migrateRegistry. */
export interface MigrateOptions {
  /** Called with one line per step, for progress output. */
  onProgress?: (line: string) => void;
}

interface RunCounts {
  params: string;
  tags: string;
  status: string;
  metrics: number;
  artifacts: string;
  predictions: string;
}

async function runCounts(reg: Registry, run: RunRecord): Promise<RunCounts> {
  const sets = await reg.metadata.listPredictionSets(run.id);
  const preds: string[] = [];
  for (const s of sets) preds.push(`${s}:${(await reg.metadata.getPredictions(run.id, s)).length}`);
  return {
    params: JSON.stringify(Object.entries(run.params).sort()),
    tags: JSON.stringify(Object.entries(run.tags).sort()),
    status: `${run.status} ${run.endedAt ?? ''}`,
    metrics: (await reg.metadata.getMetrics(run.id)).length,
    artifacts: (await reg.metadata.listArtifacts(run.id)).map((a) => `${a.path}=${a.hash}`).join(','),
    predictions: preds.join(','),
  };
}

function sameCounts(a: RunCounts, b: RunCounts): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Copies every run (params, tags, status, metrics, predictions, artifacts), model version (lineage, metadata),
 * alias and referenced object of `from` into `to`, then verifies counts and re-hashes every object in `to`.
 * Throws RegistryError on a conflict or a failed check.
 */
export async function migrateRegistry(
  from: Registry,
  to: Registry,
  options: MigrateOptions = {},
): Promise<MigrateReport> {
  const say = options.onProgress ?? (() => undefined);
  const report: MigrateReport = {
    from: from.location,
    to: to.location,
    runs: { copied: 0, skipped: 0 },
    metrics: 0,
    artifacts: 0,
    predictions: 0,
    modelVersions: { copied: 0, skipped: 0 },
    aliases: 0,
    objects: { copied: 0, present: 0, bytes: 0 },
    verified: { runs: 0, modelVersions: 0, objects: 0 },
  };

  /**
   * Makes `obj` present in the target and commits the rows referencing it, holding a reservation meanwhile so
   * that a gc running on the target cannot remove the object between upload and commit.
   */
  const withObject = async <T>(obj: StoredObject, commitRows: (tokens: string[]) => Promise<T>): Promise<T> => {
    const token = randomHex(12);
    await to.metadata.reserveObject({ token, hash: obj.hash, pid: process.pid, host: HOST, createdAt: Date.now() });
    try {
      if (await to.artifacts.has(obj.hash)) report.objects.present++;
      else {
        const staged = await to.artifacts.ingest(await from.artifacts.materialize(obj.hash));
        if (staged.hash !== obj.hash || staged.type !== obj.type) {
          await staged.abort();
          throw new RegistryError(
            `object ${obj.hash} of ${from.location} re-hashes to ${staged.hash} (${staged.type}); the source is corrupt, run 'tailor runs gc' there to see which rows reference it`,
            { value: obj.hash },
          );
        }
        await staged.commit();
        report.objects.copied++;
        report.objects.bytes += staged.size;
      }
      return await commitRows([token]);
    } catch (e) {
      await to.metadata.releaseObject(token).catch(() => undefined);
      throw e;
    }
  };

  const runs = (await from.metadata.listRuns()).reverse(); // oldest first
  for (const run of runs) {
    const existing = await to.metadata.getRun(run.id);
    if (existing) {
      if (sameCounts(await runCounts(from, run), await runCounts(to, existing))) {
        report.runs.skipped++;
        continue;
      }
      // A run the previous attempt copied only in part; no model version can reference it yet.
      say(`run ${run.id}: partly copied before, copying again`);
      await to.metadata.deleteRun(run.id);
    }
    await to.metadata.createRun({
      id: run.id,
      name: run.name,
      experiment: run.experiment,
      startedAt: run.startedAt,
      baseModel: run.baseModel,
      datasetFingerprint: run.datasetFingerprint,
      codeVersion: run.codeVersion,
      params: run.params,
      tags: run.tags,
      pid: run.pid,
      host: run.host,
    });
    if (run.heartbeatAt !== null) await to.metadata.heartbeat(run.id, run.heartbeatAt);
    const metrics = await from.metadata.getMetrics(run.id);
    await to.metadata.logMetrics(run.id, metrics);
    report.metrics += metrics.length;
    for (const set of await from.metadata.listPredictionSets(run.id)) {
      const rows = await from.metadata.getPredictions(run.id, set);
      await to.metadata.setPredictions(run.id, set, rows);
      report.predictions += rows.length;
    }
    for (const ref of await from.metadata.listArtifacts(run.id)) {
      await withObject(ref, (tokens) => to.metadata.addArtifacts(run.id, [ref], tokens));
      report.artifacts++;
    }
    // Status last: a run that shows as ended in the target has all its rows.
    if (run.status !== 'running') await to.metadata.endRun(run.id, run.status, run.endedAt ?? run.startedAt, run.error);
    report.runs.copied++;
    say(`run ${run.id}: copied`);
  }

  // Versions in creation order, so that lineage parents exist before their children.
  const models = await from.metadata.listModels();
  const versions: ModelVersion[] = [];
  for (const m of models) versions.push(...(await from.metadata.listModelVersions(m.name)));
  versions.sort(
    (a, b) => a.createdAt - b.createdAt || (a.name < b.name ? -1 : a.name > b.name ? 1 : a.version - b.version),
  );
  let pending = versions;
  while (pending.length > 0) {
    const deferred: ModelVersion[] = [];
    for (const v of pending) {
      const there = await to.metadata.getModelVersion(v.name, v.version);
      if (there) {
        if (there.artifact.hash !== v.artifact.hash) {
          throw new RegistryError(
            `model version ${v.name}:${v.version} already exists in ${to.location} with another artifact (${there.artifact.hash}, not ${v.artifact.hash}); migrate into an empty registry`,
            { value: `${v.name}:${v.version}` },
          );
        }
        report.modelVersions.skipped++;
        continue;
      }
      const parentsMissing = [];
      for (const p of v.parents) {
        if (p.model && !(await to.metadata.getModelVersion(p.model.name, p.model.version))) parentsMissing.push(p);
      }
      if (parentsMissing.length > 0) {
        deferred.push(v);
        continue;
      }
      const next = (await to.metadata.listModelVersions(v.name)).length + 1;
      if (next !== v.version) {
        throw new RegistryError(
          `model ${v.name} in ${to.location} would get version ${next} for source version ${v.version}; migrate into an empty registry`,
          { value: `${v.name}:${v.version}` },
        );
      }
      const made = await withObject(v.artifact, (tokens) =>
        to.metadata.createModelVersion(
          {
            name: v.name,
            artifact: v.artifact,
            runId: v.runId,
            createdAt: v.createdAt,
            description: v.description,
            metadata: v.metadata,
            parents: v.parents,
            // An alias names one version, so setting each at its version's creation reproduces the final state
            // (and keeps the model's update time, which a later setAlias would move to now).
            aliases: v.aliases,
          },
          tokens,
        ),
      );
      if (made.version !== v.version) {
        throw new RegistryError(
          `model ${v.name}: another writer registered a version during the migration (got ${made.version}, expected ${v.version})`,
          { value: `${v.name}:${v.version}` },
        );
      }
      report.modelVersions.copied++;
    }
    if (deferred.length === pending.length) {
      const v = deferred[0];
      throw new RegistryError(
        `model version ${v.name}:${v.version} has a lineage parent that is not in ${from.location}`,
        {
          value: `${v.name}:${v.version}`,
        },
      );
    }
    pending = deferred;
  }
  for (const m of models) {
    for (const [alias, version] of Object.entries(m.aliases)) {
      // Only versions skipped as already copied can carry a stale alias (moved in the source since).
      if ((await to.metadata.resolveAlias(m.name, alias)) !== version)
        await to.metadata.setAlias(m.name, alias, version);
      report.aliases++;
    }
  }
  say(`model versions: ${report.modelVersions.copied} copied, ${report.modelVersions.skipped} already there`);

  await verifyCopy(from, to, report);
  say(
    `verified: ${report.verified.runs} runs, ${report.verified.modelVersions} versions, ${report.verified.objects} objects`,
  );
  return report;
}

/** Compares every run and version of `from` with `to` and re-hashes every referenced object in `to`. */
async function verifyCopy(from: Registry, to: Registry, report: MigrateReport): Promise<void> {
  const problems: string[] = [];
  for (const run of await from.metadata.listRuns()) {
    const there = await to.metadata.getRun(run.id);
    if (!there) problems.push(`run ${run.id} is missing`);
    else if (!sameCounts(await runCounts(from, run), await runCounts(to, there)))
      problems.push(`run ${run.id} differs (params, tags, status, metrics, artifacts or predictions)`);
    else report.verified.runs++;
  }
  for (const m of await from.metadata.listModels()) {
    const target = new Map((await to.metadata.listModelVersions(m.name)).map((v) => [v.version, v]));
    for (const v of await from.metadata.listModelVersions(m.name)) {
      const t = target.get(v.version);
      const same =
        t !== undefined &&
        t.artifact.hash === v.artifact.hash &&
        JSON.stringify(t.parents) === JSON.stringify(v.parents) &&
        JSON.stringify(t.aliases) === JSON.stringify(v.aliases) &&
        t.runId === v.runId;
      if (same) report.verified.modelVersions++;
      else problems.push(`model version ${v.name}:${v.version} ${t ? 'differs' : 'is missing'}`);
    }
  }
  const objects = new Map<string, StoredObject['type']>();
  for (const r of await from.metadata.referencedObjectList()) objects.set(r.hash, r.type);
  for (const [hash, type] of objects) {
    const c = await to.artifacts.check(hash, type);
    if (c.ok) report.verified.objects++;
    else problems.push(`object ${hash}: ${c.problem ?? 'unknown problem'}`);
  }
  if (problems.length > 0) {
    throw new RegistryError(
      `migration to ${to.location} failed verification (${problems.length} problems): ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? '; ...' : ''}`,
      { details: { problems } },
    );
  }
}
