/**
 * Dead letters: what could not be written (a point InfluxDB refuses, a push body we cannot read, a
 * row with an unparseable timestamp), kept in Redis with the reason and the raw content until an
 * operator retries or drops it. Shared by every process of the installation:
 *
 * - `<prefix>:dead-letters`        hash  id -> letter (JSON)
 * - `<prefix>:dead-letters:order`  zset  id scored by insertion sequence (`<prefix>:dead-letters:order:seq`)
 * - `<prefix>:dead-letters:bytes`  string  bytes the letters take (their JSON plus a per-letter overhead)
 * - `<prefix>:dead-letters:full`   string  since when (epoch ms) a letter was not kept for lack of budget;
 *                                  removed when a drop or a successful retry gives bytes back
 * - `<prefix>:dead-letters:not-kept` hash  `kind/source` -> letters not kept for lack of budget (ever)
 *
 * The budget (EXPEED_DEAD_LETTER_MAX_BYTES) is accounted in the same Lua scripts that add and
 * remove letters, so every process of the installation shares it. Over budget nothing is evicted:
 * the new letter is counted and `add` throws a retryable DeadLetterBudgetError — a job that meets
 * it fails and is retried later with its data, the webhook answers the refusal it was going to.
 *
 * The id is a digest of kind, reason and raw content, so a job that runs twice (a retry after a
 * crash) sets the same thing aside once, not twice.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { redisKey } from '../base/redis.js';
import { ExpeedError } from '../base/retry.js';
import type { DeadLetter, DeadLetterKind, DeadLetterStore } from '../influx/api.js';
import { decodeLetter, encodeLetter, replacer } from './letter-codec.js';

/** Re-submits one letter; resolves when it went through, throws (with the reason) when it did not. */
export type RetryHandler = (letter: DeadLetter) => Promise<void>;
export type RetryHandlers = Partial<Record<DeadLetterKind, RetryHandler>>;

export interface RetryOutcome {
  id: string;
  ok: boolean;
  /** why it is still a dead letter */
  error?: string;
}

type StoreRedis = Pick<Redis, 'eval' | 'get' | 'hget' | 'hgetall' | 'hmget' | 'zrange' | 'zcard'>;

export interface DeadLetterStoreOptions {
  /** bytes all letters may take together (EXPEED_DEAD_LETTER_MAX_BYTES) */
  maxBytes: number;
  now: () => number;
}

export const DEFAULT_DEAD_LETTER_STORE_OPTIONS: DeadLetterStoreOptions = { maxBytes: 256 * 1024 * 1024, now: Date.now };

/** What a letter costs beyond its JSON: the id in the hash and the order zset, Redis' entry headers. */
export const LETTER_OVERHEAD_BYTES = 96;

/** A letter that was counted but not kept: the dead-letter budget is spent. Retrying later can help. */
export class DeadLetterBudgetError extends ExpeedError {
  constructor(readonly maxBytes: number) {
    super(
      `dead-letter budget of ${maxBytes} bytes is spent (EXPEED_DEAD_LETTER_MAX_BYTES): letter counted, not kept; drop or retry dead letters`,
      { retryable: true },
    );
  }
}

export interface DeadLetterBudget {
  usedBytes: number;
  maxBytes: number;
  /** since when letters are not kept (epoch ms); undefined while there is room */
  fullSince?: number;
  /** letters not kept for lack of budget, by `kind/source`, ever */
  notKept: Record<string, number>;
}

/**
 * Bytes in use; letters kept by a version without the budget have no count yet: they are counted
 * once (one pass over the hash), so the budget is right from the first add after an upgrade.
 */
const USED = `
local function used(hash, bytes, overhead)
  local u = redis.call('GET', bytes)
  if u then return tonumber(u) end
  local total = 0
  for _, id in ipairs(redis.call('HKEYS', hash)) do total = total + redis.call('HSTRLEN', hash, id) + overhead end
  redis.call('SET', bytes, total)
  return total
end
`;

/** Returns the bytes in use (counting them first when they never were). */
const USED_BYTES = `${USED}
return used(KEYS[1], KEYS[2], tonumber(ARGV[1]))
`;

/**
 * Keeps a letter once and orders it by a shared insertion sequence, so that letters set aside in
 * the same millisecond (or by different processes) still list in the order they were added.
 * Returns 1 kept (or kept before), 0 counted but not kept (over budget).
 */
const ADD = `${USED}
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 1 end
local cost = string.len(ARGV[2]) + tonumber(ARGV[4])
if used(KEYS[1], KEYS[4], tonumber(ARGV[4])) + cost > tonumber(ARGV[3]) then
  redis.call('SET', KEYS[5], ARGV[5], 'NX')
  redis.call('HINCRBY', KEYS[6], ARGV[6], 1)
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
redis.call('INCRBY', KEYS[4], cost)
return 1
`;

/** Removes letters and gives their bytes back; returns how many existed. */
const DROP = `
local freed, n = 0, 0
for i = 2, #ARGV do
  local len = redis.call('HSTRLEN', KEYS[1], ARGV[i])
  if redis.call('HDEL', KEYS[1], ARGV[i]) == 1 then
    n = n + 1
    freed = freed + len + tonumber(ARGV[1])
  end
  redis.call('ZREM', KEYS[2], ARGV[i])
end
if freed > 0 then
  -- a count that does not exist yet is computed whole when it is next needed
  if redis.call('EXISTS', KEYS[3]) == 1 and redis.call('DECRBY', KEYS[3], freed) < 0 then redis.call('SET', KEYS[3], 0) end
  redis.call('DEL', KEYS[4])
end
return n
`;

/** Replaces a kept letter (a failed retry) and accounts the difference in size. */
const UPDATE = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
local before = redis.call('HSTRLEN', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('INCRBY', KEYS[2], string.len(ARGV[2]) - before) end
return 1
`;

export class RedisDeadLetterStore implements DeadLetterStore {
  private readonly hash: string;
  private readonly order: string;
  private readonly bytes: string;
  private readonly full: string;
  private readonly notKept: string;
  private readonly options: DeadLetterStoreOptions;

  constructor(
    private readonly redis: StoreRedis,
    prefix: string,
    options: Partial<DeadLetterStoreOptions> = {},
  ) {
    this.options = {
      ...DEFAULT_DEAD_LETTER_STORE_OPTIONS,
      ...options,
      now: options.now ?? DEFAULT_DEAD_LETTER_STORE_OPTIONS.now,
    };
    this.hash = redisKey(prefix, 'dead-letters');
    this.order = redisKey(prefix, 'dead-letters', 'order');
    this.bytes = redisKey(prefix, 'dead-letters', 'bytes');
    this.full = redisKey(prefix, 'dead-letters', 'full');
    this.notKept = redisKey(prefix, 'dead-letters', 'not-kept');
  }

  /**
   * Sets something aside; the same kind, reason and raw content is kept once (its id is returned
   * again). Throws DeadLetterBudgetError (after counting it) when the budget has no room for it.
   */
  async add(entry: Omit<DeadLetter, 'id' | 'at' | 'attempts'>): Promise<string> {
    const rawText = JSON.stringify(entry.raw, replacer) ?? 'undefined';
    const id = createHash('sha256').update(`${entry.kind}\n${entry.reason}\n${rawText}`).digest('hex').slice(0, 16);
    const letter: DeadLetter = { id, ...entry, at: this.options.now(), attempts: 0 };
    if (letter.deviceId === undefined) delete letter.deviceId;
    // a second add of the same letter changes nothing
    const kept = await this.redis.eval(
      ADD,
      6,
      this.hash,
      this.order,
      `${this.order}:seq`,
      this.bytes,
      this.full,
      this.notKept,
      id,
      encodeLetter(letter),
      this.options.maxBytes,
      LETTER_OVERHEAD_BYTES,
      letter.at,
      `${entry.kind}/${entry.source}`,
    );
    if (Number(kept) !== 1) throw new DeadLetterBudgetError(this.options.maxBytes);
    return id;
  }

  /** How much of the budget is used, and what was not kept for lack of it. */
  async budget(): Promise<DeadLetterBudget> {
    const [used, full, notKept] = await Promise.all([
      this.redis.eval(USED_BYTES, 2, this.hash, this.bytes, LETTER_OVERHEAD_BYTES),
      this.redis.get(this.full),
      this.redis.hgetall(this.notKept),
    ]);
    return {
      usedBytes: Number(used ?? 0),
      maxBytes: this.options.maxBytes,
      fullSince: full === null ? undefined : Number(full),
      notKept: Object.fromEntries(Object.entries(notKept).map(([k, v]) => [k, Number(v)])),
    };
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

  /** Removes letters, giving their bytes back to the budget; returns how many existed. */
  async drop(ids: string[]): Promise<number> {
    if (ids.length === 0) return 0;
    return Number(
      await this.redis.eval(DROP, 4, this.hash, this.order, this.bytes, this.full, LETTER_OVERHEAD_BYTES, ...ids),
    );
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
        await this.redis.eval(
          UPDATE,
          2,
          this.hash,
          this.bytes,
          id,
          encodeLetter({ ...letter, attempts: letter.attempts + 1, lastError: error }),
        );
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
