/**
 * At most one log line per kind per interval: a flood of one fault (Redis refusing, InfluxDB
 * refusing, forged requests) writes one line per interval, and the next line of that kind says how
 * many were not logged meanwhile (`notLoggedBefore`).
 */
import type { Logger } from './log.js';

export interface LogLimitOptions {
  /** at most one line per kind per this many ms (default 10 s) */
  everyMs: number;
  now: () => number;
}

export const DEFAULT_LOG_LIMIT_OPTIONS: LogLimitOptions = { everyMs: 10_000, now: Date.now };

export class LogLimiter {
  private readonly options: LogLimitOptions;
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(options: Partial<LogLimitOptions> = {}) {
    this.options = {
      everyMs: options.everyMs ?? DEFAULT_LOG_LIMIT_OPTIONS.everyMs,
      now: options.now ?? DEFAULT_LOG_LIMIT_OPTIONS.now,
    };
  }

  /**
   * Whether a line of `kind` may be written now: undefined when it is suppressed (and counted),
   * else the number suppressed since the last line of that kind.
   */
  admit(kind: string): number | undefined {
    const now = this.options.now();
    const seen = this.last.get(kind);
    if (seen && now - seen.at < this.options.everyMs) {
      seen.suppressed++;
      return undefined;
    }
    this.last.set(kind, { at: now, suppressed: 0 });
    return seen?.suppressed ?? 0;
  }

  /** Logs at `level` unless a line of `kind` was logged within the interval. */
  log(
    logger: Pick<Logger, 'warn' | 'error'>,
    level: 'warn' | 'error',
    kind: string,
    fields: Record<string, unknown>,
    message: string,
  ): void {
    const notLoggedBefore = this.admit(kind);
    if (notLoggedBefore === undefined) return;
    logger[level]({ ...fields, logKind: kind, notLoggedBefore }, message);
  }
}
