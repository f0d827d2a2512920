import { Queue } from 'bullmq';
import type { Logger } from '../base/log.js';
import { LogLimiter } from '../base/log-limiter.js';
import { type RedisConnection } from '../base/redis.js';
import { QUEUE, type IngestBatchJob } from '../base/jobs.js';

/**
 * The producer side of the `ingest` queue for the webhook. Its Redis connection fails fast
 * (no offline queue, one retry) so that a push arriving while Redis is down is answered 503 at
 * once instead of hanging until the platform times out.
 */
export type OpenIngestQueue = { queue: Queue<IngestBatchJob>; connection: RedisConnection; close(): Promise<void> };

/** Options of the connection the `ingest` queue is opened on (see `ingestQueueOn`). */
export const INGEST_QUEUE_REDIS = { maxRetriesPerRequest: 1, enableOfflineQueue: false } as const;

/** The `ingest` queue over a connection opened with INGEST_QUEUE_REDIS; `close()` closes both. */
export async function ingestQueueOn(
  connection: RedisConnection,
  prefix: string,
  logger?: Pick<Logger, 'warn'>,
): Promise<OpenIngestQueue> {
  const queue = new Queue<IngestBatchJob>(QUEUE.ingest, { connection, prefix });
  // an unheard 'error' event would crash the process; Redis being down is reported per push (503)
  const limiter = new LogLimiter();
  const report = (err: Error) => {
    if (logger)
      limiter.log(
        logger as Pick<Logger, 'warn' | 'error'>,
        'warn',
        'webhook-redis',
        { err },
        'webhook Redis connection error',
      );
  };
  queue.on('error', report);
  connection.on('error', report);
  await queue.waitUntilReady();
  return {
    queue,
    connection,
    async close() {
      await queue.close();
      await connection.quit().catch(() => connection.disconnect());
    },
  };
}
