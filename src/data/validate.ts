/**
 * Row validation: turns a raw row into a cleaned example or a precise reason why it cannot be one.
 * Whether a bad row is fatal or dropped-and-counted is the caller's policy; this only classifies.
 */
import { DataError } from '../errors.ts';
import { cleanText } from './clean.ts';
import type { RawRow, TableEvent } from './load.ts';
import type { RemovalReason, RowIssue } from './report.ts';
import type { ColumnSpec, TextExample } from './types.ts';

export type RowCheck = { ok: true; example: TextExample } | { ok: false; reason: RemovalReason; issue: RowIssue };

function preview(value: unknown): string {
  const s = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function fieldIssue(row: RawRow, field: string, value: unknown, message: string): RowIssue {
  return { file: row.file, line: row.line, field, value: preview(value), message };
}

/** Labels and groups may be numbers or booleans in JSONL/Parquet; they are identifiers, so stringify them. */
function asIdentifier(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  return undefined;
}

/** Validates and cleans one table event against the column spec. */
export function checkRow(event: TableEvent, spec: ColumnSpec): RowCheck {
  if (event.kind === 'malformed') {
    return {
      ok: false,
      reason: 'malformed-row',
      issue: { file: event.file, line: event.line, message: event.message },
    };
  }
  const row = event;
  const { textColumn, labelColumn, groupColumn } = spec;
  for (const col of [textColumn, labelColumn, ...(groupColumn ? [groupColumn] : [])]) {
    if (!(col in row.values) || row.values[col] === undefined || row.values[col] === null) {
      return { ok: false, reason: 'missing-value', issue: fieldIssue(row, col, null, `column "${col}" has no value`) };
    }
  }
  const rawText = row.values[textColumn];
  if (typeof rawText !== 'string') {
    return {
      ok: false,
      reason: 'non-text-value',
      issue: fieldIssue(row, textColumn, rawText, `column "${textColumn}" must be text, found ${typeof rawText}`),
    };
  }
  const text = cleanText(rawText);
  if (text === '') {
    return {
      ok: false,
      reason: 'empty-text',
      issue: fieldIssue(row, textColumn, rawText, `column "${textColumn}" is empty`),
    };
  }
  const rawLabel = row.values[labelColumn];
  const labelId = asIdentifier(rawLabel);
  if (labelId === undefined) {
    return {
      ok: false,
      reason: 'non-text-value',
      issue: fieldIssue(row, labelColumn, rawLabel, `column "${labelColumn}" must be a string or number`),
    };
  }
  const label = cleanText(labelId);
  if (label === '') {
    return {
      ok: false,
      reason: 'empty-label',
      issue: fieldIssue(row, labelColumn, rawLabel, `column "${labelColumn}" is empty`),
    };
  }
  const example: TextExample = { text, label, file: row.file, line: row.line };
  if (groupColumn) {
    const g = asIdentifier(row.values[groupColumn]);
    if (g === undefined || cleanText(g) === '') {
      return {
        ok: false,
        reason: g === undefined ? 'non-text-value' : 'missing-value',
        issue: fieldIssue(
          row,
          groupColumn,
          row.values[groupColumn],
          `column "${groupColumn}" must be a non-empty string or number`,
        ),
      };
    }
    example.group = cleanText(g);
  }
  return { ok: true, example };
}

/** The error thrown for a bad row under the 'error' policy: file:line [column]: message. */
export function rowError(reason: RemovalReason, issue: RowIssue): DataError {
  const where = `${issue.file}:${issue.line}${issue.field ? `, column "${issue.field}"` : ''}`;
  const value = issue.value !== undefined ? ` (value: ${JSON.stringify(issue.value)})` : '';
  return new DataError(`${where}: ${reason}: ${issue.message}${value}`, {
    file: issue.file,
    line: issue.line,
    field: issue.field,
    value: issue.value,
    details: { reason },
  });
}
