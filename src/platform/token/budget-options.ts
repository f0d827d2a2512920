/** The token budget's options, each default stated once (DEFAULT_TOKEN_BUDGET_OPTIONS). */
import type { RedisConnection } from '../../base/redis.js';
import type { Logger } from '../../base/log.js';
import type { SecretScrubber } from '../../base/secrets.js';
import { PLATFORM_DEFAULTS } from '../../base/config.js';
import type { TokenEndpoint } from './endpoint.js';
import { DEFAULT_TIMEZONE } from '../timestamp.js';

export interface TokenBudgetOptions {
  redis: RedisConnection;
  /** EXPEED_PREFIX */
  prefix: string;
  /** the token call (createTokenEndpoint); nothing else may call it. Absent without credentials: get() then fails without spending a call */
  fetchToken?: TokenEndpoint;
  /** token calls per platform day (default 200) */
  dailyLimit: number;
  /** calls kept for commands an operator runs by hand; scheduled work stops before them (default 10) */
  reserve: number;
  /** zone of the platform day (default Asia/Shanghai) */
  timezone: string;
  /** refresh this long before the token expires, at most a quarter of its lifetime (default 5 min) */
  refreshBeforeMs: number;
  /** the refresh lock expires after this, should its holder die; longer than a token call (default 45 s) */
  lockTtlMs: number;
  /** how long a process waits for another's refresh before giving up (default 60 s) */
  waitTimeoutMs: number;
  /** how often a waiting process looks for the new token (default 100 ms) */
  pollMs: number;
  /** token calls pause this long after the credentials or a fresh token were rejected (default 15 min) */
  cooldownMs: number;
  /** the pause doubles while fresh tokens keep being rejected, up to this (default 4 h) */
  maxCooldownMs: number;
  /** fingerprint of the credentials (credentialsFingerprint): new credentials are not held back by an old cool-down */
  credentialsId?: string;
  /** the clock of expiry and of the platform day (injectable for tests) */
  now: () => number;
  /** every token fetched or read is registered here, so it never reaches a log */
  scrubber?: SecretScrubber;
  log?: Pick<Logger, 'info' | 'warn'>;
  /** told of every token this process fetched (the service counts them for /metrics) */
  onRefresh?: () => void;
}

export const DEFAULT_TOKEN_BUDGET_OPTIONS: Omit<
  TokenBudgetOptions,
  'redis' | 'prefix' | 'fetchToken' | 'credentialsId' | 'scrubber' | 'log' | 'onRefresh'
> = {
  dailyLimit: PLATFORM_DEFAULTS.tokenDailyLimit,
  reserve: PLATFORM_DEFAULTS.tokenReserve,
  timezone: DEFAULT_TIMEZONE,
  refreshBeforeMs: 5 * 60_000,
  lockTtlMs: 45_000,
  waitTimeoutMs: 60_000,
  pollMs: 100,
  cooldownMs: 15 * 60_000,
  maxCooldownMs: 4 * 3_600_000,
  now: Date.now,
};
