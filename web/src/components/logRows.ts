/** Placing a log chunk stored late (after a higher-numbered one) among the rows by its seq. */

/** A numbered log row: its chunk's seq and its line number from 1. */
export interface NumberedRow {
  seq: number;
  n: number;
}

/**
 * `rows` (in seq order) with each group of `late` rows (one chunk's lines, numbers ignored) put
 * before the first row of a higher seq, numbered in place; the rows after it are renumbered.
 * A chunk whose place is not held (above every row) is left out: the caller appends those.
 */
export function placeLate<T extends NumberedRow>(rows: T[], late: T[][]): T[] {
  let next = rows;
  for (const group of late) {
    if (group.length === 0) continue;
    const at = next.findIndex((r) => r.seq > group[0].seq);
    if (at < 0) continue;
    const first = at > 0 ? next[at - 1].n + 1 : next[0].n;
    next = [
      ...next.slice(0, at),
      ...group.map((r, j) => ({ ...r, n: first + j })),
      ...next.slice(at).map((r) => ({ ...r, n: r.n + group.length })),
    ];
  }
  return next;
}
