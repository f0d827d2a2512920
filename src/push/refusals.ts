/**
 * Requests refused before anything is kept: counted (for /metrics) and logged at most once per
 * interval per reason, so a flood of forged or oversized requests cannot flood the log either.
 */
import type { Logger } from '../base/log.js';

/**
 * signature: missing, forged or stale; replay: a signed request seen before; handshake: a refused
 * GET (nothing kept for these three); body: refused for its content or size (kept as a dead letter
 * when it could be read); budget: a refused body not kept because the dead-letter budget is spent
 */
export type RefusalReason = 'signature' | 'replay' | 'handshake' | 'body' | 'budget';

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
  private readonly last = new Map<RefusalReason, { at: number; suppressed: number }>();

  constructor(
    private readonly logger: Pick<Logger, 'warn'>,
    options: Partial<RefusalLogOptions> = {},
  ) {
    this.options = { ...DEFAULT_REFUSAL_LOG_OPTIONS, ...options, now: options.now ?? DEFAULT_REFUSAL_LOG_OPTIONS.now };
  }

  /** Counts one refusal; logs it unless one of the same reason was logged within the interval. */
  note(reason: RefusalReason, fields: Record<string, unknown>, message: string): void {
    this.options.onRefused?.(reason);
    const now = this.options.now();
    const seen = this.last.get(reason);
    if (seen && now - seen.at < this.options.everyMs) {
      seen.suppressed++;
      return;
    }
    this.logger.warn({ ...fields, refusal: reason, notLoggedBefore: seen?.suppressed ?? 0 }, message);
    this.last.set(reason, { at: now, suppressed: 0 });
  }
}
