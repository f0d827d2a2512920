/**
 * Requests refused before anything is kept: counted (for /metrics) and logged at most once per
 * interval per reason, so a flood of forged or oversized requests cannot flood the log either.
 */
import type { Logger } from '../base/log.js';
import { LogLimiter } from '../base/log-limiter.js';

/**
 * signature: missing, forged or stale; replay: a signed request seen before; handshake: a refused
 * GET (nothing kept for these three); body: refused for its content or size (kept as a dead letter
 * when it could be read); budget: a refused body not kept because the dead-letter budget is spent;
 * redis-full: refused unread while Redis is near full (see redis-headroom.ts)
 */
export type RefusalReason = 'signature' | 'replay' | 'handshake' | 'body' | 'budget' | 'redis-full';

export interface RefusalLogOptions {
  /** at most one log line per reason per this many ms (default 10 s) */
  everyMs: number;
  now: () => number;
  /** counts every refusal (the service wires it to a Prometheus counter) */
  onRefused?: (reason: RefusalReason) => void;
}

export const DEFAULT_REFUSAL_LOG_OPTIONS: RefusalLogOptions = { everyMs: 10_000, now: Date.now };

export class Refusals {
  private readonly options: RefusalLogOptions;
  private readonly limiter: LogLimiter;

  constructor(
    private readonly logger: Pick<Logger, 'warn'>,
    options: Partial<RefusalLogOptions> = {},
  ) {
    this.options = { ...DEFAULT_REFUSAL_LOG_OPTIONS, ...options, now: options.now ?? DEFAULT_REFUSAL_LOG_OPTIONS.now };
    this.limiter = new LogLimiter(this.options);
  }

  /** Counts one refusal; logs it unless one of the same reason was logged within the interval. */
  note(reason: RefusalReason, fields: Record<string, unknown>, message: string): void {
    this.options.onRefused?.(reason);
    const notLoggedBefore = this.limiter.admit(reason);
    if (notLoggedBefore === undefined) return;
    this.logger.warn({ ...fields, refusal: reason, notLoggedBefore }, message);
  }
}
