/**
 * The backfill jobs that wait for a credentials cool-down: the platform refused
 * EXPEED_PLATFORM_KEY / EXPEED_SECRET_KEY, so no job can make a request until the pause ends or
 * the credentials are fixed. Each such job is delayed to the end of the pause (no attempt spent)
 * and recorded here, so that `status` says how many wait, and a process started with fixed
 * credentials (or `token --clear-cooldown`) lets them go at once instead of at the pause's end.
 *
 *   <prefix>:token:waiting   sorted set: backfill job id -> the instant it waits for (epoch ms)
 */
import type { Queue } from 'bullmq';
import { redisKey, type RedisConnection } from '../base/redis.js';
import { type BackfillJob } from '../base/jobs.js';

export class CooldownWaits {
  private readonly key: string;

  constructor(
    private readonly redis: RedisConnection,
    prefix: string,
  ) {
    this.key = redisKey(prefix, 'token', 'waiting');
  }

  /** Job `jobId` waits for the cool-down that ends at `until`. */
  async add(jobId: string, until: number): Promise<void> {
    await this.redis.zadd(this.key, until, jobId);
  }

  /** Job `jobId` runs again (its wait ended, or it was let go): it no longer waits. */
  async done(jobId: string): Promise<void> {
    await this.redis.zrem(this.key, jobId);
  }

  /** How many jobs wait, and for how long the last of them (epoch ms). */
  async waiting(): Promise<{ jobs: number; until?: number }> {
    const jobs = await this.redis.zcard(this.key);
    if (jobs === 0) return { jobs };
    const last = await this.redis.zrange(this.key, -1, -1, 'WITHSCORES');
    return { jobs, until: last[1] === undefined ? undefined : Number(last[1]) };
  }

  /**
   * Starts every waiting job now (the credentials changed or the pause was lifted): the jobs still
   * delayed are promoted; the record is emptied. Returns how many jobs were promoted.
   */
  async release(queue: Pick<Queue<BackfillJob>, 'getJob'>): Promise<number> {
    const ids = await this.redis.zrange(this.key, 0, -1);
    let promoted = 0;
    for (const id of ids) {
      const job = await queue.getJob(id);
      if (job && (await job.isDelayed())) {
        // the job may have started meanwhile (its delay ended): then there is nothing to promote
        await job.promote().then(
          () => promoted++,
          () => undefined,
        );
      }
      await this.done(id);
    }
    return promoted;
  }
}
