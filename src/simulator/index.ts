/**
 * The platform simulator: a faithful HTTP stand-in for the Expeed IoT cloud (docs/platform-api.md)
 * for tests, the demo and benchmarks. `startSimulator` wires the pieces; every generated row is
 * deterministic for (seed, device, time).
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { withDefaults } from '../base/options.js';
import { DeviceSeries } from './data-generator.js';
import { DEFAULT_FIELDS } from './field-generators.js';
import { Faults } from './faults.js';
import { LiveFeed } from './live-feed.js';
import { PushClient } from './push-client.js';
import { RunningSimulator } from './running-simulator.js';
import { TIMESTAMP_FORMS } from './served-times.js';
import { createSimServer } from './server.js';
import type { SimDeviceState, SimState } from './state.js';
import { TokenIssuer } from './token-issuer.js';
import type {
  CursorReading,
  HistoryReading,
  SimDevice,
  SimDeviceSpec,
  Simulator,
  SimulatorOptions,
  SimulatorStats,
} from './types.js';
import { VendorClock } from './vendor-time.js';

export type {
  CursorReading,
  DeviceFailKind,
  HistoryReading,
  SimDevice,
  SimDeviceSpec,
  SimEndpoint,
  SimLogger,
  SimPushRecord,
  SimRow,
  SimValue,
  Simulator,
  SimulatorFaults,
  SimulatorOptions,
  SimulatorStats,
  TimestampForm,
} from './types.js';
export { TIMESTAMP_FORMS } from './served-times.js';

export const DEFAULT_HISTORY_READING: HistoryReading = {
  cursor: 'next',
  limit: 'rows',
  start: 'inclusive',
  end: 'exclusive',
  order: 'asked',
  pageCap: 0,
};
const ORDERS: readonly HistoryReading['order'][] = ['asked', 'newest-first', 'inverted', 'unordered'];

const CURSOR_READINGS: readonly CursorReading[] = ['next', 'last-inclusive', 'last-exclusive', 'first-row', 'none'];

/** The history reading of the options, every value checked (an error names the wrong one). */
export function resolveHistoryReading(o: Pick<SimulatorOptions, 'history' | 'boundaryRepeat'>): HistoryReading {
  const defaults: HistoryReading = {
    ...DEFAULT_HISTORY_READING,
    ...(o.boundaryRepeat ? { cursor: 'last-inclusive' as const } : {}),
  };
  const r: HistoryReading = withDefaults(defaults, o.history);
  if (!CURSOR_READINGS.includes(r.cursor))
    throw new Error(`simulator: history.cursor must be one of ${CURSOR_READINGS.join(', ')}, got "${r.cursor}"`);
  if (r.limit !== 'rows' && r.limit !== 'datapoints')
    throw new Error(`simulator: history.limit must be rows or datapoints, got "${r.limit}"`);
  for (const bound of ['start', 'end'] as const) {
    if (r[bound] !== 'inclusive' && r[bound] !== 'exclusive')
      throw new Error(`simulator: history.${bound} must be inclusive or exclusive, got "${r[bound]}"`);
  }
  if (!ORDERS.includes(r.order))
    throw new Error(`simulator: history.order must be one of ${ORDERS.join(', ')}, got "${r.order}"`);
  if (!(Number.isInteger(r.pageCap) && r.pageCap >= 0))
    throw new Error(`simulator: history.pageCap must be a whole number >= 0, got ${r.pageCap}`);
  return r;
}

export const DEFAULT_SIMULATOR_OPTIONS = {
  host: '127.0.0.1',
  port: 0,
  timezone: 'Asia/Shanghai',
  tokenTtlSec: 7200,
  tokenDailyLimit: 200,
  seed: 1,
  settingDelayMs: 200,
  boundaryRepeat: false,
  sameMsRate: 0,
  deviceFailRate: 0,
  deviceFailKind: 'mixed',
  latencyMs: 0,
  followClock: false,
  gapRate: 0.01,
  fullRowEvery: 10,
  currentTimestampSpace: true,
  timestampForm: 'documented',
  numericStrings: false,
} as const;

/** `n` generated devices: dev-0001/key-0001, dev-0002/key-0002, ... */
export function generatedDevices(n: number): SimDeviceSpec[] {
  return Array.from({ length: n }, (_, i) => {
    const num = String(i + 1).padStart(4, '0');
    return { id: `dev-${num}`, key: `key-${num}` };
  });
}

function resolveDevice(spec: SimDeviceSpec): SimDevice {
  if (typeof spec.id !== 'string' || spec.id === '') throw new Error('simulator device: id must be a non-empty string');
  if (typeof spec.key !== 'string' || spec.key === '')
    throw new Error(`simulator device ${spec.id}: key must be a non-empty string`);
  const cadenceSec = spec.cadenceSec ?? 60;
  if (!(cadenceSec > 0)) throw new Error(`simulator device ${spec.id}: cadenceSec must be > 0, got ${cadenceSec}`);
  for (const w of spec.offline ?? []) {
    if (!(w[0] < w[1]))
      throw new Error(`simulator device ${spec.id}: offline window [${w[0]}, ${w[1]}) is empty or reversed`);
  }
  return {
    id: spec.id,
    key: spec.key,
    fields: spec.fields && spec.fields.length > 0 ? [...spec.fields] : [...DEFAULT_FIELDS],
    cadenceSec,
    online: spec.online ?? true,
    offline: (spec.offline ?? []).map(([a, b]) => [a, b] as [number, number]),
  };
}

/** The options with every default in place (an option given as undefined keeps its default). */
type ResolvedOptions = Omit<SimulatorOptions, keyof typeof DEFAULT_SIMULATOR_OPTIONS> &
  Required<Pick<SimulatorOptions, keyof typeof DEFAULT_SIMULATOR_OPTIONS>>;

/** Every option checked, an error naming the wrong one; returns the history reading. */
function checkOptions(o: ResolvedOptions): HistoryReading {
  if (!(o.from <= o.to)) throw new Error(`simulator: from (${o.from}) must not be after to (${o.to})`);
  if (!(o.gapRate >= 0 && o.gapRate < 1)) throw new Error(`simulator: gapRate must be in [0, 1), got ${o.gapRate}`);
  if (!(o.sameMsRate >= 0 && o.sameMsRate <= 1))
    throw new Error(`simulator: sameMsRate must be in [0, 1], got ${o.sameMsRate}`);
  if (!(o.deviceFailRate >= 0 && o.deviceFailRate < 1))
    throw new Error(`simulator: deviceFailRate must be in [0, 1), got ${o.deviceFailRate}`);
  if (!['502', 'reset', 'mixed'].includes(o.deviceFailKind))
    throw new Error(`simulator: deviceFailKind must be 502, reset or mixed, got "${o.deviceFailKind}"`);
  if (!(o.latencyMs >= 0)) throw new Error(`simulator: latencyMs must be >= 0, got ${o.latencyMs}`);
  const history = resolveHistoryReading(o);
  if (!TIMESTAMP_FORMS.includes(o.timestampForm))
    throw new Error(`simulator: timestampForm must be one of ${TIMESTAMP_FORMS.join(', ')}, got "${o.timestampForm}"`);
  if (!(Number.isInteger(o.fullRowEvery) && o.fullRowEvery >= 1))
    throw new Error(`simulator: fullRowEvery must be a whole number >= 1, got ${o.fullRowEvery}`);
  return history;
}

function vendorClock(timezone: string): VendorClock {
  try {
    return new VendorClock(timezone);
  } catch {
    throw new Error(`simulator: unknown time zone "${timezone}" (use an IANA name such as Asia/Shanghai)`);
  }
}

/** Each device with its generated series, by id; an id given twice is refused. */
function simDevices(o: ResolvedOptions): Map<string, SimDeviceState> {
  const specs = typeof o.devices === 'number' ? generatedDevices(o.devices) : o.devices;
  const devices = new Map<string, SimDeviceState>();
  const seriesOptions = {
    seed: o.seed,
    gapRate: o.gapRate,
    fullRowEvery: o.fullRowEvery,
    sameMsRate: o.sameMsRate,
    sameMsRepeat: o.sameMsRepeat,
  };
  for (const spec of specs) {
    const device = resolveDevice(spec);
    if (devices.has(device.id)) throw new Error(`simulator: device id ${device.id} given twice`);
    devices.set(device.id, { device, series: new DeviceSeries(device, seriesOptions) });
  }
  return devices;
}

function emptyStats(): SimulatorStats {
  return {
    tokenCalls: 0,
    tokenCallsByDay: {},
    requests: {},
    largestLimit: 0,
    historyRowsServed: 0,
    deviceFailures: { '502': 0, reset: 0 },
    violations: [],
    pushes: [],
    settings: [],
  };
}

/** What every endpoint shares: devices, clock, token issuer, push client, faults (set as the options say). */
function simState(o: ResolvedOptions, history: HistoryReading, now: () => number): SimState {
  const clock = vendorClock(o.timezone);
  const devices = simDevices(o);
  const stats = emptyStats();
  const tokens = new TokenIssuer({
    platformKey: o.platformKey,
    secretKey: o.secretKey,
    ttlSec: o.tokenTtlSec,
    dailyLimit: o.tokenDailyLimit,
    clock,
    now,
    stats,
  });
  const push = new PushClient({
    pushUrl: o.pushUrl,
    webhookToken: o.webhookToken,
    wallClock: Date.now,
    stats,
    logger: o.logger,
  });
  const state: SimState = {
    devices,
    range: { from: o.from, to: o.to },
    followClock: o.followClock,
    history,
    timestampForm: o.timestampForm,
    currentTimestampSpace: o.currentTimestampSpace,
    numericStrings: o.numericStrings,
    settingDelayMs: o.settingDelayMs,
    settingResult: o.settingResult ?? (() => 0),
    now,
    clock,
    stats,
    tokens,
    faults: new Faults(tokens, o.seed),
    push,
    logger: o.logger,
    timers: new Set(),
  };
  state.faults.deviceFailRate = o.deviceFailRate;
  state.faults.deviceFailKind = o.deviceFailKind;
  state.faults.latencyMs = o.latencyMs;
  return state;
}

/** Resolves once the server listens on port and host (rejects with the listen error, e.g. EADDRINUSE). */
function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** With `livePushMs`, new rows are pushed as the clock moves; a wrong setting closes the simulator and throws. */
async function startLiveFeed(
  simulator: RunningSimulator,
  o: ResolvedOptions,
  livePushMs: number | undefined,
  now: () => number,
): Promise<void> {
  if (livePushMs === undefined) return;
  if (!(livePushMs > 0)) {
    await simulator.close();
    throw new Error(`simulator: livePushMs must be > 0, got ${livePushMs}`);
  }
  if (!o.pushUrl || !o.followClock) {
    await simulator.close();
    throw new Error('simulator: livePushMs needs pushUrl and followClock (rows are pushed as the clock moves)');
  }
  simulator.follow(new LiveFeed(simulator, { intervalMs: livePushMs, now, logger: o.logger }));
}

/** Checks the options, builds the state, listens, and starts the live feed when asked. */
export async function startSimulator(options: SimulatorOptions): Promise<Simulator> {
  const o: ResolvedOptions = withDefaults(DEFAULT_SIMULATOR_OPTIONS, options);
  const history = checkOptions(o);
  const now = options.now ?? Date.now;
  const state = simState(o, history, now);
  const server = createSimServer(state);
  await listen(server, o.port, o.host);
  const { port } = server.address() as AddressInfo;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  const simulator = new RunningSimulator(state, server, `http://${host}:${port}`);
  await startLiveFeed(simulator, o, options.livePushMs, now);
  return simulator;
}
