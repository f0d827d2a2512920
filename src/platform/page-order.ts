/**
 * What order a history page is really in, whatever `first` asked for: the platform may ignore
 * `first=1`, or read it the other way round (SPEC §2.3 (a)). A page is checked, never trusted.
 */
import type { DataRow } from './api.js';

/**
 * `ascending`: times never fall; `descending`: times never rise and at least two differ (a newest
 * first page, read as the oldest-first sequence reversed); `single`: one time or none (no order to
 * tell); `none`: times both rise and fall — no walk can be sure of such a page.
 */
export type PageOrder = 'ascending' | 'descending' | 'single' | 'none';

export function pageOrder(rows: readonly DataRow[]): PageOrder {
  let rises = false;
  let falls = false;
  for (let i = 1; i < rows.length; i++) {
    const d = rows[i].time - rows[i - 1].time;
    if (d > 0) rises = true;
    else if (d < 0) falls = true;
    if (rises && falls) return 'none';
  }
  return rises ? 'ascending' : falls ? 'descending' : 'single';
}

/** The first place where a page's order breaks, for the error that names it. */
export function orderBreak(rows: readonly DataRow[]): string {
  let dir = 0;
  for (let i = 1; i < rows.length; i++) {
    const d = Math.sign(rows[i].time - rows[i - 1].time);
    if (d === 0) continue;
    if (dir !== 0 && d !== dir) {
      return `row ${i} (${new Date(rows[i].time).toISOString()}) follows row ${i - 1} (${new Date(rows[i - 1].time).toISOString()}) after ${dir > 0 ? 'rising' : 'falling'} times`;
    }
    dir = d;
  }
  return 'no break';
}
