/** Fault switches a test flips to drive the client through the platform's bad days. */
import { mulberry32 } from './prng.js';
import type { DeviceFailKind, SimEndpoint, SimulatorFaults, ThrottleStatus } from './types.js';
import type { TokenIssuer } from './token-issuer.js';

const ENDPOINTS: readonly string[] = ['token', 'device_status', 'current', 'history', 'setting'];

interface ThrottleBurst {
  remaining: number;
  retryAfter: string;
  status: ThrottleStatus;
  endpoint?: SimEndpoint;
}

/** A throttled answer: the HTTP status and the Retry-After header. */
export interface Throttled {
  status: ThrottleStatus;
  retryAfter: string;
}

interface Storm {
  code: number;
  remaining: number;
  endpoint?: string;
}

export class Faults implements SimulatorFaults {
  http5xxRate = 0;
  latencyMs = 0;
  deviceFailRate = 0;
  deviceFailKind: DeviceFailKind = 'mixed';
  throttleRate = 0;
  throttleStatus: ThrottleStatus = 429;
  throttleRetryAfter = '1';
  throttledServed = 0;
  private storms: Storm[] = [];
  private bursts: ThrottleBurst[] = [];
  private readonly random: () => number;

  constructor(
    private readonly tokens: TokenIssuer,
    seed: number,
  ) {
    this.random = mulberry32(seed ^ 0x5f3759df);
  }

  revokeTokens(): void {
    this.tokens.revokeAll();
  }

  expireTokensEarly(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0)
      throw new RangeError(`expireTokensEarly: ms must be a non-negative number, got ${ms}`);
    this.tokens.expireEarly(ms);
  }

  codeStorm(code: number, count: number, endpoint?: SimEndpoint | string): void {
    if (!Number.isInteger(code) || !Number.isInteger(count) || count < 0) {
      throw new RangeError(`codeStorm: code and count must be whole numbers, got ${code}, ${count}`);
    }
    if (endpoint !== undefined && !ENDPOINTS.includes(endpoint)) {
      throw new RangeError(`codeStorm: unknown endpoint "${endpoint}" (one of ${ENDPOINTS.join(', ')})`);
    }
    this.storms.push({ code, remaining: count, endpoint });
  }

  throttleNext(
    count: number,
    options: { retryAfter?: string; status?: ThrottleStatus; endpoint?: SimEndpoint } = {},
  ): void {
    if (!Number.isInteger(count) || count < 0)
      throw new RangeError(`throttleNext: count must be a whole number, got ${count}`);
    if (options.status !== undefined && options.status !== 429 && options.status !== 503)
      throw new RangeError(`throttleNext: status must be 429 or 503, got ${options.status}`);
    if (options.endpoint !== undefined && !ENDPOINTS.includes(options.endpoint)) {
      throw new RangeError(`throttleNext: unknown endpoint "${options.endpoint}" (one of ${ENDPOINTS.join(', ')})`);
    }
    this.bursts.push({
      remaining: count,
      retryAfter: options.retryAfter ?? this.throttleRetryAfter,
      status: options.status ?? this.throttleStatus,
      endpoint: options.endpoint,
    });
  }

  /** Whether this request is throttled: first a burst that applies (consumed), then one PRNG draw per device call while the rate is set. */
  takeThrottle(endpoint: string): Throttled | undefined {
    const burst = this.bursts.find(
      (b) => b.remaining > 0 && (b.endpoint === undefined ? endpoint !== 'token' : b.endpoint === endpoint),
    );
    if (burst) {
      burst.remaining--;
      this.bursts = this.bursts.filter((b) => b.remaining > 0);
      this.throttledServed++;
      return { status: burst.status, retryAfter: burst.retryAfter };
    }
    if (this.throttleRate <= 0 || endpoint === 'token' || this.random() >= this.throttleRate) return undefined;
    this.throttledServed++;
    return { status: this.throttleStatus, retryAfter: this.throttleRetryAfter };
  }

  reset(): void {
    this.throttleRate = 0;
    this.throttleStatus = 429;
    this.throttleRetryAfter = '1';
    this.bursts = [];
    this.http5xxRate = 0;
    this.latencyMs = 0;
    this.deviceFailRate = 0;
    this.deviceFailKind = 'mixed';
    this.storms = [];
    this.tokens.expireEarly(undefined);
  }

  /** Whether this request gets a 503 (one PRNG draw per request while the rate is set). */
  draw5xx(): boolean {
    if (this.http5xxRate <= 0) return false;
    return this.random() < this.http5xxRate;
  }

  /** How this device call fails, if it does (one PRNG draw per device call while the rate is set). */
  drawDeviceFailure(): '502' | 'reset' | undefined {
    if (this.deviceFailRate <= 0) return undefined;
    const r = this.random();
    if (r >= this.deviceFailRate) return undefined;
    if (this.deviceFailKind !== 'mixed') return this.deviceFailKind;
    // the same draw decides the kind: the lower half of the failing range is a 502
    return r < this.deviceFailRate / 2 ? '502' : 'reset';
  }

  /** The storm code this request answers, consuming one from the first storm that applies. */
  takeStorm(endpoint: string): number | undefined {
    const storm = this.storms.find((s) => s.remaining > 0 && (s.endpoint === undefined || s.endpoint === endpoint));
    if (!storm) return undefined;
    storm.remaining--;
    this.storms = this.storms.filter((s) => s.remaining > 0);
    return storm.code;
  }
}
