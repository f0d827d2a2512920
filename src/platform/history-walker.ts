/**
 * Walks a device's history page by page, following the platform's cursor (SPEC §2.3). It stops on
 * a page without a cursor, an empty page, or a cursor that does not move on in the reading
 * direction (the guard against an endless loop), and drops a row that a page repeats from the
 * previous one — same timestamp and same values — so nothing is counted twice.
 */
import { isDeepStrictEqual } from 'node:util';
import type { CallOptions, DataRow, DeviceRef, HistoryPage, PlatformClient } from './api.js';
import { HISTORY_LIMIT } from './client.js';

export interface HistoryWalkOptions {
  /** epoch ms; from and to are sent together or not at all */
  from?: number;
  to?: number;
  /** 1 = oldest first (default here: what backfills and checkpoints need), 0 = newest first */
  first: 0 | 1;
  /** rows per page (default 6000, the platform's maximum) */
  limit: number;
  /** datapoint names; all when omitted */
  ids?: string[];
  /** resume from a cursor a previous walk returned */
  cursor?: number;
  /** per call: signal, and whether the operator's token reserve may be used */
  call?: CallOptions;
}

export const DEFAULT_HISTORY_WALK_OPTIONS: HistoryWalkOptions = {
  first: 1,
  limit: HISTORY_LIMIT.max,
};

/** Why the walk ended; `done` is set on the last page yielded. */
export type WalkEnd = 'no-cursor' | 'empty-page' | 'cursor-stuck';

export interface WalkedPage extends HistoryPage {
  /** 0-based page number in this walk */
  index: number;
  /** the cursor this page was requested with (undefined for the first page of a fresh walk) */
  requestCursor?: number;
  /** rows dropped because the previous page already held them */
  duplicatesDropped: number;
  /** set on the last page: why the walk stops after it */
  done?: WalkEnd;
}

/**
 * An async iterator of pages. Every yielded page held data (an empty page ends the walk without
 * being yielded); the last page carries `done`, and the generator returns why the walk ended.
 */
export async function* walkHistory(
  client: Pick<PlatformClient, 'history'>,
  device: DeviceRef,
  options: Partial<HistoryWalkOptions> = {},
): AsyncGenerator<WalkedPage, WalkEnd, undefined> {
  const o: HistoryWalkOptions = { ...DEFAULT_HISTORY_WALK_OPTIONS, ...options };
  let cursor = o.cursor;
  let previous: DataRow[] | undefined;
  for (let index = 0; ; index++) {
    const page = await client.history(device, { ids: o.ids, start: o.from, end: o.to, first: o.first, limit: o.limit, cursor }, o.call);
    const raw = page.rows.length + page.unreadable.length;
    const rows = previous ? withoutRepeats(page.rows, previous) : page.rows;
    const walked: WalkedPage = { ...page, rows, index, requestCursor: cursor, duplicatesDropped: page.rows.length - rows.length };
    const end = endOf(raw, page.cursor, cursor, o.first);
    if (end) {
      walked.done = end;
      if (raw > 0) yield walked;
      return end;
    }
    yield walked;
    previous = page.rows;
    cursor = page.cursor;
  }
}

/** Reads every page of the walk and returns all rows in order (for small ranges and tools). */
export async function collectHistory(
  client: Pick<PlatformClient, 'history'>,
  device: DeviceRef,
  options: Partial<HistoryWalkOptions> = {},
): Promise<{ rows: DataRow[]; unreadable: HistoryPage['unreadable']; pages: number; end: WalkEnd }> {
  const rows: DataRow[] = [];
  const unreadable: HistoryPage['unreadable'] = [];
  let pages = 0;
  const walk = walkHistory(client, device, options);
  for (;;) {
    const next = await walk.next();
    if (next.done) return { rows, unreadable, pages, end: next.value };
    pages++;
    for (const r of next.value.rows) rows.push(r);
    for (const u of next.value.unreadable) unreadable.push(u);
  }
}

function endOf(raw: number, next: number | undefined, current: number | undefined, first: 0 | 1): WalkEnd | undefined {
  if (raw === 0) return 'empty-page';
  if (next === undefined) return 'no-cursor';
  if (current === undefined) return undefined;
  // oldest-first cursors grow, newest-first cursors shrink; anything else would loop
  return (first === 1 ? next > current : next < current) ? undefined : 'cursor-stuck';
}

/**
 * The rows of `page` minus those `previous` already held (same time, deep-equal values). Only a row
 * whose time lies within the previous page's time range can be a repeat, which at a page boundary
 * is a handful of rows: the common page (no such row) is returned as it is, with no map or copy,
 * and otherwise only the previous rows in the candidates' time range are indexed.
 */
function withoutRepeats(page: DataRow[], previous: DataRow[]): DataRow[] {
  if (page.length === 0 || previous.length === 0) return page;
  let prevMin = Infinity;
  let prevMax = -Infinity;
  for (let i = 0; i < previous.length; i++) {
    const t = previous[i].time;
    if (t < prevMin) prevMin = t;
    if (t > prevMax) prevMax = t;
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < page.length; i++) {
    const t = page[i].time;
    if (t >= prevMin && t <= prevMax) {
      if (t < lo) lo = t;
      if (t > hi) hi = t;
    }
  }
  if (lo > hi) return page;
  const earlier = new Map<number, DataRow[]>();
  for (const r of previous) {
    if (r.time < lo || r.time > hi) continue;
    const list = earlier.get(r.time);
    if (list) list.push(r);
    else earlier.set(r.time, [r]);
  }
  return page.filter((r) => !seenBefore(earlier, r));
}

function seenBefore(previous: Map<number, DataRow[]>, row: DataRow): boolean {
  const candidates = previous.get(row.time);
  return candidates !== undefined && candidates.some((p) => isDeepStrictEqual(p.values, row.values));
}
