/**
 * The `ingest` queue's processor: pushes stored by the webhook become points, registry entries
 * and setting states. Thin on purpose — the logic is in src/push/ingest.ts. Many jobs run at
 * once (each a ~10-row push) and hand their points to one PointBatcher, so InfluxDB gets few
 * large writes; a job completes only after its own points were acknowledged.
 */
import { UnrecoverableError, Worker, type Job, type Processor, type WorkerOptions } from 'bullmq';
import type { DeadLetterStore, PointWriter } from '../src/influx/api.js';
import type { Logger } from '../src/base/log.js';
import { isRetryable } from '../src/base/retry.js';
import { type RedisConnection } from '../src/base/redis.js';
import { QUEUE, type IngestBatchJob, type IngestJob } from '../src/base/jobs.js';
import {
  INGEST_BACKOFF_TYPE,
  ingestBackoff,
  Ingestor,
  type IngestResult,
  type IngestorOptions,
} from '../src/push/ingest.js';
import { PointBatcher, type PointBatcherOptions } from '../src/push/point-batcher.js';
import type { PendingSettingsStore } from '../src/devices/pending-settings.js';
import { StatusPushLog } from '../src/pull/status-slot.js';
import { LogLimiter } from '../src/base/log-limiter.js';
import { withDefaults } from '../src/base/options.js';

export interface IngestWorkerOptions {
  /** a blocking-capable connection (`maxRetriesPerRequest: null`); BullMQ duplicates it for blocking reads */
  connection: RedisConnection;
  prefix: string;
  /** the one write path; wrapped in a PointBatcher here */
  writer: Pick<PointWriter, 'write'>;
  deadLetters: Pick<DeadLetterStore, 'add'>;
  settings: PendingSettingsStore;
  registry?: IngestorOptions['registry'];
  /** status pushes go here: a reconnect queues its re-read */
  presence?: IngestorOptions['presence'];
  parseTime: (raw: string | number) => number;
  pushOnlineCode: number;
  logger: Logger;
  /** jobs processed at once (default 256): more jobs per batching window means fewer, larger writes */
  concurrency: number;
  batcher: Partial<PointBatcherOptions>;
  now: () => number;
}

export const DEFAULT_INGEST_WORKER_OPTIONS = { concurrency: 256, batcher: {}, now: Date.now };

type Required = Omit<IngestWorkerOptions, keyof typeof DEFAULT_INGEST_WORKER_OPTIONS>;

/** A validated push back in the form the platform sent it (unreadable rows back among the rows). */
function asSent(push: IngestJob): Record<string, unknown> {
  if (push.msgType !== 2 || !push.body.unreadable?.length) return { msg_type: push.msgType, ...push.body };
  const { unreadable, ...body } = push.body;
  return { msg_type: push.msgType, ...body, data: [...body.data, ...unreadable.map((u) => u.raw)] };
}

/**
 * The ingest worker: a BullMQ Worker whose close() also writes what its batcher holds, then runs
 * `afterClose` (the app closes the worker's own Redis connection there). Closing twice is one close.
 */
export class IngestWorker extends Worker<IngestBatchJob, IngestResult> {
  private shutdown?: Promise<void>;
  private afterClose: () => Promise<void> = async () => undefined;

  constructor(
    processor: Processor<IngestBatchJob, IngestResult>,
    opts: WorkerOptions,
    private readonly batcher: Pick<PointBatcher, 'close'>,
  ) {
    super(QUEUE.ingest, processor, opts);
  }

  /** Runs `fn` once the worker and its batcher are closed. */
  onClosed(fn: () => Promise<void>): this {
    this.afterClose = fn;
    return this;
  }

  /** Stops taking jobs, lets running ones finish (force: at once), writes what is batched. */
  override close(force = false): Promise<void> {
    this.shutdown ??= (async () => {
      await super.close(force);
      await this.batcher.close();
      await this.afterClose();
    })();
    return this.shutdown;
  }
}

export function createIngestWorker(options: Required & Partial<IngestWorkerOptions>): IngestWorker {
  const o = withDefaults(DEFAULT_INGEST_WORKER_OPTIONS, options);
  const batcher = new PointBatcher(o.writer, o.batcher);
  const ingestor = new Ingestor({
    writer: batcher,
    registry: o.registry,
    settings: o.settings,
    deadLetters: o.deadLetters,
    parseTime: o.parseTime,
    pushOnlineCode: o.pushOnlineCode,
    logger: o.logger,
    now: o.now,
    statusPushes: new StatusPushLog(o.connection, o.prefix),
    presence: o.presence,
  });

  const one = async (push: IngestJob): Promise<IngestResult> => {
    try {
      return await ingestor.ingest(push);
    } catch (err) {
      // an error that does not say (Redis, network) is treated as passing
      if (isRetryable(err)) throw err;
      // it can never succeed as it is: keep the push where an operator can see and retry it
      await o.deadLetters.add({
        kind: 'push',
        source: 'webhook',
        reason: `ingest failed: ${(err as Error).message}`,
        // the body as the platform would send it, so that a retry of the letter re-reads it like a push
        raw: JSON.stringify(asSent(push)),
        deviceId: push.body.device_id,
      });
      return { points: 0, registered: false };
    }
  };

  // The pushes of a job go to the batcher together; a retryable failure of any fails the job,
  // and its retry repeats them all — harmless, every write and state change is idempotent.
  const processor = async (job: Job<IngestBatchJob, IngestResult>): Promise<IngestResult> => {
    const pushes = Array.isArray(job.data?.pushes) ? job.data.pushes : [];
    if (pushes.length === 0) throw new UnrecoverableError('ingest job without pushes');
    const results = await Promise.all(pushes.map(one));
    return { points: results.reduce((n, r) => n + r.points, 0), registered: results.some((r) => r.registered) };
  };

  const worker = new IngestWorker(
    processor,
    {
      connection: o.connection,
      prefix: o.prefix,
      concurrency: o.concurrency,
      settings: {
        backoffStrategy: (attemptsMade, type) => (type === INGEST_BACKOFF_TYPE ? ingestBackoff(attemptsMade) : 1000),
      },
    },
    batcher,
  );
  // Redis or InfluxDB refusing fails every job alike: one line per 10 s per kind, with the count not logged
  const faults = new LogLimiter({ now: o.now });
  worker.on('error', (err) => faults.log(o.logger, 'warn', 'ingest-redis', { err }, 'ingest worker: Redis error'));
  worker.on('failed', (job, err) => {
    if (job && job.attemptsMade <= 1)
      faults.log(
        o.logger,
        'warn',
        'ingest-job-failed',
        { err, jobId: job.id, pushes: job.data.pushes?.length },
        'ingest job failed; it is retried with backoff',
      );
  });
  return worker;
}
