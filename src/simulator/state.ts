/** What every endpoint handler of the simulator shares. */
import type { DeviceSeries } from './data-generator.js';
import type { Faults } from './faults.js';
import type { PushClient } from './push-client.js';
import type { TokenIssuer } from './token-issuer.js';
import type { HistoryReading, SimDevice, SimLogger, SimulatorStats, TimestampForm } from './types.js';
import type { VendorClock } from './vendor-time.js';

export interface SimDeviceState {
  device: SimDevice;
  series: DeviceSeries;
}

export interface SimState {
  devices: Map<string, SimDeviceState>;
  /** generated history range [from, to) */
  range: { from: number; to: number };
  followClock: boolean;
  /** how history paging reads the vendor document */
  history: HistoryReading;
  /** the form of every timestamp served (history, currentDatapoints, data pushes) */
  timestampForm: TimestampForm;
  currentTimestampSpace: boolean;
  /** history pages and data pushes carry numbers as JSON strings */
  numericStrings: boolean;
  settingDelayMs: number;
  settingResult: (deviceId: string, settings: Record<string, unknown>) => 0 | 1 | 'never';
  now: () => number;
  clock: VendorClock;
  stats: SimulatorStats;
  tokens: TokenIssuer;
  faults: Faults;
  push: PushClient;
  logger?: SimLogger;
  /** pending setting-result timers, cleared on close */
  timers: Set<NodeJS.Timeout>;
}

/** End (exclusive) of generated history right now. */
export function generatedEnd(state: SimState): number {
  return state.followClock ? Math.max(state.range.to, state.now()) : state.range.to;
}

/** An answer of an endpoint: HTTP status (200 unless said) and a JSON body. */
export interface Answer {
  status?: number;
  json: Record<string, unknown>;
}

/** A request as the handlers see it: the device id already decoded from the raw path. */
export interface SimRequest {
  method: string;
  query: URLSearchParams;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  deviceId?: string;
}

export function violation(state: SimState, endpoint: string, why: string): void {
  state.stats.violations.push(`${endpoint}: ${why}`);
}
