/** The one plain-text table renderer: data and eval reports, the CLI, `runs`/`models` listings. */

export type Align = 'left' | 'right';

const NUMERIC = /^[-+]?[\d.,]+(e[-+]?\d+)?%?$|^-$|^$/;

/**
 * Renders rows under a header with column-aligned padding and a rule under the header, columns separated by two
 * spaces. `align` gives each column's side; 'auto' right-aligns the columns whose every cell looks numeric.
 */
export function renderTable(headers: string[], rows: string[][], align: Align[] | 'auto' = []): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const sides: Align[] =
    align === 'auto'
      ? headers.map((_, i) => (rows.length > 0 && rows.every((r) => NUMERIC.test(r[i] ?? '')) ? 'right' : 'left'))
      : align;
  const fmt = (cells: string[]): string =>
    cells
      .map((c, i) => ((sides[i] ?? 'left') === 'right' ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [fmt(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(fmt)].join('\n');
}
