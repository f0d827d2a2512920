/**
 * What `expeed-sync token`, `status` and /metrics show of the token budget — never the token.
 */
import type { DailyTokenCalls } from './calls.js';
import type { TokenCache } from './cache.js';
import type { CooldownKind, TokenCooldown } from './cooldown.js';
import type { TokenRefreshLock } from './refresh-lock.js';
import { platformDay } from '../timestamp.js';

export interface TokenUsage {
  /** platform day, YYYY-MM-DD */
  day: string;
  calls: number;
  limit: number;
  reserve: number;
  /** epoch ms: the next platform midnight */
  resetsAt: number;
  tokenExpiresAt?: number;
  tokenFetchedAt?: number;
  /** a process is fetching a token right now */
  refreshing: boolean;
  cooldownUntil?: number;
  /** when the pause began: the refusal (or the rejected token) that started it */
  cooldownSince?: number;
  cooldownReason?: string;
  /** credentials: the token call was refused; token: the platform rejected a freshly fetched token */
  cooldownKind?: CooldownKind;
}

export interface TokenUsageSources {
  calls: Pick<DailyTokenCalls, 'count'>;
  cache: Pick<TokenCache, 'read'>;
  lock: Pick<TokenRefreshLock, 'held'>;
  pause: Pick<TokenCooldown, 'active'>;
  limit: number;
  reserve: number;
  timezone: string;
  credentialsId?: string;
}

export async function readTokenUsage(s: TokenUsageSources, now: number): Promise<TokenUsage> {
  const day = platformDay(now, s.timezone);
  const [calls, cached, refreshing, cooldown] = await Promise.all([
    s.calls.count(day.day),
    s.cache.read(),
    s.lock.held(),
    s.pause.active(now, s.credentialsId),
  ]);
  const usage: TokenUsage = { day: day.day, calls, limit: s.limit, reserve: s.reserve, resetsAt: day.end, refreshing };
  if (cached) Object.assign(usage, { tokenExpiresAt: cached.expiresAt, tokenFetchedAt: cached.fetchedAt });
  if (cooldown)
    Object.assign(usage, {
      cooldownUntil: cooldown.until,
      cooldownSince: cooldown.until - cooldown.ms,
      cooldownReason: cooldown.reason,
      cooldownKind: cooldown.kind,
    });
  return usage;
}
