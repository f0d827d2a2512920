/**
 * Typed errors of the Expeed platform. Each carries the endpoint, the vendor's result code and
 * message when there was one, and whether a retry can help (`retryable`; `retryAt` when a retry can
 * only help after a known instant). Nothing here knows about HTTP statuses of our own server. The
 * errors of our own guards on token calls (budget, cool-downs, the refresh lock) are in
 * token-errors.ts.
 */
import { ExpeedError, type ExpeedErrorOptions } from '../base/retry.js';

/** The platform's endpoints, named as in the vendor document. */
export const ENDPOINT = {
  token: 'token',
  deviceStatus: 'device_status',
  currentDatapoints: 'currentDatapoints',
  history: 'datapoints',
  deviceSetting: 'device_setting',
} as const;

export type Endpoint = (typeof ENDPOINT)[keyof typeof ENDPOINT];

/** Vendor result codes (SPEC §7). Code 3 means something different per endpoint. */
export const RESULT_CODE = {
  ok: 0,
  /** token call: credentials rejected; device calls: token expired */
  tokenOrCredentials: 1,
  deviceNotFound: 2,
  /** device_key unknown (status, current); query invalid (history); device offline (setting) */
  endpointSpecific: 3,
  urlParameters: 4,
  bodyParameters: 5,
} as const;

export interface PlatformErrorDetails extends ExpeedErrorOptions {
  endpoint: Endpoint;
  code?: number;
  vendorMessage?: string;
}

export class PlatformError extends ExpeedError {
  readonly endpoint: Endpoint;
  /** the vendor's result_code, when the platform answered with one */
  readonly code?: number;
  /** the vendor's result_message, verbatim */
  readonly vendorMessage?: string;

  constructor(message: string, details: PlatformErrorDetails) {
    super(message, details);
    this.endpoint = details.endpoint;
    this.code = details.code;
    this.vendorMessage = details.vendorMessage;
  }
}

function vendorText(endpoint: Endpoint, code: number | undefined, vendorMessage: string | undefined): string {
  const parts = [`endpoint ${endpoint}`];
  if (code !== undefined) parts.push(`result_code ${code}`);
  if (vendorMessage !== undefined && vendorMessage !== '') parts.push(`vendor says "${vendorMessage}"`);
  return parts.join(', ');
}

/**
 * Code 1 on a device call. Retryable once with a fresh token; the client does that itself. After
 * that refresh it is final unless a token budget guards the refreshes (`retryable`): the budget's
 * cool-down then stops a platform that rejects every token, and a later attempt may well work.
 */
export class TokenExpiredError extends PlatformError {
  constructor(
    endpoint: Endpoint,
    vendorMessage: string | undefined,
    options: { afterRefresh: boolean; retryable?: boolean },
  ) {
    super(
      options.afterRefresh
        ? `the platform rejected a freshly fetched access token too (${vendorText(endpoint, 1, vendorMessage)}); stopping instead of spending more of the daily token budget`
        : `access token expired or revoked (${vendorText(endpoint, 1, vendorMessage)})`,
      { endpoint, code: 1, vendorMessage, retryable: options.retryable ?? !options.afterRefresh },
    );
  }
}

/**
 * Code 1 on the token call: wrong platform key or secret key. A configuration error. The token
 * budget sets `cooldownUntil` once it has paused token calls for it (work waits for then).
 */
export class CredentialsRejectedError extends PlatformError {
  cooldownUntil?: number;

  constructor(vendorMessage: string | undefined) {
    super(
      `the platform rejected EXPEED_PLATFORM_KEY / EXPEED_SECRET_KEY (${vendorText(ENDPOINT.token, 1, vendorMessage)}); fix the configuration — retrying would only spend the daily token budget`,
      { endpoint: ENDPOINT.token, code: 1, vendorMessage, retryable: false },
    );
  }
}

/** Code 2: the device id is unknown to the platform. */
export class DeviceNotFoundError extends PlatformError {
  constructor(
    endpoint: Endpoint,
    readonly deviceId: string,
    vendorMessage: string | undefined,
  ) {
    super(`device "${deviceId}" does not exist on the platform (${vendorText(endpoint, 2, vendorMessage)})`, {
      endpoint,
      code: 2,
      vendorMessage,
      retryable: false,
    });
  }
}

/** Code 3 on device_status / currentDatapoints: the device key is wrong. */
export class DeviceKeyError extends PlatformError {
  constructor(
    endpoint: Endpoint,
    readonly deviceId: string,
    vendorMessage: string | undefined,
  ) {
    super(
      `the platform does not know the key of device "${deviceId}" (${vendorText(endpoint, 3, vendorMessage)}); check the key in the registry`,
      {
        endpoint,
        code: 3,
        vendorMessage,
        retryable: false,
      },
    );
  }
}

export type ParameterKind = 'query' | 'url' | 'body' | 'request';

/** Code 3 on history, 4, 5 — or a request we refuse to send. Our request is wrong; a retry cannot help. */
export class InvalidParametersError extends PlatformError {
  constructor(
    endpoint: Endpoint,
    readonly kind: ParameterKind,
    code: number | undefined,
    vendorMessage: string | undefined,
    detail?: string,
  ) {
    const what = { query: 'query parameters', url: 'URL parameters', body: 'body parameters', request: 'request' }[
      kind
    ];
    super(
      `the platform refused the ${what} (${vendorText(endpoint, code, vendorMessage)})${detail ? `: ${detail}` : ''}`,
      {
        endpoint,
        code,
        vendorMessage,
        retryable: false,
      },
    );
  }
}

/** Code 3 on device_setting: the device is offline. A later attempt can succeed. */
export class DeviceOfflineError extends PlatformError {
  constructor(
    readonly deviceId: string,
    vendorMessage: string | undefined,
  ) {
    super(
      `device "${deviceId}" is offline and cannot take a setting now (${vendorText(ENDPOINT.deviceSetting, 3, vendorMessage)})`,
      {
        endpoint: ENDPOINT.deviceSetting,
        code: 3,
        vendorMessage,
        retryable: true,
      },
    );
  }
}

/**
 * A result code the vendor never documented for this endpoint (its lists end in "…"). The client
 * retries it with backoff a bounded number of times first; `attempts` says how many answers carried
 * it. Not retryable once thrown, but it says nothing about the device: it is never marked failed.
 */
export class UnknownResultCodeError extends PlatformError {
  /** the code says nothing about the device: callers must not mark it failed */
  readonly unknownCode = true;
  constructor(
    endpoint: Endpoint,
    code: number,
    vendorMessage: string | undefined,
    readonly attempts = 1,
  ) {
    super(
      `unknown result code ${code} from the platform${attempts > 1 ? ` in ${attempts} answers in a row` : ''} (${vendorText(endpoint, code, vendorMessage)})`,
      {
        endpoint,
        code,
        vendorMessage,
        retryable: false,
      },
    );
  }
}

/**
 * A device_setting request may have reached the platform, but we do not know whether it was
 * applied (HTTP 5xx, connection reset or timeout after sending, an unknown result code, an
 * unreadable answer). A setting is not idempotent, so it is never sent again automatically.
 */
export class SettingOutcomeUnknownError extends PlatformError {
  constructor(
    readonly deviceId: string,
    cause: PlatformError,
  ) {
    super(
      `the setting for device "${deviceId}" may or may not have been applied: ${cause.message}; it was not sent again (a setting is not idempotent)`,
      {
        endpoint: ENDPOINT.deviceSetting,
        code: cause.code,
        vendorMessage: cause.vendorMessage,
        retryable: false,
        cause,
      },
    );
  }
}

/** Network error codes that mean the connection was never established: nothing was sent. */
const NOT_CONNECTED = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** HTTP 5xx/429, a network error or a timeout: the platform may answer later. */
export class PlatformUnavailableError extends PlatformError {
  constructor(
    endpoint: Endpoint,
    detail: string,
    readonly status?: number,
    cause?: unknown,
  ) {
    super(`the platform is unavailable (endpoint ${endpoint}): ${detail}`, { endpoint, retryable: true, cause });
  }

  /**
   * Whether the request may have reached the platform: false only when the connection was never
   * made (refused, unknown host, unreachable) or the platform said it did not take it (408, 429).
   */
  get mayHaveReached(): boolean {
    if (this.status === 408 || this.status === 429) return false;
    if (this.status !== undefined) return true;
    const code = (this.cause as { cause?: { code?: unknown } } | undefined)?.cause?.code;
    return !(typeof code === 'string' && NOT_CONNECTED.has(code));
  }
}

/** HTTP 429 or 503 with a Retry-After header: the platform said how long to wait (every process waits). */
export class PlatformThrottledError extends PlatformUnavailableError {
  constructor(
    endpoint: Endpoint,
    detail: string,
    status: number,
    /** the header as sent: delay-seconds or an HTTP date */
    readonly retryAfter: string,
  ) {
    super(endpoint, `${detail} (Retry-After: ${retryAfter})`, status);
  }
}

/** The answer is not JSON, or lacks a field the endpoint must send. */
export class PlatformProtocolError extends PlatformError {
  constructor(
    endpoint: Endpoint,
    detail: string,
    readonly status?: number,
  ) {
    super(`unreadable answer from the platform (endpoint ${endpoint}): ${detail}`, { endpoint, retryable: false });
  }
}
