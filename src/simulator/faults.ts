/** Fault switches a test flips to drive the client through the platform's bad days. */
import { mulberry32 } from './prng.js';
import type { DeviceFailKind, SimEndpoint, SimulatorFaults } from './types.js';
import type { TokenIssuer } from './token-issuer.js';

const ENDPOINTS: readonly string[] = ['token', 'device_status', 'current', 'history', 'setting'];

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
  private storms: Storm[] = [];
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
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`expireTokensEarly: ms must be a non-negative number, got ${ms}`);
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

  reset(): void {
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
