/**
 * The token endpoint's state: issued tokens with their expiry, and the per-platform-day call
 * count that enforces the daily limit. Every call counts, accepted or not (as the vendor's
 * budget does, as far as anyone can tell).
 */
import { randomBytes } from 'node:crypto';
import { CODE, MESSAGE } from './result-codes.js';
import type { SimulatorStats } from './types.js';
import type { VendorClock } from './vendor-time.js';

export interface TokenIssuerOptions {
  platformKey: string;
  secretKey: string;
  ttlSec: number;
  dailyLimit: number;
  clock: VendorClock;
  now: () => number;
  stats: SimulatorStats;
}

export type TokenCheck = 'valid' | 'expired' | 'unknown';

export class TokenIssuer {
  private readonly tokens = new Map<string, number>();
  private earlyExpiryMs: number | undefined;

  constructor(private readonly o: TokenIssuerOptions) {}

  /** Counts the call against its platform day; false when the day's limit was already used up. */
  countCall(): boolean {
    const day = this.o.clock.day(this.o.now());
    const stats = this.o.stats;
    stats.tokenCalls++;
    stats.tokenCallsByDay[day] = (stats.tokenCallsByDay[day] ?? 0) + 1;
    return stats.tokenCallsByDay[day] <= this.o.dailyLimit;
  }

  /** The answer to a counted token call with these credentials. */
  issue(platformKey: string, secretKey: string): Record<string, unknown> {
    if (platformKey !== this.o.platformKey || secretKey !== this.o.secretKey) {
      return { result_code: CODE.tokenOrAuth, result_message: MESSAGE.authFailed };
    }
    const now = this.o.now();
    for (const [t, exp] of this.tokens) if (exp <= now) this.tokens.delete(t);
    const token = randomBytes(16).toString('hex');
    this.tokens.set(token, now + (this.earlyExpiryMs ?? this.o.ttlSec * 1000));
    return { result_code: CODE.ok, access_token: token, expires_in: this.o.ttlSec, result_message: MESSAGE.ok };
  }

  check(token: string): TokenCheck {
    const exp = this.tokens.get(token);
    if (exp === undefined) return 'unknown';
    return exp > this.o.now() ? 'valid' : 'expired';
  }

  revokeAll(): void {
    this.tokens.clear();
  }

  /** Tokens issued from now on live `ms` (the answer still says the normal `expires_in`). */
  expireEarly(ms: number | undefined): void {
    this.earlyExpiryMs = ms;
  }
}
