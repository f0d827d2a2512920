/**
 * The token budget as the service and the CLI wire it from the configuration: the token call
 * (when there are credentials), the limits, and lock and wait times that outlast a slow call.
 */
import { createHash } from 'node:crypto';
import type { Config } from '../../base/config.js';
import type { RedisConnection } from '../../base/redis.js';
import { createTokenEndpoint } from './endpoint.js';
import { TokenBudget } from './budget.js';
import { DEFAULT_TOKEN_BUDGET_OPTIONS, type TokenBudgetOptions } from './budget-options.js';

/** A short, one-way fingerprint of the credentials (never the credentials themselves). */
export function credentialsFingerprint(platformKey: string, secretKey: string): string {
  return createHash('sha256').update(`${platformKey}\0${secretKey}`).digest('hex').slice(0, 16);
}

export function tokenBudgetFromConfig(
  config: Config,
  redis: RedisConnection,
  extras: Partial<Omit<TokenBudgetOptions, 'redis' | 'prefix'>> = {},
): TokenBudget {
  const { platformKey, secretKey } = config;
  const fetchToken =
    platformKey && secretKey
      ? createTokenEndpoint({
          baseUrl: config.baseUrl,
          platformKey,
          secretKey,
          timeoutMs: config.requestTimeoutMs,
          scrubber: extras.scrubber,
        })
      : undefined;
  const lockTtlMs = Math.max(DEFAULT_TOKEN_BUDGET_OPTIONS.lockTtlMs, config.requestTimeoutMs + 15_000);
  return new TokenBudget({
    redis,
    prefix: config.prefix,
    fetchToken,
    dailyLimit: config.tokenDailyLimit,
    reserve: config.tokenReserve,
    cooldownMs: config.tokenCooldownMs,
    maxCooldownMs: config.tokenCooldownMaxMs,
    timezone: config.timezone,
    credentialsId: platformKey && secretKey ? credentialsFingerprint(platformKey, secretKey) : undefined,
    // the lock must outlive a slow token call, or a second process would start one too
    lockTtlMs,
    // and a waiter outlives the lock, so that it can take over from a process that died holding it
    waitTimeoutMs: Math.max(DEFAULT_TOKEN_BUDGET_OPTIONS.waitTimeoutMs, lockTtlMs + 15_000),
    ...extras,
  });
}
