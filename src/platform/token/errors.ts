/**
 * Errors of our own guards on token calls, thrown before any request is made: the daily token
 * budget, the cool-downs after the platform rejected credentials or a fresh token, and the wait
 * for another process's refresh. Each says when a retry can work (`retryAt`).
 */
import { CredentialsRejectedError, ENDPOINT, PlatformError } from '../errors.js';

/** Token calls are paused after the credentials were rejected, so that a crash loop cannot burn the budget. */
export class CredentialsCooldownError extends PlatformError {
  constructor(
    readonly until: number,
    readonly untilText: string,
    reason: string,
  ) {
    super(
      `token calls are paused until ${untilText} because the platform rejected the credentials (${reason}); fix EXPEED_PLATFORM_KEY / EXPEED_SECRET_KEY (new credentials are tried at once) or run "expeed-sync token --clear-cooldown"`,
      { endpoint: ENDPOINT.token, code: 1, retryable: false, retryAt: until },
    );
  }
}

/**
 * The platform rejected an access token that had never worked (code 1 right after a refresh): the
 * platform, not the token, is the problem. Every process pauses token calls until `retryAt`, so that
 * a platform in that state cannot drain the daily budget; work waits for then, nothing is lost.
 */
export class TokenCooldownError extends PlatformError {
  constructor(
    readonly until: number,
    readonly untilText: string,
    reason: string,
  ) {
    super(
      `token calls are paused until ${untilText} because the platform rejected a freshly fetched access token (${reason}); work resumes then, or run "expeed-sync token --clear-cooldown"`,
      // no code: no request was made (and /metrics counts it by name, not as a code 1 answer)
      { endpoint: ENDPOINT.token, retryable: true, retryAt: until },
    );
  }
}

/** The day's token calls are spent. Retryable only after the platform day ends. */
export class TokenBudgetExhaustedError extends PlatformError {
  constructor(
    readonly resetsAt: number,
    readonly resetsAtText: string,
    readonly calls: number,
    readonly limit: number,
    readonly reserved: number,
  ) {
    super(
      reserved > 0
        ? `token budget for scheduled work is spent: ${calls} of ${limit} token calls made today, the last ${reserved} are kept for commands run by hand; the count resets at ${resetsAtText}`
        : `daily token budget is spent: ${calls} of ${limit} token calls made today; the count resets at ${resetsAtText}`,
      { endpoint: ENDPOINT.token, retryable: true, retryAt: resetsAt },
    );
  }
}

/** Another process held the token refresh lock longer than we may wait. */
export class TokenWaitTimeoutError extends PlatformError {
  constructor(waitedMs: number) {
    super(`gave up waiting ${waitedMs} ms for another process to refresh the access token`, {
      endpoint: ENDPOINT.token,
      retryable: true,
    });
  }
}

/** When a spent token budget comes back (epoch ms), or undefined for any other error. */
export function budgetResetsAt(err: unknown): number | undefined {
  return err instanceof TokenBudgetExhaustedError ? err.resetsAt : undefined;
}

/**
 * When a token cool-down ends (epoch ms, on the budget's clock), or undefined for any other error:
 * a call held back by a pause, or the refused credentials that started one.
 */
export function cooldownUntil(err: unknown): number | undefined {
  return err instanceof TokenCooldownError ? err.until : credentialsWaitUntil(err);
}

/**
 * When work refused for the credentials can be tried again (epoch ms): the end of the credentials
 * cool-down, for the refusal itself (once the pause is recorded) and for calls held back by the
 * pause; undefined for any other error.
 */
export function credentialsWaitUntil(err: unknown): number | undefined {
  if (err instanceof CredentialsCooldownError) return err.until;
  return err instanceof CredentialsRejectedError ? err.cooldownUntil : undefined;
}
