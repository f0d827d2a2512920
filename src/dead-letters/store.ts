/**
 * Dead letters: what could not be written (a point InfluxDB refuses, a push body we cannot read, a
 * row with an unparseable timestamp), kept in Redis with the reason and the raw content until an
 * operator retries or drops it. Shared by every process of the installation:
 *
 * - `<prefix>:dead-letters`        hash  id -> letter (JSON)
 * - `<prefix>:dead-letters:order`  zset  id scored by insertion sequence (`<prefix>:dead-letters:order:seq`)
 *
 * The id is a digest of kind, reason and raw content, so a job that runs twice (a retry after a
 * crash) sets the same thing aside once, not twice.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { redisKey } from '../queues.js';
import type { DeadLetter, DeadLetterKind, DeadLetterStore } from '../influx/api.js';

/** Re-submits one letter; resolves when it went through, throws (with the reason) when it did not. */
export type RetryHandler = (letter: DeadLetter) => Promise<void>;
export type RetryHandlers = Partial<Record<DeadLetterKind, RetryHandler>>;

export interface RetryOutcome {
  id: string;
  ok: boolean;
  /** why it is still a dead letter */
  error?: string;
}

// JSON cannot carry NaN, ±Infinity, undefined or bigint, and those are often the very reason a
// value was set aside: they are tagged on the way in and restored on the way out.
const TAG = '$expeed';

function replacer(this: unknown, _key: string, value: unknown): unknown {
  if (typeof value === 'number' && !Number.isFinite(value)) return { [TAG]: 'number', value: String(value) };
  if (typeof value === 'bigint') return { [TAG]: 'bigint', value: value.toString() };
  if (value === undefined) return { [TAG]: 'undefined' };
  return value;
}

function reviver(_key: string, value: unknown): unknown {
  if (value !== null && typeof value === 'object' && TAG in value) {
    const v = value as { [TAG]: string; value?: string };
    if (v[TAG] === 'number') return Number(v.value);
    if (v[TAG] === 'bigint') return BigInt(v.value ?? '0');
    if (v[TAG] === 'undefined') return undefined;
  }
  return value;
}

export function encodeLetter(letter: DeadLetter): string {
  return JSON.stringify(letter, replacer);
}

export function decodeLetter(text: string): DeadLetter {
  return JSON.parse(text, reviver) as DeadLetter;
}

type StoreRedis = Pick<Redis, 'multi' | 'eval' | 'hget' | 'hmget' | 'hset' | 'zrange' | 'zcard'>;

/**
 * Keeps a letter once and orders it by a shared insertion sequence, so that letters set aside in
 * the same millisecond (or by different processes) still list in the order they were added.
 */
const ADD = `
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
end
return 1
`;

export class RedisDeadLetterStore implements DeadLetterStore {
  private readonly hash: string;
  private readonly order: string;

  constructor(
    private readonly redis: StoreRedis,
    prefix: string,
    private readonly now: () => number = Date.now,
  ) {
    this.hash = redisKey(prefix, 'dead-letters');
    this.order = redisKey(prefix, 'dead-letters', 'order');
  }

  /** Sets something aside; the same kind, reason and raw content is kept once (its id is returned again). */
  async add(entry: Omit<DeadLetter, 'id' | 'at' | 'attempts'>): Promise<string> {
    const rawText = JSON.stringify(entry.raw, replacer) ?? 'undefined';
    const id = createHash('sha256').update(`${entry.kind}\n${entry.reason}\n${rawText}`).digest('hex').slice(0, 16);
    const letter: DeadLetter = { id, ...entry, at: this.now(), attempts: 0 };
    if (letter.deviceId === undefined) delete letter.deviceId;
    // a second add of the same letter changes nothing
    await this.redis.eval(ADD, 3, this.hash, this.order, `${this.order}:seq`, id, encodeLetter(letter));
    return id;
  }

  /** Oldest first. */
  async list(options: { limit?: number; offset?: number } = {}): Promise<DeadLetter[]> {
    const offset = Math.max(0, options.offset ?? 0);
    if (options.limit !== undefined && options.limit <= 0) return [];
    const stop = options.limit === undefined ? -1 : offset + options.limit - 1;
    const ids = await this.redis.zrange(this.order, offset, stop);
    if (ids.length === 0) return [];
    const texts = await this.redis.hmget(this.hash, ...ids);
    return texts.filter((t): t is string => t !== null).map(decodeLetter);
  }

  async count(): Promise<number> {
    return this.redis.zcard(this.order);
  }

  async get(id: string): Promise<DeadLetter | undefined> {
    const text = await this.redis.hget(this.hash, id);
    return text === null ? undefined : decodeLetter(text);
  }

  /** Removes letters; returns how many existed. */
  async drop(ids: string[]): Promise<number> {
    if (ids.length === 0) return 0;
    const res = await this.redis.multi().hdel(this.hash, ...ids).zrem(this.order, ...ids).exec();
    const err = res?.find(([e]) => e)?.[0];
    if (err) throw err;
    return Number(res?.[0]?.[1] ?? 0);
  }

  /**
   * Re-submits letters (all when `ids` is undefined) through the handler of their kind. A letter
   * that goes through is removed; one that fails again stays, with `attempts + 1` and the new
   * reason in `lastError`; one without a handler for its kind is left untouched.
   */
  async retry(ids: string[] | undefined, handlers: RetryHandlers): Promise<RetryOutcome[]> {
    const targets = ids ?? (await this.redis.zrange(this.order, 0, -1));
    const outcomes: RetryOutcome[] = [];
    for (const id of targets) {
      const letter = await this.get(id);
      if (!letter) {
        outcomes.push({ id, ok: false, error: 'no such dead letter' });
        continue;
      }
      const handler = handlers[letter.kind];
      if (!handler) {
        outcomes.push({ id, ok: false, error: `no retry handler for kind "${letter.kind}"` });
        continue;
      }
      try {
        await handler(letter);
      } catch (err) {
        const error = err instanceof Error ? err.message : String(err);
        await this.redis.hset(this.hash, id, encodeLetter({ ...letter, attempts: letter.attempts + 1, lastError: error }));
        outcomes.push({ id, ok: false, error });
        continue;
      }
      await this.drop([id]);
      outcomes.push({ id, ok: true });
    }
    return outcomes;
  }

  /** The Redis connection belongs to the caller; nothing of the store's own to release. */
  async close(): Promise<void> {}
}
