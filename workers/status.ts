/**
 * The `status` queue's processor: polls `device_status` for the job's devices (all by default) and
 * writes it with `source` = `poll`. A spent token budget delays the job until the reset. A job that
 * failed for some devices is retried for those devices only (its data is narrowed before the retry).
 */
import { DelayedError, UnrecoverableError, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { Logger } from '../src/base/log.js';
import { QUEUE, type StatusJob } from '../src/base/jobs.js';
import type { PointWriter } from '../src/influx/api.js';
import type { PlatformClient } from '../src/platform/api.js';
import type { DeviceRegistry } from '../src/devices/registry.js';
import {
  StatusBudgetError,
  StatusPollError,
  StatusPoller,
  statusPollConcurrency,
  type StatusPollResult,
} from '../src/pull/status-poll.js';
import { messageOf } from '../src/base/failure.js';
import type { ReconnectWatch } from '../src/pull/reconnect.js';
import { isRetryable, retryAt } from '../src/base/retry.js';
import { withDefaults } from '../src/base/options.js';

export interface StatusWorkerOptions {
  connection: ConnectionOptions;
  prefix: string;
  /** the app's client: behind the shared request rate (EXPEED_RATE_LIMIT) */
  platform: Pick<PlatformClient, 'deviceStatus'>;
  writer: Pick<PointWriter, 'write'>;
  registry: Pick<DeviceRegistry, 'list' | 'markFailure' | 'clearFailure'>;
  logger: Logger;
  /** the clock of the token budget (default Date.now) */
  clock: () => number;
  /** the time written on polled status points (default Date.now) */
  now: () => number;
  /** devices one job polls at once (bounded further by the shared request rate); default statusPollConcurrency(20), the default rate */
  pollConcurrency: number;
  /** status answers go here: a reconnect queues its re-read */
  presence?: Pick<ReconnectWatch, 'observe'>;
  autorun: boolean;
}

export const DEFAULT_STATUS_WORKER: Pick<StatusWorkerOptions, 'clock' | 'now' | 'autorun' | 'pollConcurrency'> = {
  clock: Date.now,
  now: Date.now,
  autorun: true,
  pollConcurrency: statusPollConcurrency(20),
};

export function createStatusWorker(
  input: Omit<StatusWorkerOptions, keyof typeof DEFAULT_STATUS_WORKER> & Partial<StatusWorkerOptions>,
): Worker<StatusJob, StatusPollResult> {
  const o: StatusWorkerOptions = withDefaults(DEFAULT_STATUS_WORKER, input);
  const poller = new StatusPoller({
    platform: o.platform,
    writer: o.writer,
    registry: o.registry,
    now: o.now,
    concurrency: o.pollConcurrency,
    presence: o.presence,
  });
  const log = o.logger.child({ queue: QUEUE.status });

  async function process(job: Job<StatusJob, StatusPollResult>, token?: string): Promise<StatusPollResult> {
    try {
      const result = await poller.poll(job.data);
      for (const r of result.refused)
        log.warn(
          { deviceId: r.deviceId, reason: r.reason },
          'status poll: the platform refused the device; marked in the registry',
        );
      if (result.skipped)
        log.warn(
          {
            skipped: result.skipped.devices,
            until: new Date(result.skipped.until).toISOString(),
            reason: result.skipped.reason,
          },
          'status poll skipped: token calls are paused',
        );
      return result;
    } catch (err) {
      // the retry (or the delayed run) polls only the devices still owed a poll, not the whole job
      if (err instanceof StatusPollError)
        await job.updateData({ ...job.data, deviceIds: err.failures.map((f) => f.deviceId) });
      if (err instanceof StatusBudgetError) await job.updateData({ ...job.data, deviceIds: err.remaining });
      // a spent budget (StatusBudgetError) says when it resets: the job waits until then
      const at = retryAt(err);
      if (at !== undefined && token) {
        await job.moveToDelayed(Date.now() + Math.max(0, at - o.clock()), token);
        throw new DelayedError();
      }
      if (!isRetryable(err)) throw new UnrecoverableError(`status poll: ${messageOf(err)}`);
      throw err;
    }
  }

  const worker = new Worker<StatusJob, StatusPollResult>(QUEUE.status, process, {
    connection: o.connection,
    prefix: o.prefix,
    concurrency: 1,
    autorun: o.autorun,
  });
  worker.on('error', (err) => log.error({ err: messageOf(err) }, 'status worker error; it keeps running'));
  return worker;
}
