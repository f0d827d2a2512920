import { randomBytes } from 'node:crypto';
import type { JobsOptions, Queue } from 'bullmq';
import type { BackfillJob } from '../base/queues.js';
import type { Checkpoints } from './checkpoints.js';
import { splitWindows, windowKey, type Window } from './windows.js';

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
  queue: Pick<Queue<BackfillJob>, 'add'>;
  checkpoints: Pick<Checkpoints, 'initialise'>;
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
    this.jobOptions = { ...DEFAULT_BACKFILL_JOB_OPTIONS, ...options.jobOptions };
    this.now = options.now ?? Date.now;
  }

  async enqueue(request: BackfillJob): Promise<QueuedWindow[]> {
    const { deviceId, to } = request;
    const retention = this.options.rawRetentionMs;
    const from = retention === undefined ? request.from : Math.max(request.from, this.now() - retention + this.options.windowMs);
    if (typeof deviceId !== 'string' || deviceId === '') throw new Error('backfill: device id must be a non-empty string');
    if (!(from < to)) return [];
    // the first backfill of a device defines where its checkpoint starts
    await this.options.checkpoints.initialise(deviceId, from);
    const windows = splitWindows(from, to, this.options.windowMs, this.options.gridOffset);
    const stamp = `${this.now()}-${randomBytes(3).toString('hex')}`;
    const out: QueuedWindow[] = [];
    for (let i = 0; i < windows.length; i += 100) {
      const chunk = windows.slice(i, i + 100);
      out.push(
        ...(await Promise.all(
          chunk.map(async (w) => {
            const key = windowKey(deviceId, w);
            const wanted = `${key}|${stamp}`;
            const data: BackfillJob = { deviceId, from: w.from, to: w.to, reason: request.reason, ...(request.useReserve ? { useReserve: true } : {}) };
            const job = await this.options.queue.add(deviceId, data, { ...this.jobOptions, jobId: wanted, deduplication: { id: key } });
            const jobId = job.id ?? wanted;
            return { deviceId, ...w, jobId, deduplicated: jobId !== wanted };
          }),
        )),
      );
    }
    return out;
  }
}
