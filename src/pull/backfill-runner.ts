import type { BackfillJob } from '../base/jobs.js';
import type { CallOptions, DataRow, DeviceRef, HistoryPage } from '../platform/api.js';
import type { DeadLetterStore, PointWriter, SinkPoint } from '../influx/api.js';
import { MEASUREMENT } from '../influx/api.js';
import type { DeviceRegistry } from '../devices/registry.js';
import type { Checkpoints } from './checkpoints.js';
import { UnknownDeviceError } from '../base/failure.js';
import { windowKey } from './windows.js';
import { PLATFORM_DEFAULTS } from '../base/config.js';

/** A page of the walk: its rows, the `carried` rows written before them, how far it proves the window. */
export type WalkPage = HistoryPage & { carried?: DataRow[]; provenThrough?: number };

/**
 * Pages of a device's history in [from, to), oldest first (rows outside may come too: they are
 * filtered here). The iteration ends normally ONLY when the window is known complete; a walk that
 * cannot complete throws (src/platform/history-walker.ts). A page's `provenThrough` is how far the
 * window is proven once it is written (none: nothing is proven before the walk ends, as when the
 * platform serves newest first); only that moves the checkpoint. `carried` rows, written before the
 * page's rows, are earlier rows a new row of the same millisecond disagrees with. `resumeAt`: the
 * window's saved position (rows up to it were written).
 */
export type HistoryWalk = (
  device: DeviceRef,
  range: { from: number; to: number; limit: number; resumeAt?: number },
  options?: CallOptions,
) => AsyncIterable<WalkPage>;

/** What a backfill job reports while it walks (BullMQ progress) and returns when done. */
export interface BackfillProgress {
  deviceId: string;
  from: number;
  to: number;
  /** epoch ms reached inside the window */
  position: number;
  /** share of the window's time covered, 0..1 */
  fraction: number;
  pages: number;
  /** points acknowledged by InfluxDB in this run of the job */
  points: number;
  /** rows set aside as dead letters */
  unreadable: number;
  /** why they were set aside: reason -> rows (at most SET_ASIDE_REASONS reasons, the rest under "other reasons") */
  setAside?: Record<string, number>;
  /** where this run started (a resumed job starts past `from`) */
  resumedFrom: number;
}

export interface BackfillRunnerOptions {
  walk: HistoryWalk;
  writer: Pick<PointWriter, 'write'>;
  deadLetters: Pick<DeadLetterStore, 'add'>;
  registry: Pick<DeviceRegistry, 'get' | 'clearFailure' | 'markFailure'>;
  checkpoints: Checkpoints;
  /** history page size, 1–6000 (default 6000) */
  pageLimit: number;
}

export const DEFAULT_BACKFILL_RUNNER: Pick<BackfillRunnerOptions, 'pageLimit'> = {
  pageLimit: PLATFORM_DEFAULTS.historyPageMax,
};

/**
 * Walks one device window and writes it. Every page is acknowledged by InfluxDB before the
 * window's resume position and the device checkpoint move, so a crash at any point loses nothing
 * and a restart re-reads at most the page that was in flight.
 */
export class BackfillRunner {
  private readonly options: BackfillRunnerOptions;

  constructor(options: Omit<BackfillRunnerOptions, 'pageLimit'> & Partial<Pick<BackfillRunnerOptions, 'pageLimit'>>) {
    this.options = { ...DEFAULT_BACKFILL_RUNNER, ...options };
  }

  async run(
    job: BackfillJob,
    hooks: { onProgress?: (p: BackfillProgress) => Promise<void>; signal?: AbortSignal } = {},
  ): Promise<BackfillProgress> {
    const { walk, registry, checkpoints, pageLimit } = this.options;
    const device = await registry.get(job.deviceId);
    if (!device) throw new UnknownDeviceError(job.deviceId);
    const key = windowKey(job.deviceId, job);
    const saved = await checkpoints.position(key);
    const start = saved !== undefined && saved > job.from && saved < job.to ? saved : job.from;
    const span = Math.max(1, job.to - job.from);
    const progress: BackfillProgress = {
      deviceId: job.deviceId,
      from: job.from,
      to: job.to,
      position: start,
      fraction: (start - job.from) / span,
      pages: 0,
      points: 0,
      unreadable: 0,
      resumedFrom: start,
    };
    const run: WindowRun = { job, key, span, progress, signal: hooks.signal };
    await hooks.onProgress?.(progress);

    // the walk completes the window only by a rule that holds under every reading of the vendor
    // document, and throws when it cannot; a resumed walk re-reads from just before its position.
    // One page is fetched ahead while the previous one is written: the platform and InfluxDB work
    // at the same time, and the checkpoint still moves only after InfluxDB acknowledged a page
    const pages = walk(
      { id: device.id, key: device.key },
      { from: job.from, to: job.to, limit: pageLimit, resumeAt: start > job.from ? start : undefined },
      { useReserve: job.useReserve, signal: hooks.signal },
    )[Symbol.asyncIterator]();
    let ahead = pages.next();
    try {
      for (;;) {
        const next = await ahead;
        if (next.done) break;
        ahead = pages.next();
        // a failed fetch ahead is seen when it is awaited; until then it must not count as unhandled
        ahead.catch(() => undefined);
        await this.writePage(run, next.value);
        await hooks.onProgress?.(progress);
      }
    } finally {
      // stop the walk (and its fetch ahead) when the job ends early
      await pages.return?.(undefined)?.catch(() => undefined);
    }

    await this.finish(run, device);
    await hooks.onProgress?.(progress);
    return progress;
  }

  /** Writes one page (dead letters for its unreadable rows), then moves the window's position and the checkpoint as far as the page proves. */
  private async writePage(run: WindowRun, page: WalkPage): Promise<void> {
    const { writer, deadLetters, checkpoints } = this.options;
    const { job, progress } = run;
    // the platform's end may be inclusive; a row at `to` belongs to the next window.
    // One pass, no intermediate arrays: pages are large and the walk is allocation-bound.
    const points: SinkPoint[] = [];
    let newest: number | undefined;
    // an earlier row of a millisecond a new row disagrees with goes first: the writer's merge
    // then counts the conflict, and the later row wins as it does in InfluxDB
    if (page.carried)
      for (const r of page.carried)
        if (r.time >= job.from && r.time < job.to)
          points.push({ measurement: MEASUREMENT.data, deviceId: job.deviceId, time: r.time, fields: r.values });
    for (const r of page.rows) {
      if (r.time < job.from || r.time >= job.to) continue;
      points.push({ measurement: MEASUREMENT.data, deviceId: job.deviceId, time: r.time, fields: r.values });
      if (newest === undefined || r.time > newest) newest = r.time;
    }
    for (const bad of page.unreadable) {
      await deadLetters.add({ kind: 'row', source: 'pull', reason: bad.reason, deviceId: job.deviceId, raw: bad.raw });
      tally(progress, bad.reason);
    }
    if (points.length) await writer.write(points, { source: 'pull', signal: run.signal });
    progress.pages++;
    progress.points += points.length;
    progress.unreadable += page.unreadable.length;
    if (newest !== undefined) run.lastRowAt = Math.max(run.lastRowAt ?? newest, newest);
    const proven = page.provenThrough !== undefined && page.provenThrough < job.to ? page.provenThrough : undefined;
    if (proven !== undefined && proven > progress.position && run.lastRowAt !== undefined) {
      progress.position = proven;
      await checkpoints.setPosition(run.key, proven);
      // rows at `proven` itself are in, but a later row may share that millisecond: stay at it
      await checkpoints.advance(job.deviceId, job.from, proven, Math.min(run.lastRowAt, proven));
    }
    progress.fraction = (progress.position - job.from) / run.span;
  }

  /** The window is complete: the checkpoint and the device's failure say so, the position is cleared. */
  private async finish(run: WindowRun, device: { failure?: unknown }): Promise<void> {
    const { registry, checkpoints } = this.options;
    const { job, progress } = run;
    await checkpoints.complete(job.deviceId, job.from, job.to, run.lastRowAt);
    await checkpoints.clearPosition(run.key);
    // rows set aside are not in InfluxDB: the device is not "ok" until they are dealt with
    if (progress.unreadable > 0)
      await registry.markFailure(job.deviceId, { code: SET_ASIDE_CODE, message: describeSetAside(progress) });
    else if (device.failure) await registry.clearFailure(job.deviceId);
    progress.position = job.to;
    progress.fraction = 1;
  }
}

/** One run of a window: its job and resume key, and what it has written so far. */
interface WindowRun {
  job: BackfillJob;
  key: string;
  span: number;
  progress: BackfillProgress;
  signal?: AbortSignal;
  /** the newest row written in this run */
  lastRowAt?: number;
}

/** The failure code a device is marked with when a walk set rows aside (not a vendor code). */
export const SET_ASIDE_CODE = -2;
const SET_ASIDE_REASONS = 5;
const OTHER_REASONS = 'other reasons';

function tally(p: BackfillProgress, reason: string): void {
  const set = (p.setAside ??= {});
  const key = reason in set || Object.keys(set).length < SET_ASIDE_REASONS ? reason : OTHER_REASONS;
  set[key] = (set[key] ?? 0) + 1;
}

/** "12 row(s) set aside as dead letters: <reason> (10); <reason> (2)" */
export function describeSetAside(p: Pick<BackfillProgress, 'unreadable' | 'setAside'>): string {
  const reasons = Object.entries(p.setAside ?? {}).sort((a, b) => b[1] - a[1]);
  return `${p.unreadable} row(s) set aside as dead letters (expeed-sync dead-letters list): ${reasons.map(([r, n]) => `${r} (${n})`).join('; ')}`;
}
