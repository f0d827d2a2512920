/**
 * Headroom for the consumers of a Redis with `maxmemory` and `noeviction`: the webhook refuses new
 * pushes (503, "send again") once Redis's used memory passes a share of `maxmemory`
 * (WEBHOOK_REDIS_MEMORY_PERCENT) or the ingest backlog passes a bound (WEBHOOK_MAX_BACKLOG), so
 * that the workers can still take and finish jobs (every BullMQ script is refused with "OOM
 * command not allowed" once Redis is full) and memory is freed. Pushes are taken again as soon as
 * a sample is back under both bounds. INFO memory and the backlog are sampled (at most once per
 * `sampleEveryMs`, in the background), never read per push.
 */
import { Cluster, type Redis } from 'ioredis';
import type { RedisConnection } from '../base/redis.js';
import type { Degraded, ReadinessCheck } from '../ops/ops-routes.js';

export interface HeadroomOptions {
  /** refuse once used_memory passes this percentage of maxmemory (default 80; 100 = off; no maxmemory = off) */
  memoryPercent: number;
  /** refuse once this many ingest jobs wait (default 0 = off) */
  maxBacklog: number;
  /** a new sample is taken when the last is older than this, ms (default 250) */
  sampleEveryMs: number;
  now: () => number;
}

export const DEFAULT_HEADROOM_OPTIONS: HeadroomOptions = {
  memoryPercent: 80,
  maxBacklog: 0,
  sampleEveryMs: 250,
  now: Date.now,
};

export interface HeadroomSample {
  usedBytes: number;
  /** 0 when Redis has no maxmemory */
  maxBytes: number;
  backlog: number;
  /** why pushes are refused, undefined when there is room */
  refusal?: string;
}

const field = (info: string, name: string): number => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1] ?? 0);
const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;

/** used_memory and maxmemory of the fullest master (one node; every master of a cluster). */
async function memoryOf(redis: RedisConnection): Promise<{ usedBytes: number; maxBytes: number }> {
  const nodes: Redis[] = redis instanceof Cluster ? redis.nodes('master') : [redis as Redis];
  const all = await Promise.all(nodes.map(async (n) => n.info('memory')));
  let best = { usedBytes: 0, maxBytes: 0 };
  for (const info of all) {
    const m = { usedBytes: field(info, 'used_memory'), maxBytes: field(info, 'maxmemory') };
    const share = (x: typeof m) => (x.maxBytes ? x.usedBytes / x.maxBytes : 0);
    if (share(m) >= share(best)) best = m;
  }
  return best;
}

export class RedisHeadroom {
  private readonly options: HeadroomOptions;
  private last: HeadroomSample | undefined;
  private sampledAt = -Infinity;
  private sampling: Promise<HeadroomSample> | undefined;

  constructor(
    private readonly redis: RedisConnection,
    /** ingest jobs waiting to be processed (the queue's `count()`) */
    private readonly backlog: () => Promise<number>,
    options: Partial<HeadroomOptions> = {},
  ) {
    this.options = {
      ...DEFAULT_HEADROOM_OPTIONS,
      ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
    };
  }

  /** Reads INFO memory and the backlog now (one sample at a time; concurrent callers share it). */
  sample(): Promise<HeadroomSample> {
    this.sampling ??= (async () => {
      try {
        const { memoryPercent, maxBacklog } = this.options;
        const [memory, backlog] = await Promise.all([
          memoryOf(this.redis),
          maxBacklog > 0 ? this.backlog() : Promise.resolve(0),
        ]);
        const limit = (memory.maxBytes * memoryPercent) / 100;
        let refusal: string | undefined;
        if (memory.maxBytes > 0 && memoryPercent < 100 && memory.usedBytes >= limit) {
          refusal = `Redis near full: ${mb(memory.usedBytes)} used of maxmemory ${mb(memory.maxBytes)} (pushes refused above ${memoryPercent} %, WEBHOOK_REDIS_MEMORY_PERCENT)`;
        } else if (maxBacklog > 0 && backlog >= maxBacklog) {
          refusal = `Redis near full: ${backlog} ingest jobs waiting (pushes refused from ${maxBacklog}, WEBHOOK_MAX_BACKLOG)`;
        }
        this.last = { ...memory, backlog, refusal };
        this.sampledAt = this.options.now();
        return this.last;
      } finally {
        this.sampling = undefined;
      }
    })();
    return this.sampling;
  }

  /**
   * Why a push must be refused now, from the last sample (undefined: there is room). Starts a new
   * sample in the background when the last is stale; a failed sample keeps the previous verdict
   * (Redis down is answered by the enqueue itself).
   */
  refusal(): string | undefined {
    if (this.options.now() - this.sampledAt >= this.options.sampleEveryMs && !this.sampling)
      this.sample().catch(() => undefined);
    return this.last?.refusal;
  }
}

/** /readyz: "degraded: Redis near full ..." while pushes are refused for headroom. */
export function headroomCheck(headroom: RedisHeadroom): ReadinessCheck {
  return {
    name: 'redis-headroom',
    check: async (): Promise<boolean | Degraded> => {
      const s = await headroom.sample();
      return s.refusal ? { degraded: s.refusal } : true;
    },
  };
}
