/** The public contract of the platform simulator (re-exported by index.ts). */

export type SimValue = number | string | boolean;

/** One row as history serves it: epoch ms and the datapoints it carries (sparse). */
export interface SimRow {
  time: number;
  values: Record<string, SimValue>;
}

export interface SimDeviceSpec {
  id: string;
  key: string;
  /** datapoint names this device reports; default ['temp','humidity','switch','mode','voltage'] */
  fields?: string[];
  /** typical seconds between rows; default 60 */
  cadenceSec?: number;
  /** device_status answer: true = 1 (online), false = 0 (offline); default online */
  online?: boolean;
  /** [from,to) epoch-ms windows where the device was offline and produced no rows */
  offline?: Array<[number, number]>;
}

/** A device with every default filled in. */
export interface SimDevice {
  id: string;
  key: string;
  fields: string[];
  cadenceSec: number;
  online: boolean;
  offline: Array<[number, number]>;
}

export interface SimLogger {
  info(...a: unknown[]): void;
  warn(...a: unknown[]): void;
}

/** What the history answer's `cursor` points at (the vendor leaves it open). */
export type CursorReading = 'next' | 'last-inclusive' | 'last-exclusive' | 'first-row' | 'none';

/** How the simulator reads the open points of the vendor's history paging (docs/platform-api.md §2.3). */
export interface HistoryReading {
  /** default 'next' (or 'last-inclusive' with the older option boundaryRepeat) */
  cursor: CursorReading;
  /** what `limit` counts; default 'rows' */
  limit: 'rows' | 'datapoints';
  /** default 'inclusive' */
  start: 'inclusive' | 'exclusive';
  /** default 'exclusive' */
  end: 'inclusive' | 'exclusive';
  /**
   * the order pages are served in: as `first` asks (default; `first` absent = newest first, as the
   * vendor documents), `newest-first` whatever `first` says, `inverted` (`first=1` read as newest
   * first), or `unordered` (the rows `first` asks for, shuffled within each page: no walk can be exact)
   */
  order: 'asked' | 'newest-first' | 'inverted' | 'unordered';
  /** the platform's own cap on rows per page, below `limit`, without an error; 0 (default) = none */
  pageCap: number;
}

/** How the simulator writes timestamps (served-times.ts): the vendor's form, epoch numbers or ISO 8601. */
export type TimestampForm =
  'documented' | 'epoch-ms' | 'epoch-s' | 'epoch-ms-string' | 'iso-z' | 'iso-offset' | 'iso-local';

export interface SimulatorOptions {
  /** default '127.0.0.1' */
  host?: string;
  /** 0 (default) = a random free port */
  port?: number;
  platformKey: string;
  secretKey: string;
  /** zone of vendor timestamps and of the token day; default 'Asia/Shanghai' */
  timezone?: string;
  /** token lifetime in seconds; default 7200 */
  tokenTtlSec?: number;
  /** token calls per platform day; default 200 (the 201st call of a day gets result_code 6) */
  tokenDailyLimit?: number;
  /** a number = that many generated devices "dev-0001".. with keys "key-0001".. */
  devices: SimDeviceSpec[] | number;
  /** epoch ms range [from, to) of generated history */
  from: number;
  to: number;
  /** deterministic data (and fault decisions) for a seed; default 1 */
  seed?: number;
  /** where msg_type 1/2/3 pushes go */
  pushUrl?: string;
  /** token for the GET handshake signature; without it pushes go out without a handshake */
  webhookToken?: string;
  /** delay before the msg_type 3 result push; default 200 ms */
  settingDelayMs?: number;
  /** result of a setting: 0 applied, 1 failed, 'never' = no push (the client's timeout path); default 0 */
  settingResult?: (deviceId: string, settings: Record<string, unknown>) => 0 | 1 | 'never';
  /** injectable clock (token expiry, token day, current values); default Date.now */
  now?: () => number;
  logger?: SimLogger;
  /** repeat the last row of a page at the start of the next one; the same as history.cursor 'last-inclusive'; default false */
  boundaryRepeat?: boolean;
  /** how history paging reads the vendor document; defaults in DEFAULT_HISTORY_READING */
  history?: Partial<HistoryReading>;
  /** probability that a generated row is served as 2-3 rows sharing its millisecond (deterministic per seed); default 0 */
  sameMsRate?: number;
  /** rows split by sameMsRate also repeat their first part last: A, B, A in one millisecond; default false */
  sameMsRepeat?: boolean;
  /** the form of the timestamps in history rows, currentDatapoints and data pushes; default 'documented' */
  timestampForm?: TimestampForm;
  /** faults from the start: probability a device call fails, and how (HTTP 502, a reset connection, or either); default 0 */
  deviceFailRate?: number;
  deviceFailKind?: DeviceFailKind;
  /** ms added to each answer from the start (faults.latencyMs); default 0 */
  latencyMs?: number;
  /** history grows with the clock: the end of generated history is max(to, now()); default false */
  followClock?: boolean;
  /** probability that a slot has no row (plus rarer 64-slot holes at a third of it); default 0.01, 0 = none */
  gapRate?: number;
  /** a full row (every field) at least every this many slots; default 10 */
  fullRowEvery?: number;
  /** history pages and data pushes carry every number as a JSON string ("21.5"), as some platforms do; default false */
  numericStrings?: boolean;
  /** currentDatapoints timestamps with a leading space, like the vendor's example; default true */
  currentTimestampSpace?: boolean;
  /** push newly generated rows (msg_type 2) to pushUrl every this many ms (needs followClock); default off */
  livePushMs?: number;
}

export interface SimPushRecord {
  msgType: number;
  /** HTTP status the receiver answered (0 when the request itself failed) */
  status: number;
  /** the receiver's answer body (or the failure reason) */
  body: string;
  /** the JSON we pushed */
  sent: string;
}

export interface SimulatorStats {
  /** every call of the token endpoint, accepted or not */
  tokenCalls: number;
  /** 'YYYY-MM-DD' platform day -> calls */
  tokenCallsByDay: Record<string, number>;
  /** by endpoint: token, device_status, current, history, setting (and 'unknown') */
  requests: Record<string, number>;
  /** largest `limit` seen on history */
  largestLimit: number;
  historyRowsServed: number;
  /** device calls failed on purpose (deviceFailRate), by kind */
  deviceFailures: { '502': number; reset: number };
  /** every request the real API would reject, with why */
  violations: string[];
  pushes: SimPushRecord[];
  /** every accepted device_setting call */
  settings: Array<{ deviceId: string; messageId: string; settings: Record<string, unknown> }>;
}

/** How a failing device call fails: HTTP 502, the socket destroyed without an answer, or either at random. */
export type DeviceFailKind = '502' | 'reset' | 'mixed';

/** The statuses a throttled answer carries. */
export type ThrottleStatus = 429 | 503;

export type SimEndpoint = 'token' | 'device_status' | 'current' | 'history' | 'setting';

export interface SimulatorFaults {
  /** every issued token becomes invalid (device calls answer code 1) */
  revokeTokens(): void;
  /** tokens issued from now on expire after ms instead of the ttl */
  expireTokensEarly(ms: number): void;
  /** 0..1 probability a request gets HTTP 503 (deterministic PRNG) */
  http5xxRate: number;
  /** added to each answer */
  latencyMs: number;
  /** 0..1 probability a device call (not the token call) fails as `deviceFailKind` says (deterministic PRNG) */
  deviceFailRate: number;
  deviceFailKind: DeviceFailKind;
  /** the next `count` requests (of that endpoint) answer result_code `code` */
  codeStorm(code: number, count: number, endpoint?: SimEndpoint | string): void;
  /** 0..1 probability a device call answers HTTP `throttleStatus` with `Retry-After: throttleRetryAfter` (deterministic PRNG) */
  throttleRate: number;
  /** 429 (default) or 503 */
  throttleStatus: ThrottleStatus;
  /** the header sent: delay-seconds or an HTTP date (default "1") */
  throttleRetryAfter: string;
  /** the next `count` device calls (or calls of `endpoint`) answer HTTP 429/503 with Retry-After */
  throttleNext(count: number, options?: { retryAfter?: string; status?: ThrottleStatus; endpoint?: SimEndpoint }): void;
  /** throttled answers served so far */
  readonly throttledServed: number;
  reset(): void;
}

export interface Simulator {
  /** base URL, e.g. http://127.0.0.1:PORT (paths start with /v1) */
  url: string;
  devices: SimDevice[];
  stats: SimulatorStats;
  faults: SimulatorFaults;
  /** all rows of a device in [from,to), time ascending, exactly what history serves */
  rows(deviceId: string, from?: number, to?: number): SimRow[];
  /** GET handshake to pushUrl with a real signature; resolves to the answer */
  handshake(opts?: { token?: string; timestamp?: number; nonce?: string }): Promise<{ status: number; body: string }>;
  /** POST a msg_type 1 push; `status` is the raw code sent (vendor text: 0 = online, 1 = offline) */
  pushStatus(deviceId: string, status: 0 | 1): Promise<{ status: number; body: string }>;
  /** POST a msg_type 2 push of the given rows (timestamps in the form `timestampForm` says, in the simulator zone) */
  pushData(
    deviceId: string,
    rows: Array<{ time: number; values: Record<string, unknown> }>,
  ): Promise<{ status: number; body: string }>;
  /** add rows to a device's history, visible to history queries whatever the range */
  addRows(deviceId: string, rows: Array<{ time: number; values: Record<string, unknown> }>): void;
  /** sets the generated history range (e.g. extend `to`: new data "arrives") */
  setRange(from: number, to: number): void;
  /** what device_status answers from now on */
  setOnline(deviceId: string, online: boolean): void;
  close(): Promise<void>;
}
