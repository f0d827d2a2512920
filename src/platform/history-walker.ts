/**
 * Walks a device's history in [from, to), oldest first, complete under every reading of the vendor
 * document (SPEC §2.3, docs/platform-api.md): whatever the returned cursor points at (the next row,
 * the last row served and re-read or not, the page's first row, or nothing at all), whether `limit`
 * counts rows or datapoints, and whether `start`/`end` are inclusive.
 *
 * The cursor is only a hint. The trusted position P is time: the newest row received in this walk.
 * - A cursor strictly past P is followed (the reading "next row not yet served", the cheap path).
 * - Otherwise (no cursor, a cursor at or before P, a cursor request that brought nothing new) the
 *   walk asks the explicit range [P - 1 ms, to] without a cursor: inclusive and exclusive `start`
 *   both re-serve every row at P, and rows already held (same time, deep-equal values) are dropped;
 *   rows that share a millisecond but differ are kept.
 * - The window is complete ONLY when an answer to a range request is certainly not truncated (or
 *   holds a row at or after `to`): that answer holds every row from P - 1 to the end under every
 *   reading. A cursor answer never completes the window; its end is confirmed by one range request.
 * - A range answer that may be truncated and brings nothing new cannot make progress (e.g. more rows
 *   in one millisecond than `limit`): the walk fails with HistoryWalkError, never loops, never ends
 *   quietly.
 */
import { isDeepStrictEqual } from 'node:util';
import type { CallOptions, DataRow, DeviceRef, HistoryPage, PlatformClient } from './api.js';
import { ExpeedError } from '../base/retry.js';
import { HISTORY_LIMIT } from './requests.js';

export interface HistoryWalkOptions {
  /** epoch ms, window [from, to); rows from `from - 1` and at `to` may be yielded (callers filter) */
  from: number;
  to: number;
  /** points per page asked for (default 6000, the platform's maximum) */
  limit: number;
  /** datapoint names; all when omitted */
  ids?: string[];
  /** a resumed walk: rows up to this time were written, the walk asks from 1 ms before it */
  resumeAt?: number;
  /** requests in a row that do not move P before the walk fails (default 4) */
  maxStuckRequests: number;
  /** per call: signal, and whether the operator's token reserve may be used */
  call?: CallOptions;
}

export const DEFAULT_HISTORY_WALK_OPTIONS: Pick<HistoryWalkOptions, 'limit' | 'maxStuckRequests'> = {
  limit: HISTORY_LIMIT.max,
  maxStuckRequests: 4,
};

/** Why the walk ended: a range answer not truncated, or one that reached `to`. */
export type WalkEnd = 'complete' | 'reached-end';

export interface WalkedPage extends HistoryPage {
  /** 0-based page number in this walk */
  index: number;
  /** the cursor this page was requested with (undefined for a range request) */
  requestCursor?: number;
  /** the range start this page was requested with */
  requestStart: number;
  /** rows dropped because an earlier page already held them */
  duplicatesDropped: number;
  /**
   * rows of earlier pages at the same millisecond as a new row that disagrees with them on a field:
   * written again before the new row, so the writer's merge sees (and counts) the conflict
   */
  carried: DataRow[];
  /** set on the last page: why the walk stops after it */
  done?: WalkEnd;
}

/** The walk cannot go on under any reading: not retryable, names device, window and reason. */
export class HistoryWalkError extends ExpeedError {
  constructor(
    readonly deviceId: string,
    readonly from: number,
    readonly to: number,
    readonly reason: string,
  ) {
    super(`device ${deviceId} window ${new Date(from).toISOString()}..${new Date(to).toISOString()}: history walk cannot make progress: ${reason}; not retryable`, { retryable: false });
  }
}

/**
 * An async iterator of pages; every page the platform answered is yielded (possibly with no new
 * rows), the last one carries `done`, and the generator returns why the walk ended. It throws
 * HistoryWalkError when no progress is possible.
 */
export async function* walkHistory(
  client: Pick<PlatformClient, 'history'>,
  device: DeviceRef,
  options: Pick<HistoryWalkOptions, 'from' | 'to'> & Partial<HistoryWalkOptions>,
): AsyncGenerator<WalkedPage, WalkEnd, undefined> {
  const o: HistoryWalkOptions = { ...DEFAULT_HISTORY_WALK_OPTIONS, ...options };
  const { from, to, limit } = o;
  // P: rows at P and before (down to P - 1) are held; a fresh walk starts at from - 1 (so that an
  // exclusive start still serves `from`), a resumed one at its saved position
  let position = o.resumeAt !== undefined && o.resumeAt > from ? o.resumeAt : from - 1;
  let held: DataRow[] = [];
  // distinct datapoint names seen: no row of this device is wider, so it bounds the room a page leaves
  const names = new Set<string>();
  let cursor: number | undefined;
  let lastCursor = -Infinity;
  let stuck = 0;
  for (let index = 0; ; index++) {
    const start = Math.max(position - 1, from - 1);
    const page = await client.history(device, { ids: o.ids, start, end: to, first: 1, limit, cursor }, o.call);
    const requestCursor = cursor;
    if (cursor !== undefined) lastCursor = cursor;

    let newest = -Infinity;
    for (let i = 0; i < page.rows.length; i++) if (page.rows[i].time > newest) newest = page.rows[i].time;
    const count = page.rows.length + page.unreadable.length;
    // a page of `limit` rows may be truncated whatever limit counts: its datapoints are not needed
    // (the bulk of a walk where limit counts rows costs no per-value work)
    const truncated = count >= limit || !roomLeft(page, limit, names);

    const { rows, carried } = held.length ? againstHeld(page.rows, held) : { rows: page.rows, carried: NO_ROWS };
    const walked: WalkedPage = { ...page, rows, index, requestCursor, requestStart: start, duplicatesDropped: page.rows.length - rows.length, carried };

    const advanced = newest > position;
    if (advanced) {
      position = newest;
      stuck = 0;
    } else {
      stuck++;
    }
    held = holdFrom(held, page.rows, position - 1);

    if (requestCursor === undefined) {
      const end: WalkEnd | undefined = newest >= to ? 'reached-end' : !truncated ? 'complete' : undefined;
      if (end) {
        walked.done = end;
        yield walked;
        return end;
      }
      if (!advanced && rows.length === 0) {
        throw new HistoryWalkError(device.id, from, to, `a range answer from ${iso(start)} held ${count} rows (limit ${limit}) and none newer than ${iso(position)}: more rows share that time than one page holds`);
      }
    }
    if (stuck >= o.maxStuckRequests) {
      throw new HistoryWalkError(device.id, from, to, `${stuck} requests in a row did not move past ${iso(position)}`);
    }
    yield walked;
    // follow the cursor only when it points past everything held, and never twice to the same place
    cursor = page.cursor !== undefined && page.cursor > position && page.cursor > lastCursor && page.cursor < to ? page.cursor : undefined;
  }
}

const NO_ROWS: DataRow[] = [];

/**
 * Whether a page of fewer rows than `limit` is certainly whole: its datapoints plus the widest row
 * possible (W, the distinct names seen in this walk, which this counts) still fit in `limit`, so a
 * platform counting datapoints would have served one more row. A row the client could not read
 * counts as W: an unknown size must not look like room.
 */
function roomLeft(page: HistoryPage, limit: number, names: Set<string>): boolean {
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

function iso(t: number): string {
  return new Date(t).toISOString();
}

/**
 * The rows of `page` minus those already held (same time, deep-equal values), and the held rows a
 * new row shares its millisecond with and disagrees with on a field. The common page (no row at or
 * before the newest held time) is returned as it is, with no copy.
 */
function againstHeld(page: DataRow[], held: DataRow[]): { rows: DataRow[]; carried: DataRow[] } {
  let heldMax = -Infinity;
  for (const h of held) if (h.time > heldMax) heldMax = h.time;
  let overlap = false;
  for (let i = 0; i < page.length && !overlap; i++) overlap = page[i].time <= heldMax;
  if (!overlap) return { rows: page, carried: NO_ROWS };
  const rows: DataRow[] = [];
  let carried = NO_ROWS;
  for (const r of page) {
    if (r.time > heldMax) {
      rows.push(r);
      continue;
    }
    let repeat = false;
    for (const h of held) if (h.time === r.time && isDeepStrictEqual(h.values, r.values)) repeat = true;
    if (repeat) continue;
    rows.push(r);
    for (const h of held) {
      if (h.time !== r.time || !disagree(h.values, r.values) || carried.includes(h)) continue;
      if (carried === NO_ROWS) carried = [];
      carried.push(h);
    }
  }
  return { rows, carried };
}

function disagree(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  for (const k in b) if (k in a && !isDeepStrictEqual(a[k], b[k])) return true;
  return false;
}

/** The rows at or after `since`: those still held plus those of the page (a page's rows are few there). */
function holdFrom(held: DataRow[], page: DataRow[], since: number): DataRow[] {
  const out: DataRow[] = [];
  for (const h of held) if (h.time >= since) out.push(h);
  // pages come oldest first: only the tail can reach `since`
  let i = page.length;
  while (i > 0 && page[i - 1].time >= since) i--;
  for (; i < page.length; i++) if (!out.some((h) => h.time === page[i].time && isDeepStrictEqual(h.values, page[i].values))) out.push(page[i]);
  return out;
}
