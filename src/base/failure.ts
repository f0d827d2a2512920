/**
 * How the sync reads errors from the platform client and the writer without depending on their
 * classes: every error of theirs carries `retryable`; a spent token budget carries `resetsAt`.
 * Anything without `retryable: false` (network, HTTP 5xx, InfluxDB down, unknown) is retried.
 */

export interface FailureFacts {
  retryable: boolean;
  /** the vendor result code, when the platform answered with one */
  code?: number;
  /** the vendor's own message */
  vendorMessage?: string;
  endpoint?: string;
  /**
   * The error is about the device (unknown id or key, parameters the platform refuses): mark it in
   * the registry. Never for code 1 (the token) nor an undocumented code, which says nothing about it.
   */
  marksDevice: boolean;
}

export function failureFacts(err: unknown): FailureFacts {
  const e = (err ?? {}) as { retryable?: unknown; code?: unknown; vendorMessage?: unknown; endpoint?: unknown; unknownCode?: unknown };
  const retryable = e.retryable !== false;
  const code = typeof e.code === 'number' ? e.code : undefined;
  return {
    retryable,
    code,
    marksDevice: !retryable && code !== undefined && code !== 1 && e.unknownCode !== true,
    vendorMessage: typeof e.vendorMessage === 'string' ? e.vendorMessage : undefined,
    endpoint: typeof e.endpoint === 'string' ? e.endpoint : undefined,
  };
}

/** When a spent token budget comes back (epoch ms), or undefined for any other error. */
export function budgetResetsAt(err: unknown): number | undefined {
  const e = err as { name?: unknown; resetsAt?: unknown } | null;
  if (!e || typeof e !== 'object') return undefined;
  if (e.name !== 'TokenBudgetExhaustedError') return undefined;
  return typeof e.resetsAt === 'number' && Number.isFinite(e.resetsAt) ? e.resetsAt : undefined;
}

/** When a token cool-down ends (epoch ms, on the budget's clock), or undefined for any other error. */
export function cooldownUntil(err: unknown): number | undefined {
  const e = err as { name?: unknown; until?: unknown } | null;
  if (!e || typeof e !== 'object') return undefined;
  if (e.name !== 'TokenCooldownError' && e.name !== 'CredentialsCooldownError') return undefined;
  return typeof e.until === 'number' && Number.isFinite(e.until) ? e.until : undefined;
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A device the registry does not hold: queuing or running work for it cannot succeed. */
export class UnknownDeviceError extends Error {
  readonly retryable = false;
  constructor(readonly deviceId: string) {
    super(`device "${deviceId}" is not in the registry (add it with: expeed-sync devices add ${deviceId} --key KEY); not retryable`);
    this.name = 'UnknownDeviceError';
  }
}
