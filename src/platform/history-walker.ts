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
import type { DeviceRef, PlatformClient } from './api.js';
import { NO_ROWS } from './boundary-rows.js';
import { HistoryWalk } from './history-walk.js';
import { DEFAULT_HISTORY_WALK_OPTIONS, type HistoryWalkOptions, type WalkedPage, type WalkEnd } from './walk-api.js';

export {
  DEFAULT_HISTORY_WALK_OPTIONS,
  HistoryWalkError,
  type HistoryWalkOptions,
  type PlatformBehaviour,
  type WalkedPage,
  type WalkEnd,
} from './walk-api.js';

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
  const walk = new HistoryWalk(device, o);
  for (let index = 0; ; index++) {
    const query = walk.request();
    const step = walk.read(await client.history(device, query, o.call), index, query.start);
    yield step.walked;
    if (step.done) return step.done;
  }
}

export { NO_ROWS };
