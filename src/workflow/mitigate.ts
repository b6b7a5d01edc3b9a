/**
 * `mitigateModel` (behind `tailor mitigate`): group-specific decision thresholds (Fairlearn's ThresholdOptimizer
 * idea, eval/mitigation.ts) chosen on labelled validation rows under a parity constraint, stored with a copy of the
 * model (models/classifier.ts `storeGroupThresholds`) and registered as a new version whose lineage points at the
 * source (`mitigated_from`). Registered model folders are content-addressed and never changed in place, so the
 * thresholds go into a new folder, written atomically: `--out` is complete with its thresholds, or absent.
 */
import { chmod, cp, readdir, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { assertReadable } from '../audit/data.ts';
import { readTable } from '../data/index.ts';
import { ConfigError, DataError } from '../errors.ts';
import type { GroupThresholdSpec, ParityConstraint, ThresholdStats } from '../eval/mitigation.ts';
import { assertFreshOut, TAILOR_ARTIFACT, writeFolderAtomic } from '../models/artifact.ts';
import { storeGroupThresholds } from '../models/classifier.ts';
import { GROUP_THRESHOLDS_FILE } from '../models/group-thresholds.ts';
import { writeFileSynced } from '../onnx/io.ts';
import { parseModelRef } from '../registry/index.ts';
import type { ProviderSpec } from '../runtime/session.ts';
import { loadSource, nameFromOut, registerDerived, type DerivedModel } from './sources.ts';
import type { WorkflowProgress } from './tailor.ts';

export interface MitigateModelOptions {
  /** A registry reference (name, name:3, name@alias) or a model folder. */
  model: string;
  /** Labelled validation file(s) with the sensitive column: the thresholds are chosen on these rows. */
  eval: string[];
  textColumn: string;
  labelColumn: string;
  /** The column holding each row's group. */
  sensitiveColumn: string;
  /** Which rate the thresholds equalise across groups (default demographic_parity). */
  constraint?: ParityConstraint;
  /** Largest allowed difference of that rate between groups on the validation rows (default 0.02). */
  tolerance?: number;
  /** The favourable class whose probability is thresholded (default: the second of two labels). */
  positiveLabel?: string;
  /** Groups with fewer validation rows get no threshold (argmax). Default 30. */
  minGroupSize?: number;
  out: string;
  /** Registry name (default: the source's name for a registry reference, else the --out folder's name). */
  name?: string;
  alias?: string[];
  home?: string;
  providers?: ProviderSpec[];
  progress?: WorkflowProgress;
}

/** What `mitigateModel` did: the thresholds and their effect on the validation rows, and the new version. */
export interface MitigateModelResult {
  source: string;
  sensitiveColumn: string;
  constraint: ParityConstraint;
  positiveLabel: string;
  /** Group → threshold on P(positive) (2: never positive). Groups not listed keep argmax. */
  thresholds: Record<string, number>;
  /** On the validation rows: the model's argmax, then with the thresholds. */
  validation: { rows: number; before: ThresholdStats; after: ThresholdStats };
  /** Accuracy given up on the validation rows (before − after; negative when accuracy rose). */
  accuracyCost: number;
  /** Validation groups with fewer than minGroupSize rows: no threshold, argmax. */
  unthresholded: Array<{ group: string; count: number }>;
  out: string;
  file: string;
  runId: string;
  model: DerivedModel;
}

/** Gives every file under `dir` mode 0644 (walked by hand: Dirent.parentPath is newer than Node 20.0). */
async function makeWritable(dir: string): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await makeWritable(p);
    else if (e.isFile()) await chmod(p, 0o644);
  }
}

/** Text, label and group of every labelled row; an empty group or an unknown label is an error naming its line. */
async function readGroupedRows(
  o: MitigateModelOptions,
  labels: readonly string[],
): Promise<{ texts: string[]; labels: string[]; groups: string[] }> {
  await assertReadable(o.eval, 'eval');
  const out = { texts: [] as string[], labels: [] as string[], groups: [] as string[] };
  const known = new Set(labels);
  for (const file of o.eval) {
    for await (const ev of readTable(file, { requiredColumns: [o.textColumn, o.labelColumn, o.sensitiveColumn] })) {
      if (ev.kind !== 'row') continue;
      const t = ev.values[o.textColumn];
      if (t === null || t === undefined || String(t).trim() === '') continue;
      const label = String(ev.values[o.labelColumn] ?? '');
      if (!known.has(label))
        throw new DataError(
          `${file}:${ev.line}: label "${label}" is not one of the model's ${labels.length} labels (${labels.slice(0, 8).join(', ')}${labels.length > 8 ? ', ...' : ''})`,
          { file, line: ev.line, field: o.labelColumn, value: label },
        );
      const g = ev.values[o.sensitiveColumn];
      const group = g === null || g === undefined ? '' : String(g).trim();
      if (group === '')
        throw new DataError(`${file}:${ev.line}: sensitive column "${o.sensitiveColumn}" is empty`, {
          file,
          line: ev.line,
          field: o.sensitiveColumn,
        });
      out.texts.push(String(t));
      out.labels.push(label);
      out.groups.push(group);
    }
  }
  if (out.texts.length === 0)
    throw new DataError(`eval file ${o.eval.join(', ')} has no labelled rows`, { file: o.eval[0] });
  return out;
}

/** Fits, stores and registers group thresholds; see the module comment. Every input is checked before writing. */
export async function mitigateModel(o: MitigateModelOptions): Promise<MitigateModelResult> {
  const out = path.resolve(o.out);
  await assertFreshOut(out);
  const constraint = o.constraint ?? 'demographic_parity';
  if (constraint !== 'demographic_parity' && constraint !== 'true_positive_rate_parity')
    throw new ConfigError(
      `unknown constraint "${String(constraint)}" (demographic_parity, true_positive_rate_parity)`,
      {
        field: 'constraint',
        value: String(constraint),
      },
    );
  const src = await loadSource(o.model, o.home, '--model');
  const rows = await readGroupedRows(o, src.info.labels);
  const minGroupSize = o.minGroupSize ?? 30;
  o.progress?.log?.(
    `fitting group thresholds for "${o.sensitiveColumn}" on ${rows.texts.length} validation rows (${constraint})`,
  );
  let spec: GroupThresholdSpec | undefined;
  await writeFolderAtomic(out, async (tmp) => {
    // The whole classifier folder (model, tokenizer, tailor.json, monitoring reference), then the thresholds.
    await cp(src.dir, tmp, { recursive: true, force: true });
    // Registry objects are read-only (0444) and cp keeps modes: the copy is a new, writable folder.
    await makeWritable(tmp);
    const { thresholds } = await storeGroupThresholds(
      tmp,
      {
        ...rows,
        constraint,
        minGroupSize,
        ...(o.tolerance !== undefined ? { tolerance: o.tolerance } : {}),
        ...(o.positiveLabel !== undefined ? { positiveLabel: o.positiveLabel } : {}),
      },
      o.providers ? { providers: o.providers } : {},
    );
    spec = thresholds.spec;
    // tailor.json names the column the groups come from, so whoever serves the model knows what to pass.
    const infoFile = path.join(tmp, TAILOR_ARTIFACT);
    const info = JSON.parse(await readFile(infoFile, 'utf8')) as Record<string, unknown>;
    info.groupThresholds = {
      file: GROUP_THRESHOLDS_FILE,
      sensitiveColumn: o.sensitiveColumn,
      constraint,
      positiveLabel: spec.positiveLabel,
      from: o.model,
    };
    // Replaced inside the temporary folder (writeFileSynced creates, never overwrites): the rename publishes both.
    await rm(infoFile);
    await writeFileSynced(infoFile, new TextEncoder().encode(`${JSON.stringify(info, null, 2)}\n`));
  });
  const s = spec!;
  const counts = new Map<string, number>();
  for (const g of rows.groups) counts.set(g, (counts.get(g) ?? 0) + 1);
  const unthresholded = [...counts]
    .filter(([g]) => !Object.hasOwn(s.thresholds, g))
    .map(([group, count]) => ({ group, count }))
    .sort((a, b) => (a.group < b.group ? -1 : 1));
  const { before, after } = s.validation;
  const reg = await registerDerived({
    home: o.home,
    out,
    // A registered source gets a new version of its own name (the same model, now with thresholds).
    name: o.name ?? (existsSync(o.model) ? nameFromOut(out) : parseModelRef(o.model).name),
    ...(o.alias ? { aliases: o.alias } : {}),
    sourceRef: o.model,
    sourceDir: src.dir,
    relation: 'mitigated_from',
    experiment: 'mitigate',
    params: {
      sensitive_column: o.sensitiveColumn,
      constraint,
      tolerance: s.tolerance,
      positive_label: s.positiveLabel,
      min_group_size: minGroupSize,
      eval: o.eval.map((f) => path.resolve(f)),
    },
    metrics: {
      validation_accuracy_before: before.accuracy,
      validation_accuracy_after: after.accuracy,
      validation_parity_difference_before: before.demographicParityDifference,
      validation_parity_difference_after: after.demographicParityDifference,
      validation_equal_opportunity_difference_before: before.equalOpportunityDifference,
      validation_equal_opportunity_difference_after: after.equalOpportunityDifference,
    },
    description: `${src.info.strategy} with group thresholds on "${o.sensitiveColumn}" (${constraint})`,
    metadata: { strategy: src.info.strategy, group_thresholds: { column: o.sensitiveColumn, constraint } },
  });
  return {
    source: o.model,
    sensitiveColumn: o.sensitiveColumn,
    constraint,
    positiveLabel: s.positiveLabel,
    thresholds: s.thresholds,
    validation: { rows: s.validation.count, before, after },
    accuracyCost: before.accuracy - after.accuracy,
    unthresholded,
    out,
    file: path.join(out, GROUP_THRESHOLDS_FILE),
    runId: reg.runId,
    model: reg.model,
  };
}
