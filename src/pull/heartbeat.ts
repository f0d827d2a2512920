import { repeat, type Repeating } from '../base/repeat.js';
import type { Redis } from 'ioredis';
import { redisKey } from '../base/redis.js';

/**
 * The service's heartbeat in Redis (`<prefix>:heartbeat`, epoch ms): while any process of the
 * installation runs, it is at most `intervalMs` old. At start, its age tells how long the service
 * was down, and therefore which window of data it missed.
 */
export interface HeartbeatOptions {
  redis: Pick<Redis, 'get' | 'eval'>;
  prefix: string;
  /** ms between beats (default 30 s) */
  intervalMs?: number;
  now?: () => number;
  onError?: (err: unknown) => void;
}

/** Only ever moves forward: several processes beat the same key. */
const BEAT = `
local old = tonumber(redis.call('GET', KEYS[1]))
if not old or tonumber(ARGV[1]) > old then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
`;

export class Heartbeat {
  readonly intervalMs: number;
  private readonly now: () => number;
  private beating: Repeating | undefined;

  constructor(private readonly options: HeartbeatOptions) {
    this.intervalMs = options.intervalMs ?? 30_000;
    this.now = options.now ?? Date.now;
  }

  private get key(): string {
    return redisKey(this.options.prefix, 'heartbeat');
  }

  async last(): Promise<number | undefined> {
    const v = await this.options.redis.get(this.key);
    return v === null ? undefined : Number(v);
  }

  async beat(at = this.now()): Promise<void> {
    await this.options.redis.eval(BEAT, 1, this.key, String(at));
  }

  /** Beats every `intervalMs` until close(); a failed beat is reported and the next one tried. */
  start(): void {
    this.beating ??= repeat(() => this.beat(), {
      everyMs: this.intervalMs,
      onError: (err) => this.options.onError?.(err),
      unref: true,
    });
  }

  async close(): Promise<void> {
    const beating = this.beating;
    this.beating = undefined;
    await beating?.stop();
  }
}
