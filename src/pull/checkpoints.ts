import type { Redis } from 'ioredis';
import { redisKey } from '../base/redis.js';

/**
 * Per-device sync checkpoints in Redis, shared by every worker.
 *
 * `upTo` (in `<prefix>:checkpoint:<deviceId>`) means: every row the platform holds before this
 * instant has been acknowledged by InfluxDB. Windows of one device may run in parallel and finish
 * in any order, so a finished window that does not touch `upTo` waits in a sorted set
 * (`<prefix>:checkpoint:<deviceId>:done`) until the windows before it are done; `upTo` only ever
 * moves over contiguous covered time and can never run ahead of the data.
 *
 * Inside a window, the resume position (`<prefix>:backfill:pos:<windowKey>`) is the time of the
 * last row acknowledged; a job restarted after a crash continues there, re-reading at most one page.
 */
export interface Checkpoint {
  /** epoch ms: everything before it is in InfluxDB */
  upTo: number;
  /** epoch ms of the newest row acknowledged by any backfill of the device */
  lastRowAt?: number;
  /** epoch ms of the last change */
  updatedAt: number;
}

export interface CheckpointsOptions {
  redis: Pick<Redis, 'hgetall' | 'hsetnx' | 'get' | 'set' | 'del' | 'eval' | 'hset' | 'pipeline'>;
  prefix: string;
  now?: () => number;
  /** how long a window's resume position is kept when its job never finishes (ms, default 30 days) */
  positionTtlMs?: number;
}

/**
 * KEYS[1] checkpoint hash, KEYS[2] done set. ARGV: window from, covered end, finished (1/0), now, last row.
 * Moves upTo over [from, end) when that touches it, then over every finished window it now touches.
 */
const ADVANCE = `
local upTo = tonumber(redis.call('HGET', KEYS[1], 'upTo'))
local from, e, finished, now, lastRow = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5])
if lastRow then
  local old = tonumber(redis.call('HGET', KEYS[1], 'lastRowAt'))
  if not old or lastRow > old then redis.call('HSET', KEYS[1], 'lastRowAt', ARGV[5]) end
end
if finished == '1' then redis.call('ZADD', KEYS[2], from, from .. ':' .. e) end
if not upTo then return nil end
local moved = false
if from <= upTo and e > upTo then upTo = e; moved = true end
while true do
  local items = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', upTo)
  if #items == 0 then break end
  for _, item in ipairs(items) do
    local stop = tonumber(string.match(item, ':(-?%d+)$'))
    if stop > upTo then upTo = stop; moved = true end
    redis.call('ZREM', KEYS[2], item)
  end
end
if moved then redis.call('HSET', KEYS[1], 'upTo', tostring(upTo), 'updatedAt', now) end
return tostring(upTo)
`;

/** commands sent in one pipeline round trip */
const PIPELINE_CHUNK = 1000;

function parseCheckpoint(h: Record<string, string>): Checkpoint | undefined {
  if (h.upTo === undefined) return undefined;
  return {
    upTo: Number(h.upTo),
    lastRowAt: h.lastRowAt === undefined ? undefined : Number(h.lastRowAt),
    updatedAt: Number(h.updatedAt ?? 0),
  };
}

export class Checkpoints {
  private readonly now: () => number;
  private readonly positionTtlMs: number;

  constructor(private readonly options: CheckpointsOptions) {
    this.now = options.now ?? Date.now;
    this.positionTtlMs = options.positionTtlMs ?? 30 * 86_400_000;
  }

  private key(deviceId: string): string {
    return redisKey(this.options.prefix, 'checkpoint', deviceId);
  }

  async get(deviceId: string): Promise<Checkpoint | undefined> {
    return parseCheckpoint(await this.options.redis.hgetall(this.key(deviceId)));
  }

  /**
   * The checkpoints of many devices, pipelined (PIPELINE_CHUNK commands a round trip): a fleet's
   * checkpoints in a few round trips instead of one each. On a cluster every key carries the
   * prefix's hash tag, so a pipeline stays in one slot.
   */
  async getMany(deviceIds: readonly string[]): Promise<Map<string, Checkpoint>> {
    const out = new Map<string, Checkpoint>();
    const replies = await this.pipelined(deviceIds, (p, id) => p.hgetall(this.key(id)));
    deviceIds.forEach((id, i) => {
      const c = parseCheckpoint(replies[i] as Record<string, string>);
      if (c) out.set(id, c);
    });
    return out;
  }

  /** Starts a device's checkpoint at `from` unless it has one: the first backfill of a device defines where its copy begins. */
  async initialise(deviceId: string, from: number): Promise<void> {
    const created = await this.options.redis.hsetnx(this.key(deviceId), 'upTo', String(from));
    if (created === 1) await this.options.redis.hset(this.key(deviceId), 'updatedAt', String(this.now()));
  }

  /** `initialise` for many devices, pipelined; the first entry of a device wins, as in a row of `initialise` calls. */
  async initialiseMany(starts: ReadonlyArray<{ deviceId: string; from: number }>): Promise<void> {
    const created = await this.pipelined(starts, (p, s) => p.hsetnx(this.key(s.deviceId), 'upTo', String(s.from)));
    const fresh = starts.filter((_, i) => created[i] === 1);
    const now = String(this.now());
    await this.pipelined(fresh, (p, s) => p.hset(this.key(s.deviceId), 'updatedAt', now));
  }

  /** One command per item, PIPELINE_CHUNK a round trip; the replies in order; the first failed command throws. */
  private async pipelined<T>(
    items: readonly T[],
    add: (p: ReturnType<Redis['pipeline']>, item: T) => unknown,
  ): Promise<unknown[]> {
    const replies: unknown[] = [];
    for (let i = 0; i < items.length; i += PIPELINE_CHUNK) {
      const p = this.options.redis.pipeline();
      for (const item of items.slice(i, i + PIPELINE_CHUNK)) add(p, item);
      const res = await p.exec();
      if (!res) throw new Error('Redis answered a checkpoint pipeline with no replies');
      for (const [err, reply] of res) {
        if (err) throw err;
        replies.push(reply);
      }
    }
    return replies;
  }

  /** Rows of window [from, …) up to `position` are acknowledged. */
  async advance(
    deviceId: string,
    windowFrom: number,
    position: number,
    lastRowAt?: number,
  ): Promise<number | undefined> {
    return this.run(deviceId, windowFrom, position, false, lastRowAt);
  }

  /** The whole window [from, to) is acknowledged. */
  async complete(deviceId: string, from: number, to: number, lastRowAt?: number): Promise<number | undefined> {
    return this.run(deviceId, from, to, true, lastRowAt);
  }

  private async run(
    deviceId: string,
    from: number,
    end: number,
    finished: boolean,
    lastRowAt?: number,
  ): Promise<number | undefined> {
    const k = this.key(deviceId);
    const out = (await this.options.redis.eval(
      ADVANCE,
      2,
      k,
      `${k}:done`,
      String(from),
      String(end),
      finished ? '1' : '0',
      String(this.now()),
      lastRowAt === undefined ? '' : String(lastRowAt),
    )) as string | null;
    return out === null ? undefined : Number(out);
  }

  /** Where a window's job resumes: the time of the last acknowledged row, if any. */
  async position(windowKey: string): Promise<number | undefined> {
    const v = await this.options.redis.get(redisKey(this.options.prefix, 'backfill', 'pos', windowKey));
    return v === null ? undefined : Number(v);
  }

  async setPosition(windowKey: string, position: number): Promise<void> {
    await this.options.redis.set(
      redisKey(this.options.prefix, 'backfill', 'pos', windowKey),
      String(position),
      'PX',
      this.positionTtlMs,
    );
  }

  /** A finished window forgets its position, so that a later request for it walks it again in full. */
  async clearPosition(windowKey: string): Promise<void> {
    await this.options.redis.del(redisKey(this.options.prefix, 'backfill', 'pos', windowKey));
  }
}
