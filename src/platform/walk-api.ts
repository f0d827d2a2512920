/**
 * What a history walk (history-walker.ts) is given and what it hands back: its options and their
 * defaults, what it learns of the platform, the pages it yields, why it ends, and the error it
 * throws when it cannot go on.
 */
import type { CallOptions, DataRow, HistoryPage } from './api.js';
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
