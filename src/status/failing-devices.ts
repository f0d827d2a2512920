/**
 * Which devices are failing, as `expeed-sync status` and the `expeed_device_failing` gauge both
 * judge it: the platform refused the device (the registry's failure mark, set by the status poll
 * or by a walk that set rows aside) or failed backfill jobs of it are kept in the queue.
 */
import type { Queue } from 'bullmq';

/** How many failed jobs are read from the queue: the newest ones, as many as BullMQ keeps by default. */
export const FAILED_JOBS_READ = 1000;

/** Failed jobs kept in `queue` per device id (the newest FAILED_JOBS_READ of them). */
export async function failedJobsPerDevice(queue: Pick<Queue, 'getFailed'> | undefined): Promise<Map<string, number>> {
  const perDevice = new Map<string, number>();
  for (const job of (await queue?.getFailed(0, FAILED_JOBS_READ - 1)) ?? []) {
    const id = (job?.data as { deviceId?: string } | undefined)?.deviceId;
    if (id !== undefined) perDevice.set(id, (perDevice.get(id) ?? 0) + 1);
  }
  return perDevice;
}

/** Whether a device with this registry entry and this many failed backfill jobs is failing. */
export const isFailing = (device: { failure?: unknown }, failedJobs: number): boolean =>
  Boolean(device.failure) || failedJobs > 0;
