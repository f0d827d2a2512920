import { randomBytes } from 'node:crypto';
import type { JobsOptions, Queue } from 'bullmq';
import type { BackfillJob } from '../base/jobs.js';
import type { Checkpoints } from './checkpoints.js';
import { splitWindows, windowKey, type Window } from './windows.js';
import { withDefaults } from '../base/options.js';

/**
 * BullMQ priority of lookback and verify windows: a prioritised job starts only when no job without
 * one waits, so they use the request rate that nightly, catch-up, gap and manual windows leave over
 */
export const RECHECK_PRIORITY = 10;

/** jobs added in one `addBulk` (one pipeline round trip) */
export const ADD_BULK_CHUNK = 1000;

/** The backoff type that workers/backfill.ts registers: exponential from `delay`, capped. */
export const BACKOFF_TYPE = 'expeed-capped';

/**
 * Job options of every backfill job. Retryable failures (platform 5xx, network, InfluxDB down)
 * retry with capped exponential backoff for hours before a job fails; finished jobs are kept a
 * while so that `backfill --wait` and the dashboard can read their outcome.
 */
export const DEFAULT_BACKFILL_JOB_OPTIONS: JobsOptions = {
  attempts: 40,
  backoff: { type: BACKOFF_TYPE, delay: 1000 },
  removeOnComplete: { age: 7 * 86_400, count: 50_000 },
  removeOnFail: { age: 30 * 86_400 },
};

export interface BackfillQueueOptions {
  queue: Pick<Queue<BackfillJob>, 'addBulk'>;
  checkpoints: Pick<Checkpoints, 'initialiseMany'>;
  /** window length in ms (EXPEED_BACKFILL_WINDOW, default one day) */
  windowMs: number;
  /** the zone's UTC offset at an instant (zoneOffsetMs): windows then follow local midnights; default UTC */
  gridOffset?: (t: number) => number;
  jobOptions?: JobsOptions;
  now?: () => number;
  /**
   * EXPEED_RAW_RETENTION, ms: InfluxDB 1.x refuses rows older than it (they would all become dead
   * letters), so a backfill starts no earlier than one window after the cut-off
   */
  rawRetentionMs?: number;
}

export interface QueuedWindow extends Window {
  deviceId: string;
  jobId: string;
  /** the window was already queued or running: this is that job */
  deduplicated: boolean;
}

/**
 * Queues backfills: a job per device window. A window that is waiting, delayed or active already
 * is not queued again (BullMQ deduplication on the window key, which lasts until that job ends).
 */
export class BackfillQueue {
  private readonly jobOptions: JobsOptions;
  private readonly now: () => number;

  constructor(private readonly options: BackfillQueueOptions) {
    this.jobOptions = withDefaults(DEFAULT_BACKFILL_JOB_OPTIONS, options.jobOptions);
    this.now = options.now ?? Date.now;
  }

  /** Queues one request's windows (see enqueueMany). */
  async enqueue(request: BackfillJob): Promise<QueuedWindow[]> {
    return this.enqueueMany([request]);
  }

  /**
   * Queues the windows of many requests at once: the checkpoints of devices without one are started
   * in pipelines, the jobs are added with `addBulk` (ADD_BULK_CHUNK a round trip). Each window's job
   * is the same as one `enqueue` makes: a window already waiting, delayed or active is not queued
   * again (deduplicated on its window key); the answer says which. Requests with an empty range (after
   * the raw retention) queue nothing; a request without a device id fails the whole call before
   * anything is queued.
   */
  async enqueueMany(requests: readonly BackfillJob[]): Promise<QueuedWindow[]> {
    const retention = this.options.rawRetentionMs;
    const earliest = retention === undefined ? -Infinity : this.now() - retention + this.options.windowMs;
    for (const r of requests)
      if (typeof r.deviceId !== 'string' || r.deviceId === '')
        throw new Error('backfill: device id must be a non-empty string');
    const wanted = requests.map((r) => ({ ...r, from: Math.max(r.from, earliest) })).filter((r) => r.from < r.to);
    if (!wanted.length) return [];
    // the first backfill of a device defines where its checkpoint starts
    await this.options.checkpoints.initialiseMany(wanted.map((r) => ({ deviceId: r.deviceId, from: r.from })));
    const stamp = `${this.now()}-${randomBytes(3).toString('hex')}`;
    const jobs: Array<{ name: string; data: BackfillJob; opts: JobsOptions }> = [];
    const out: QueuedWindow[] = [];
    for (const r of wanted) {
      for (const w of splitWindows(r.from, r.to, this.options.windowMs, this.options.gridOffset)) {
        // a re-check of a window is not the same job as its backfill: its own deduplication id
        const recheck = r.reason === 'lookback' || r.reason === 'verify';
        const key = recheck ? `${r.reason}|${windowKey(r.deviceId, w)}` : windowKey(r.deviceId, w);
        const data: BackfillJob = {
          deviceId: r.deviceId,
          from: w.from,
          to: w.to,
          reason: r.reason,
          ...(r.useReserve ? { useReserve: true } : {}),
        };
        jobs.push({
          name: r.deviceId,
          data,
          opts: {
            ...this.jobOptions,
            ...(recheck ? { priority: RECHECK_PRIORITY } : {}),
            jobId: `${key}|${stamp}`,
            deduplication: { id: key },
          },
        });
        out.push({ deviceId: r.deviceId, ...w, jobId: `${key}|${stamp}`, deduplicated: false });
      }
    }
    for (let i = 0; i < jobs.length; i += ADD_BULK_CHUNK) {
      const added = await this.options.queue.addBulk(jobs.slice(i, i + ADD_BULK_CHUNK));
      added.forEach((job, j) => {
        const q = out[i + j]!;
        // a deduplicated add answers the id of the job already queued for the window
        if (job.id !== undefined && job.id !== q.jobId) Object.assign(q, { jobId: job.id, deduplicated: true });
      });
    }
    return out;
  }
}
