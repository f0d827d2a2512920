/**
 * The one definition of a `status` job: its name and options (id per slot and chunk, so a slot
 * claimed twice queues nothing new; three attempts with backoff; kept for a day, failures a week).
 */
import type { JobsOptions } from 'bullmq';
import type { StatusJob } from '../base/jobs.js';

export const STATUS_JOB_NAME = 'poll';

export function statusJobOptions(slot: number, chunk: number): JobsOptions {
  return {
    jobId: `status|${slot}|${chunk}`,
    removeOnComplete: { age: 86_400, count: 1000 },
    removeOnFail: { age: 7 * 86_400 },
    attempts: 3,
    backoff: { type: 'exponential', delay: 5000 },
  };
}

/** The jobs of one status slot: one per chunk of device ids. */
export function statusJobs(
  slot: number,
  chunks: string[][],
): Array<{ name: string; data: StatusJob; opts: JobsOptions }> {
  return chunks.map((deviceIds, i) => ({
    name: STATUS_JOB_NAME,
    data: { deviceIds },
    opts: statusJobOptions(slot, i),
  }));
}
