/**
 * The requests a history walk makes to check what a page cannot tell by itself (history-walker.ts):
 * whether a first page of one millisecond was the oldest or the newest, whether a last range
 * answer as large as the largest page so far was cut short, and whether a page left room for more.
 */
import type { HistoryPage } from './api.js';

/**
 * probe: [start, T] then [start, T - 1] after a first page of one millisecond T (is there anything
 * older, so that the platform served newest first?). confirm: [P, to] then [P + 1, to] after a
 * range answer held only rows of the covered millisecond P and as many as the largest page so far
 * (the platform's cap may be that small, so it may have been cut short): under either reading of
 * the start bound, an empty answer then proves the end.
 */
export interface Check {
  kind: 'probe' | 'confirm';
  at: number;
  step: 1 | 2;
}

/**
 * Whether an oldest-first range answer that brought nothing new past P needs a confirming request
 * before it ends the window (a Check), fails it, or ends it (undefined).
 */
export function checkTail(
  checking: Check | undefined,
  wouldEnd: boolean,
  count: number,
  largestBefore: number,
  position: number,
): Check | 'fail' | undefined {
  if (checking?.kind === 'confirm') {
    if (!wouldEnd || count === 0) return undefined;
    return checking.step === 1 ? { kind: 'confirm', at: position, step: 2 } : 'fail';
  }
  if (wouldEnd && count > 0 && count >= largestBefore) return { kind: 'confirm', at: position, step: 1 };
  return undefined;
}

/**
 * Whether a page of fewer rows than `limit` leaves room for one more row: its datapoints plus the
 * widest row possible (W, the distinct names seen in this walk, which this counts) still fit in
 * `limit`, so a platform counting datapoints would have served one more row. A row the client
 * could not read counts as W: an unknown size must not look like room.
 */
export function roomLeft(page: HistoryPage, limit: number, names: Set<string>): boolean {
  let points = 0;
  for (let i = 0; i < page.rows.length; i++) {
    const values = page.rows[i].values;
    for (const k in values) {
      points++;
      names.add(k);
    }
  }
  const width = Math.max(1, names.size);
  return points + page.unreadable.length * width + width <= limit;
}

/**
 * Why a range answer that brought nothing new past the covered position (`past`) proves nothing:
 * it may have been cut short (`cap`), by more rows of one time than a page holds, or by rows the
 * client could not read, whose times are unknown.
 */
export function unprovenTail(page: HistoryPage, from: string, cap: string, past: string): string {
  const count = page.rows.length + page.unreadable.length;
  return page.unreadable.length
    ? `a range answer from ${from} held ${count} rows (${cap}), ${page.unreadable.length} of them unreadable (${page.unreadable[0].reason}), and no readable row ${past}: the walk cannot tell where the unreadable rows stand`
    : `a range answer from ${from} held ${count} rows (${cap}) and none ${past}: more rows share that time than one page holds`;
}
