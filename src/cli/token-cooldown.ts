import type { TokenUsage } from '../platform/token/usage.js';

/** Why token calls are paused, in words (status and token show it). */
export function cooldownCause(u: Pick<TokenUsage, 'cooldownKind'>): string {
  return u.cooldownKind === 'token'
    ? 'the platform rejected a freshly fetched access token (the pause doubles while that repeats)'
    : 'the platform rejected EXPEED_PLATFORM_KEY / EXPEED_SECRET_KEY';
}
