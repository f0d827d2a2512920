/**
 * What one status slot polls, for fleets larger than one job can poll in time: devices whose status
 * came by push within the interval are left out, the rest are cut into chunk jobs, and when the
 * request rate cannot reach them all within one interval a round-robin cursor (in Redis) picks the
 * next `capacity` devices, so each is polled at least every ceil(N / capacity) slots.
 */
import cron from 'node-cron';
import type { Redis } from 'ioredis';
import { redisKey } from '../base/redis.js';

export const DEFAULT_STATUS_SLOT = {
  /** devices per status job */
  chunkSize: 100,
};

// pushes are ingested concurrently: an older arrival must not overwrite a newer one
const RECORD_NEWER = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur or tonumber(cur) < tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
`;

/** `<prefix>:status:pushed`: device id -> epoch ms of its newest msg_type 1 push (one hash, one HGETALL a slot). */
export class StatusPushLog {
  constructor(
    private readonly redis: Pick<Redis, 'eval' | 'hgetall' | 'hdel'>,
    private readonly prefix: string,
  ) {}

  private get key(): string {
    return redisKey(this.prefix, 'status', 'pushed');
  }

  async record(deviceId: string, at: number): Promise<void> {
    await this.redis.eval(RECORD_NEWER, 1, this.key, deviceId, String(at));
  }

  /** drops ids no longer (or never) registered, so pushes with invented ids do not grow the hash */
  async prune(keep: Set<string>, seen: Iterable<string>): Promise<void> {
    const gone = [...seen].filter((id) => !keep.has(id));
    if (gone.length) await this.redis.hdel(this.key, ...gone);
  }

  async all(): Promise<Map<string, number>> {
    const raw = await this.redis.hgetall(this.key);
    return new Map(
      Object.entries(raw)
        .map(([id, at]) => [id, Number(at)] as const)
        .filter(([, at]) => Number.isFinite(at)),
    );
  }
}

/** The shortest gap between the next runs of a cron expression (its polling interval), in ms. */
export function cronIntervalMs(expression: string, timezone: string): number {
  const task = cron.createTask(expression, () => undefined, { timezone });
  try {
    const runs = task.getNextRuns(6).map((d) => d.getTime());
    let min = Infinity;
    for (let i = 1; i < runs.length; i++) min = Math.min(min, runs[i]! - runs[i - 1]!);
    if (!Number.isFinite(min) || min <= 0)
      throw new RangeError(`cron expression "${expression}" has no repeating interval`);
    return min;
  } finally {
    void task.destroy();
  }
}

export interface StatusCapacity {
  devices: number;
  intervalMs: number;
  ratePerSecond: number;
  /** device_status calls the rate allows within one interval */
  perInterval: number;
  /** slots it takes to poll every device once: 1 when the fleet fits */
  slotsPerRound: number;
}

export function statusCapacity(devices: number, ratePerSecond: number, intervalMs: number): StatusCapacity {
  const perInterval = Math.max(1, Math.floor((ratePerSecond * intervalMs) / 1000));
  return {
    devices,
    intervalMs,
    ratePerSecond,
    perInterval,
    slotsPerRound: Math.max(1, Math.ceil(devices / perInterval)),
  };
}

export interface StatusPlan {
  /** chunks of device ids, one job each */
  chunks: string[][];
  /** left out: a push brought their status within the interval */
  pushed: number;
  /** left for later slots by the round-robin */
  deferred: number;
}

/**
 * Pure planning step. `cursor` is the last device id the previous round-robin slot polled;
 * the returned `cursor` is where the next slot goes on (undefined: the whole fleet fits).
 */
export function planStatusSlot(input: {
  deviceIds: string[];
  pushedAt: Map<string, number>;
  slot: number;
  intervalMs: number;
  perInterval: number;
  chunkSize: number;
  cursor?: string;
}): StatusPlan & { cursor?: string } {
  const since = input.slot - input.intervalMs;
  const due = input.deviceIds.filter((id) => (input.pushedAt.get(id) ?? -Infinity) < since).sort();
  const pushed = input.deviceIds.length - due.length;
  let picked = due;
  let cursor: string | undefined;
  if (due.length > input.perInterval) {
    const start = input.cursor === undefined ? 0 : due.findIndex((id) => id > input.cursor!);
    const from = start < 0 ? 0 : start;
    picked = Array.from({ length: input.perInterval }, (_, i) => due[(from + i) % due.length]!);
    cursor = picked[picked.length - 1];
  }
  const chunks: string[][] = [];
  for (let i = 0; i < picked.length; i += input.chunkSize) chunks.push(picked.slice(i, i + input.chunkSize));
  return { chunks, pushed, deferred: due.length - picked.length, cursor };
}
