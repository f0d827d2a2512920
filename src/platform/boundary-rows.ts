/**
 * Rows a page serves again at the walk's boundary: the millisecond (or two) an earlier page also
 * held. Rows sharing a millisecond keep the platform's order, so InfluxDB must end with the
 * platform's *last* value for each field (SPEC §2.3 (c)): a repeat of an earlier row after a
 * different one (A, B, A) is not a duplicate. Rows are matched per millisecond as sequences, not
 * as sets:
 * - the same sequence again: nothing new;
 * - the held sequence followed by more rows (a boundary that cut a millisecond): only the rest is
 *   new, and the held rows it disagrees with are carried (written before it, so the writer's merge
 *   counts the conflict);
 * - anything else (a newest-first page cut the millisecond from its other end): the whole sequence
 *   of that millisecond is written again, in the platform's order, so the last value wins.
 * Unreadable rows have no time to match on: one served again is passed on once (UnreadableSeen).
 */
import { isDeepStrictEqual } from 'node:util';
import type { DataRow } from './api.js';

export const NO_ROWS: DataRow[] = [];

export interface AgainstHeld {
  rows: DataRow[];
  carried: DataRow[];
  /** rows of the page already held */
  dropped: number;
}

/** `page` oldest first; `held` the rows of earlier pages at the boundary, oldest first. */
export function againstHeld(page: DataRow[], held: readonly DataRow[]): AgainstHeld {
  if (held.length === 0) return { rows: page, carried: NO_ROWS, dropped: 0 };
  const heldLo = held[0].time;
  const heldHi = held[held.length - 1].time;
  let overlap = false;
  for (let i = 0; i < page.length && !overlap; i++) overlap = page[i].time >= heldLo && page[i].time <= heldHi;
  if (!overlap) return { rows: page, carried: NO_ROWS, dropped: 0 };
  const rows: DataRow[] = [];
  let carried = NO_ROWS;
  let dropped = 0;
  for (let i = 0; i < page.length;) {
    const t = page[i].time;
    let j = i;
    while (j < page.length && page[j].time === t) j++;
    const served = page.slice(i, j);
    i = j;
    const before = t >= heldLo && t <= heldHi ? held.filter((h) => h.time === t) : NO_ROWS;
    if (before.length === 0) {
      rows.push(...served);
      continue;
    }
    if (isPrefix(before, served)) {
      dropped += before.length;
      const rest = served.slice(before.length);
      rows.push(...rest);
      for (const h of before) {
        if (!rest.some((r) => disagree(h.values, r.values))) continue;
        if (carried === NO_ROWS) carried = [];
        carried.push(h);
      }
      continue;
    }
    rows.push(...served);
  }
  return { rows, carried, dropped };
}

function isPrefix(a: readonly DataRow[], b: readonly DataRow[]): boolean {
  if (a.length > b.length) return false;
  for (let i = 0; i < a.length; i++) if (!isDeepStrictEqual(a[i].values, b[i].values)) return false;
  return true;
}

function disagree(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  for (const k in b) if (k in a && !isDeepStrictEqual(a[k], b[k])) return true;
  return false;
}

/**
 * The boundary rows after a page: every row of the millisecond(s) in [lo, hi], in the platform's
 * order, taken from the page where it served them (a page serves a whole millisecond again, or
 * starts it), else from what was held.
 */
export function boundary(held: readonly DataRow[], page: readonly DataRow[], lo: number, hi: number): DataRow[] {
  const out: DataRow[] = [];
  const served = new Set<number>();
  for (const r of page) if (r.time >= lo && r.time <= hi) served.add(r.time);
  for (const h of held) if (h.time >= lo && h.time <= hi && !served.has(h.time)) out.push(h);
  for (const r of page) if (r.time >= lo && r.time <= hi) out.push(r);
  out.sort((a, b) => a.time - b.time);
  return out;
}

/** Unreadable rows already passed on, by raw content: a re-read serves them again, and they are set aside once. */
export class UnreadableSeen {
  private readonly seen = new Set<string>();

  /** The rows of `unreadable` not passed on yet (now passed on). */
  fresh<T extends { raw: unknown }>(unreadable: T[]): T[] {
    return unreadable.filter((u) => {
      const k = JSON.stringify(u.raw) ?? String(u.raw);
      if (this.seen.has(k)) return false;
      this.seen.add(k);
      return true;
    });
  }
}
