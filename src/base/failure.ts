/**
 * How the flows read a failure of the platform client or the writer without depending on their
 * classes: whether a retry can help comes from the one protocol (./retry.ts); the vendor's code
 * and message, when the error carries them, say whether the device is at fault.
 */
import { ExpeedError, isRetryable } from './retry.js';

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
  const e = (err ?? {}) as { code?: unknown; vendorMessage?: unknown; endpoint?: unknown; unknownCode?: unknown };
  const retryable = isRetryable(err);
  const code = typeof e.code === 'number' ? e.code : undefined;
  return {
    retryable,
    code,
    marksDevice: !retryable && code !== undefined && code !== 1 && e.unknownCode !== true,
    vendorMessage: typeof e.vendorMessage === 'string' ? e.vendorMessage : undefined,
    endpoint: typeof e.endpoint === 'string' ? e.endpoint : undefined,
  };
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * A device the registry does not hold, so its key is unknown: queuing or running work for it, or
 * sending it a setting, cannot succeed until an operator adds it.
 */
export class UnknownDeviceError extends ExpeedError {
  constructor(readonly deviceId: string) {
    super(
      `device "${deviceId}" is not registered, so its key is unknown: add it with "expeed-sync devices add ${deviceId} --key KEY"`,
      { retryable: false },
    );
  }
}
