/**
 * The state of one history walk and its steps (the rules are in history-walker.ts): what the next
 * request asks, how an answer's order is read, how far it moves the covered position, and whether
 * it ends the window, needs a check, or fails it. A class: the walk's state lives from the first
 * request to the last answer, and each step reads and moves part of it.
 */
import type { DataRow, DeviceRef, HistoryPage, HistoryQuery } from './api.js';
import { againstHeld, boundary, UnreadableSeen, type AgainstHeld } from './boundary-rows.js';
import { orderBreak, pageOrder, type PageOrder } from './page-order.js';
import { checkTail, roomLeft, unprovenTail, type Check } from './walk-checks.js';
import {
  HistoryWalkError,
  type HistoryWalkOptions,
  type PlatformBehaviour,
  type WalkedPage,
  type WalkEnd,
} from './walk-api.js';

/** One answer read: the page to yield and, on the last one, why the walk ends after it. */
export interface WalkStep {
  walked: WalkedPage;
  done?: WalkEnd;
}

/** What one answer holds, measured once for the steps that read it. */
interface Answer {
  page: HistoryPage;
  index: number;
  start: number;
  requestCursor: number | undefined;
  /** the check this answer answers */
  checking: Check | undefined;
  order: PageOrder;
  /** the page as one sequence, oldest first, in the platform's order */
  served: DataRow[];
  /** rows, readable or not */
  count: number;
  fits: boolean;
  cutShort: boolean;
  matched: AgainstHeld;
}

export class HistoryWalk {
  // oldest first: rows before P are held, rows at P may be partial; a fresh walk starts at from - 1
  // (so that an exclusive start still serves `from`), a resumed one at its saved position
  private position: number;
  // newest first: rows after L are held (L = to while nothing is read)
  private low: number;
  private descending: boolean;
  private orderSeen: PlatformBehaviour['order'];
  private largestPage = 0;
  // rows of the boundary millisecond(s), oldest first, in the platform's order
  private held: DataRow[] = [];
  // distinct datapoint names seen: no row of this device is wider, so it bounds the room a page leaves
  private readonly names = new Set<string>();
  // the largest page after which the platform still had rows: a cap of its own, below `limit`
  private capSeen: number | undefined;
  // the cap this walk itself saw (what it tells `observe`)
  private capObserved: number | undefined;
  private previousCount = 0;
  private previousShort = false;
  private readonly unreadable = new UnreadableSeen();
  private cursor: number | undefined;
  private lastCursor = -Infinity;
  private stuck = 0;
  // the most rows a page held so far (in earlier walks too): the platform's cap, if any, is no smaller
  private largest: number;
  // a request that checks what a page of one millisecond cannot tell (see walk-checks.ts)
  private check: Check | undefined;

  constructor(
    private readonly device: DeviceRef,
    private readonly o: HistoryWalkOptions,
  ) {
    this.position = o.resumeAt !== undefined && o.resumeAt > o.from ? o.resumeAt : o.from - 1;
    this.low = o.to;
    this.descending = o.learned?.order === 'newest-first';
    this.capSeen = o.learned?.pageCap;
    this.largest = o.learned?.largestPage ?? 0;
  }

  /** The next request: the range a check asks, or what lies past the covered position, and the cursor to follow. */
  request(): HistoryQuery & { start: number } {
    const { from, to } = this.o;
    const check = this.check;
    const start =
      check?.kind === 'confirm'
        ? check.at + check.step - 1
        : this.descending
          ? from - 1
          : Math.max(this.position - 1, from - 1);
    const end = check?.kind === 'probe' ? check.at - check.step + 1 : this.descending ? Math.min(this.low + 1, to) : to;
    return { ids: this.o.ids, start, end, first: 1, limit: this.o.limit, cursor: this.cursor };
  }

  /** Reads the answer to `request()`; throws HistoryWalkError when the walk cannot go on. */
  read(page: HistoryPage, index: number, start: number): WalkStep {
    const requestCursor = this.cursor;
    if (this.cursor !== undefined) this.lastCursor = this.cursor;
    const checking = this.check;
    this.check = undefined;
    const order = pageOrder(page.rows);
    if (order === 'none') throw this.fail(`a page from ${iso(start)} is in no time order (${orderBreak(page.rows)})`);
    let probing = this.answerProbe(page, checking);
    this.readOrder(order, index, start);
    const a = this.measure({ page, index, start, requestCursor, checking, order });
    const walked: WalkedPage = {
      ...page,
      rows: a.matched.rows,
      unreadable: this.unreadable.fresh(page.unreadable),
      index,
      requestCursor,
      requestStart: start,
      duplicatesDropped: a.matched.dropped,
      carried: a.matched.carried,
      order: this.descending ? 'newest-first' : 'oldest-first',
    };
    if (this.startsProbe(a)) probing = true;
    const advanced = this.advance(a, probing, walked);
    const brought = advanced || a.matched.rows.length > 0 || walked.unreadable.length > 0;
    const largestBefore = this.learn(a, advanced, probing, brought);

    if (requestCursor === undefined && !probing && checking?.kind !== 'probe') {
      const done = this.endCheck(a, brought, largestBefore);
      if (done === 'confirm') return { walked };
      if (done) {
        walked.done = done;
        if (this.descending) walked.provenThrough = this.o.to;
        this.o.observe?.({ order: this.orderSeen, pageCap: this.capObserved, largestPage: this.largestPage });
        return { walked, done };
      }
    }
    if (this.stuck >= this.o.maxStuckRequests) {
      throw this.fail(
        `${this.stuck} requests in a row did not move past ${iso(this.descending ? this.low : this.position)}`,
      );
    }
    // follow the cursor only oldest first, only when it points past everything held, and never
    // twice to the same place; newest first, ranges only
    const c = page.cursor;
    this.cursor =
      !this.descending && c !== undefined && c > this.position && c > this.lastCursor && c < this.o.to ? c : undefined;
    return { walked };
  }

  /** The answer to a probe: rows before T fail the walk; rows at T only ask once more up to T - 1; none prove T the oldest. Whether it probes again. */
  private answerProbe(page: HistoryPage, checking: Check | undefined): boolean {
    if (checking?.kind !== 'probe') return false;
    if (page.rows.some((r) => r.time < checking.at)) {
      // rows before T: the first page held the newest rows only, cut to its size, so T may hold more
      throw this.fail(
        `the platform served newest first and its first page held only ${iso(checking.at)}, the window's newest millisecond: more rows may share it than one page holds`,
      );
    } else if (page.rows.length > 0 && checking.step === 1) {
      // only rows at T (an inclusive end): ask up to T - 1
      this.check = { kind: 'probe', at: checking.at, step: 2 };
      return true;
    }
    this.position = checking.at;
    return false;
  }

  /** Turns the walk round when the platform serves newest first; a platform that changes its order mid-walk fails it. */
  private readOrder(order: PageOrder, index: number, start: number): void {
    if (order === 'descending' && !this.descending) {
      if (index > 0 && this.position >= this.o.from)
        throw this.fail(`the platform served oldest first, then a page newest first from ${iso(start)}`);
      this.descending = true;
    } else if (order === 'ascending' && this.descending) {
      // a first page oldest first: the platform no longer does what an earlier walk learned
      if (index > 0 || this.orderSeen !== undefined)
        throw this.fail(`the platform served newest first, then a page oldest first from ${iso(start)}`);
      this.descending = false;
    }
    if (order === 'ascending' || order === 'descending') this.orderSeen = this.descending ? 'newest-first' : 'asked';
  }

  private measure(a: Pick<Answer, 'page' | 'index' | 'start' | 'requestCursor' | 'checking' | 'order'>): Answer {
    const { page } = a;
    // one sequence, oldest first, in the platform's order (a newest-first page is it reversed, even
    // a page of one millisecond: its rows come last first too)
    const served = this.descending ? page.rows.slice().reverse() : page.rows;
    const count = page.rows.length + page.unreadable.length;
    this.largestPage = Math.max(this.largestPage, count);
    const fits = roomLeft(page, this.o.limit, this.names);
    const cutShort = count >= this.o.limit || !fits || (this.capSeen !== undefined && count >= this.capSeen);
    return { ...a, served, count, fits, cutShort, matched: againstHeld(served, this.held) };
  }

  /** Whether this first page, of one millisecond T, starts a probe. */
  private startsProbe({ index, order, served, start, requestCursor, count }: Answer): boolean {
    const first = served[0]?.time;
    if (
      index === 0 &&
      !this.descending &&
      this.o.learned?.order !== 'asked' &&
      order === 'single' &&
      first !== undefined &&
      first > start + 1 &&
      requestCursor === undefined &&
      count >= this.largest
    ) {
      // a first page of one millisecond T tells no order: oldest first nothing lies before T, newest
      // first it is the window's newest rows. What lies before T is asked before either is believed
      this.check = { kind: 'probe', at: first, step: 1 };
      return true;
    }
    return false;
  }

  /** Moves the covered position past the answer's rows and keeps its boundary rows; whether it moved. */
  private advance({ served, start }: Answer, probing: boolean, walked: WalkedPage): boolean {
    const first = served[0]?.time;
    if (probing) {
      // nothing proven: the rows are passed on, the boundary held
      this.held = boundary(this.held, served, served[0]?.time ?? first ?? start, served[0]?.time ?? first ?? start);
      return false;
    }
    if (this.descending) {
      const oldest = served.length ? served[0].time : Infinity;
      const advanced = oldest < this.low;
      if (advanced) this.low = oldest;
      this.held = boundary(this.held, served, this.low, this.low + 1);
      return advanced;
    }
    const newest = served.length ? served[served.length - 1].time : -Infinity;
    const advanced = newest > this.position;
    if (advanced) this.position = newest;
    this.held = boundary(this.held, served, this.position - 1, this.position);
    walked.provenThrough = this.position;
    return advanced;
  }

  /** What the answer tells of the platform's page sizes, and the requests in a row that moved nothing; returns the largest page before it. */
  private learn(
    { index, count, fits, checking, matched }: Answer,
    advanced: boolean,
    probing: boolean,
    brought: boolean,
  ): number {
    // a page short of `limit` after which the platform still had rows (past it, or more of its last
    // millisecond): it caps pages at that size. Answers to checks end early by design: no size
    if ((advanced || matched.rows.length > 0) && index > 0 && this.previousShort) {
      this.capObserved = Math.max(this.capObserved ?? 0, this.previousCount);
      this.capSeen = Math.max(this.capSeen ?? 0, this.previousCount);
    }
    const largestBefore = this.largest;
    if (!checking) {
      this.previousCount = count;
      this.previousShort = count < this.o.limit && fits;
      this.largest = Math.max(this.largest, count);
    }
    if (!checking && !probing) this.stuck = brought ? 0 : this.stuck + 1;
    return largestBefore;
  }

  /** For a range answer: the end it proves, 'confirm' when it needs a check first, or undefined; throws when it proves nothing. */
  private endCheck(
    { page, start, checking, count, cutShort }: Answer,
    brought: boolean,
    largestBefore: number,
  ): WalkEnd | 'confirm' | undefined {
    const { from, to, limit } = this.o;
    const farEnd = this.descending ? this.low <= from - 1 : this.position >= to;
    const emptyTail = !brought;
    const wouldEnd = emptyTail && !cutShort && !farEnd && !this.descending;
    const confirm = checkTail(checking, wouldEnd, count, largestBefore, this.position);
    if (confirm === 'fail')
      throw this.fail(`a range answer from ${iso(start)} served rows at ${iso(this.position)} again`);
    if (confirm) {
      this.check = confirm;
      return 'confirm';
    }
    if (farEnd || (emptyTail && !cutShort)) return farEnd ? 'reached-end' : 'complete';
    if (!emptyTail) return undefined;
    const past = this.descending ? `older than ${iso(this.low)}` : `newer than ${iso(this.position)}`;
    const cap = `limit ${limit}${this.capSeen !== undefined ? `, pages capped at ${this.capSeen}` : ''}`;
    throw this.fail(unprovenTail(page, iso(start), cap, past));
  }

  private fail(reason: string): HistoryWalkError {
    return new HistoryWalkError(this.device.id, this.o.from, this.o.to, reason);
  }
}

function iso(t: number): string {
  return new Date(t).toISOString();
}
