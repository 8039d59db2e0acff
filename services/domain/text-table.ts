/**
 * Plain-text output of the commands (`tally keys list`, `tally alerts list`): aligned columns and
 * times to the minute, in UTC.
 */

/** Rows (the first: the headings) as lines of columns two spaces apart, each line ending in \n. */
export function formatColumns(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  return rows
    .map(
      (row) =>
        `${row
          .map((cell, c) => cell.padEnd(widths[c]!))
          .join('  ')
          .trimEnd()}\n`,
    )
    .join('');
}

/** `2026-12-06 21:39Z`; `dash` when there is no time. */
export function minuteTime(date: Date | undefined, dash = '—'): string {
  return date === undefined ? dash : `${date.toISOString().slice(0, 16).replace('T', ' ')}Z`;
}
