/**
 * Walks a device's history in [from, to) and proves that it read all of it, whatever the platform
 * really does with each open point of the vendor document (SPEC §2.3, docs/platform-api.md): what
 * the cursor points at (or whether it comes), whether `limit` counts rows or datapoints, whether
 * `start`/`end` are inclusive, whether `first=1` is honoured, ignored or read the other way round,
 * and whether the platform serves fewer rows than `limit` asks (a cap of its own). Nothing about a
 * page's shape is taken on faith: its order is checked, and its size and cursor are only hints.
 *
 * - Every page's order is checked. Oldest first: the covered position P is the newest row read,
 *   and the next request is [P - 1 ms, to] (or a cursor strictly past P). Newest first (the
 *   platform ignores `first`): the walk turns round, the covered position L is the oldest row read,
 *   and the next request is [from - 1, L + 1]. A page in no order fails the window.
 * - The window is complete ONLY when a range answer brings nothing new past the covered position
 *   (an empty tail), or holds a row past the window's far end in its own order. A short page, a
 *   missing cursor, a cursor answer: none of them ends a walk.
 * - A range answer that brings nothing new but may be cut short (as many rows as `limit`, or as the
 *   largest page the platform served before more rows came) cannot prove anything: the walk fails
 *   with HistoryWalkError (e.g. more rows share one millisecond than a page holds), never loops,
 *   never ends quietly.
 * - Rows sharing a millisecond keep the platform's order (src/platform/boundary-rows.ts).
 * - What earlier walks learned (`learned`, src/platform/platform-profile.ts) is where a walk
 *   starts: a known page cap makes a page of that size "maybe cut short" from the first request,
 *   and a platform known to serve newest first is walked that way from a first page of one
 *   millisecond. What this walk saw is told to `observe` when it ends.
 */
import type { CallOptions, DataRow, DeviceRef, HistoryPage, PlatformClient } from './api.js';
import { ExpeedError } from '../base/retry.js';
import { HISTORY_LIMIT } from './requests.js';
import { againstHeld, boundary, NO_ROWS } from './boundary-rows.js';
import { orderBreak, pageOrder } from './page-order.js';
import { checkTail, roomLeft, type Check } from './walk-checks.js';

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
  /** what earlier walks learned about the platform */
  learned?: PlatformBehaviour;
  /** told what this walk saw of the platform, once, when it ends */
  observe?: (seen: PlatformBehaviour) => void;
}

/** How the platform serves history pages, as walks see it. */
export interface PlatformBehaviour {
  /** `newest-first` whatever `first` asks, or `asked` (oldest first, as `first=1` asks); unknown until a page spans two times */
  order?: 'newest-first' | 'asked';
  /** the largest page after which the platform still had rows, below `limit`: a cap of its own */
  pageCap?: number;
  /** the most rows (readable or not) one page held */
  largestPage?: number;
}

export const DEFAULT_HISTORY_WALK_OPTIONS: Pick<HistoryWalkOptions, 'limit' | 'maxStuckRequests'> = {
  limit: HISTORY_LIMIT.max,
  maxStuckRequests: 4,
};

/** Why the walk ended: an empty tail (nothing new past the covered position), or a row past the window's far end. */
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
  /**
   * every row of the window up to this time (epoch ms) is in this page or an earlier one, except
   * rows at this very millisecond that a later page may add; undefined while a newest-first walk
   * has not reached the window's start (nothing is proven before the walk ends)
   */
  provenThrough?: number;
  /** the order the platform served this page in */
  order: 'oldest-first' | 'newest-first';
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
    super(
      `device ${deviceId} window ${new Date(from).toISOString()}..${new Date(to).toISOString()}: history walk cannot make progress: ${reason}; not retryable`,
      { retryable: false },
    );
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
  const fail = (reason: string) => new HistoryWalkError(device.id, from, to, reason);
  // oldest first: rows before P are held, rows at P may be partial; a fresh walk starts at from - 1
  // (so that an exclusive start still serves `from`), a resumed one at its saved position
  let position = o.resumeAt !== undefined && o.resumeAt > from ? o.resumeAt : from - 1;
  // newest first: rows after L are held (L = to while nothing is read)
  let low = to;
  let descending = o.learned?.order === 'newest-first';
  let orderSeen: PlatformBehaviour['order'];
  let largestPage = 0;
  // rows of the boundary millisecond(s), oldest first, in the platform's order
  let held: DataRow[] = [];
  // distinct datapoint names seen: no row of this device is wider, so it bounds the room a page leaves
  const names = new Set<string>();
  // the largest page after which the platform still had rows: a cap of its own, below `limit`
  let capSeen: number | undefined = o.learned?.pageCap;
  // the cap this walk itself saw (what it tells `observe`)
  let capObserved: number | undefined;
  let previousCount = 0;
  let previousShort = false;
  // unreadable rows already passed on (by raw content): a re-read serves them again
  const unreadableSeen = new Set<string>();
  let cursor: number | undefined;
  let lastCursor = -Infinity;
  let stuck = 0;
  // the most rows a page held so far (in earlier walks too): the platform's cap, if any, is no smaller
  let largest = o.learned?.largestPage ?? 0;
  // a request that checks what a page of one millisecond cannot tell (see checkRequest)
  let check: Check | undefined;
  for (let index = 0; ; index++) {
    const start =
      check?.kind === 'confirm' ? check.at + check.step - 1 : descending ? from - 1 : Math.max(position - 1, from - 1);
    const end = check?.kind === 'probe' ? check.at - check.step + 1 : descending ? Math.min(low + 1, to) : to;
    const page = await client.history(device, { ids: o.ids, start, end, first: 1, limit, cursor }, o.call);
    const requestCursor = cursor;
    if (cursor !== undefined) lastCursor = cursor;
    const checking = check;
    check = undefined;

    const order = pageOrder(page.rows);
    if (order === 'none') throw fail(`a page from ${iso(start)} is in no time order (${orderBreak(page.rows)})`);
    let probing = false;
    if (checking?.kind === 'probe') {
      if (page.rows.some((r) => r.time < checking.at)) {
        // rows before T: the first page held the newest rows only, cut to its size, so T may hold more
        throw fail(
          `the platform served newest first and its first page held only ${iso(checking.at)}, the window's newest millisecond: more rows may share it than one page holds`,
        );
      } else if (page.rows.length > 0 && checking.step === 1) {
        // only rows at T (an inclusive end): ask up to T - 1
        check = { kind: 'probe', at: checking.at, step: 2 };
        probing = true;
      } else position = checking.at;
    }
    if (order === 'descending' && !descending) {
      if (index > 0 && position >= from)
        throw fail(`the platform served oldest first, then a page newest first from ${iso(start)}`);
      descending = true;
    } else if (order === 'ascending' && descending) {
      // a first page oldest first: the platform no longer does what an earlier walk learned
      if (index > 0 || orderSeen !== undefined)
        throw fail(`the platform served newest first, then a page oldest first from ${iso(start)}`);
      descending = false;
    }
    if (order === 'ascending' || order === 'descending') orderSeen = descending ? 'newest-first' : 'asked';
    // one sequence, oldest first, in the platform's order (a newest-first page is it reversed, even
    // a page of one millisecond: its rows come last first too)
    const served = descending ? page.rows.slice().reverse() : page.rows;
    const count = page.rows.length + page.unreadable.length;
    largestPage = Math.max(largestPage, count);
    const fits = roomLeft(page, limit, names);
    const cutShort = count >= limit || !fits || (capSeen !== undefined && count >= capSeen);

    const matched = againstHeld(served, held);
    const unreadable = page.unreadable.filter((u) => {
      const k = JSON.stringify(u.raw) ?? String(u.raw);
      if (unreadableSeen.has(k)) return false;
      unreadableSeen.add(k);
      return true;
    });
    const walked: WalkedPage = {
      ...page,
      rows: matched.rows,
      unreadable,
      index,
      requestCursor,
      requestStart: start,
      duplicatesDropped: matched.dropped,
      carried: matched.carried,
      order: descending ? 'newest-first' : 'oldest-first',
    };

    const first = served[0]?.time;
    if (
      index === 0 &&
      !descending &&
      o.learned?.order !== 'asked' &&
      order === 'single' &&
      first !== undefined &&
      first > start + 1 &&
      requestCursor === undefined &&
      count >= largest
    ) {
      // a first page of one millisecond T tells no order: oldest first nothing lies before T, newest
      // first it is the window's newest rows. What lies before T is asked before either is believed
      check = { kind: 'probe', at: first, step: 1 };
      probing = true;
    }
    let advanced: boolean;
    if (probing) {
      // nothing proven: the rows are passed on, the boundary held
      advanced = false;
      held = boundary(held, served, served[0]?.time ?? first ?? start, served[0]?.time ?? first ?? start);
    } else if (descending) {
      const oldest = served.length ? served[0].time : Infinity;
      advanced = oldest < low;
      if (advanced) low = oldest;
      held = boundary(held, served, low, low + 1);
    } else {
      const newest = served.length ? served[served.length - 1].time : -Infinity;
      advanced = newest > position;
      if (advanced) position = newest;
      held = boundary(held, served, position - 1, position);
      walked.provenThrough = position;
    }
    // a page short of `limit` after which the platform still had rows (past it, or more of its last
    // millisecond): it caps pages at that size. Answers to checks end early by design: no size
    if ((advanced || matched.rows.length > 0) && index > 0 && previousShort) {
      capObserved = Math.max(capObserved ?? 0, previousCount);
      capSeen = Math.max(capSeen ?? 0, previousCount);
    }
    const largestBefore = largest;
    if (!checking) {
      previousCount = count;
      previousShort = count < limit && fits;
      largest = Math.max(largest, count);
    }
    const brought = advanced || matched.rows.length > 0 || unreadable.length > 0;
    if (!checking && !probing) stuck = brought ? 0 : stuck + 1;

    if (requestCursor === undefined && !probing && checking?.kind !== 'probe') {
      const farEnd = descending ? low <= from - 1 : position >= to;
      const emptyTail = !brought;
      const confirm = checkTail(
        checking,
        emptyTail && !cutShort && !farEnd && !descending,
        count,
        largestBefore,
        position,
      );
      if (confirm === 'fail') throw fail(`a range answer from ${iso(start)} served rows at ${iso(position)} again`);
      if (confirm) {
        check = confirm;
        yield walked;
        continue;
      }
      if (farEnd || (emptyTail && !cutShort)) {
        const done: WalkEnd = farEnd ? 'reached-end' : 'complete';
        walked.done = done;
        if (descending) walked.provenThrough = to;
        o.observe?.({ order: orderSeen, pageCap: capObserved, largestPage });
        yield walked;
        return done;
      }
      if (emptyTail) {
        const past = descending ? `older than ${iso(low)}` : `newer than ${iso(position)}`;
        const cap = `limit ${limit}${capSeen !== undefined ? `, pages capped at ${capSeen}` : ''}`;
        throw fail(
          page.unreadable.length
            ? `a range answer from ${iso(start)} held ${count} rows (${cap}), ${page.unreadable.length} of them unreadable (${page.unreadable[0].reason}), and no readable row ${past}: the walk cannot tell where the unreadable rows stand`
            : `a range answer from ${iso(start)} held ${count} rows (${cap}) and none ${past}: more rows share that time than one page holds`,
        );
      }
    }
    if (stuck >= o.maxStuckRequests) {
      throw fail(`${stuck} requests in a row did not move past ${iso(descending ? low : position)}`);
    }
    yield walked;
    // follow the cursor only oldest first, only when it points past everything held, and never
    // twice to the same place; newest first, ranges only
    cursor =
      !descending && page.cursor !== undefined && page.cursor > position && page.cursor > lastCursor && page.cursor < to
        ? page.cursor
        : undefined;
  }
}

function iso(t: number): string {
  return new Date(t).toISOString();
}

export { NO_ROWS };
