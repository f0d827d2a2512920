/**
 * The whole configuration as one typed object: its shape, and the defaults other parts refer to.
 * It is read from the environment once at start (load-config.ts, with the readers of env-readers.ts);
 * nothing else in src/ reads process.env: components get what they need from here.
 */
import type { ClusterNode } from './redis.js';

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
  }
}

export type InfluxApi = 'auto' | 'v1' | 'v2';

export interface InfluxConfig {
  url: string;
  api: InfluxApi;
  /** bucket (2.x+) or database (1.x) */
  bucket: string;
  org?: string;
  /** 2.x+ token, or `user:password` for 1.x with auth */
  token?: string;
  /** EXPEED_RAW_RETENTION: raw rows expire after this many ms (1.x only); undefined = kept forever */
  rawRetentionMs?: number;
  /** EXPEED_HOURLY_RETENTION: hourly rollups expire after this many ms (1.x only); undefined = kept forever (daily rollups always are) */
  hourlyRetentionMs?: number;
  /** EXPEED_NUMERIC_STRINGS: a datapoint string that is a plain decimal number is written as a float (`number`) or as it came (`string`) */
  numericStrings: NumericStringsMode;
}

export type NumericStringsMode = 'number' | 'string';
/** EXPEED_NUMERIC_STRINGS when unset: numbers sent as JSON strings ("21.5") land as floats */
export const DEFAULT_NUMERIC_STRINGS: NumericStringsMode = 'number';

export interface WebhookConfig {
  host: string;
  port: number;
  path: string;
  /** the shared token entered in the vendor console; the handshake cannot be verified without it */
  token?: string;
  /** largest accepted POST body in bytes (default 5 MB) */
  bodyLimit: number;
  /** a signed request whose timestamp is further than this from now is refused (seconds, default 300; 0 = not checked) */
  timestampWindowSec: number;
  /** the whole request (headers and body) must arrive within this, ms (default 30 s) */
  requestTimeoutMs: number;
  /** a connection silent for this long is closed, ms (default 10 s; also the keep-alive wait) */
  idleTimeoutMs: number;
  /** open connections at most; more are closed at once (default 1000) */
  maxConnections: number;
  /** require signature/nonce/timestamp on POSTs too (default false: verified when present) */
  requirePostSignature: boolean;
  /** raw `device_status` code that means "online" in msg_type 1 pushes (vendor text: 0) */
  pushOnlineCode: number;
  /** add devices seen in pushes (with their key) to the registry (default true) */
  autoRegister: boolean;
  /** WEBHOOK_REDIS_MEMORY_PERCENT: pushes are refused (503) once Redis uses this % of maxmemory (default 80; 100 = off) */
  redisMemoryPercent: number;
  /** WEBHOOK_MAX_BACKLOG: pushes are refused (503) once this many ingest jobs wait (default 0 = off) */
  maxBacklog: number;
}

export interface DeadLetterConfig {
  /** bytes all dead letters may take in Redis together (default 256 MiB); over it new ones are counted, not kept */
  maxBytes: number;
  /** a kept push body longer than this keeps its head, length and SHA-256 only (default 64 KiB) */
  maxRawBytes: number;
}

export interface SchedulesConfig {
  /** cron expressions in the platform zone; `undefined` = disabled */
  nightly?: string;
  status?: string;
  gaps?: string;
  /** EXPEED_SCHEDULE_VERIFY: each device's previous 7 days verified and repaired */
  verify?: string;
}

export interface Config {
  baseUrl: string;
  platformKey?: string;
  secretKey?: string;
  /** IANA zone of the platform's timestamps and of the token day */
  timezone: string;
  tokenDailyLimit: number;
  /** token calls kept back for commands an operator runs by hand; scheduled work stops before */
  tokenReserve: number;
  /** first pause of token calls after the credentials or a fresh token were rejected, ms */
  tokenCooldownMs: number;
  /** the pause doubles while fresh tokens keep being rejected, up to this, ms */
  tokenCooldownMaxMs: number;
  /** answers with an undocumented result code retried before a call fails */
  unknownCodeRetries: number;
  /** device_setting body: `bare` settings object or `data`-wrapped */
  settingBody: 'bare' | 'data';
  /** per platform request, ms */
  requestTimeoutMs: number;
  devicesFile?: string;
  /** epoch ms where a device with no checkpoint starts */
  backfillStart: number;
  /** length of one backfill job's window, ms (default one day) */
  backfillWindowMs: number;
  /** history page size, 1–6000 */
  pageLimit: number;
  /** platform requests per second across all workers (BullMQ limiter) */
  platformRateLimit: number;
  workerConcurrency: number;
  /** after being down longer than this (ms), the service backfills the missed window at start */
  catchUpThresholdMs: number;
  /** a pending setting command becomes `timeout` after this many ms */
  settingTimeoutMs: number;
  /** an hour is rolled up once it has ended and nothing touched it for this long, ms (default 5 min) */
  rollupSettleMs: number;
  /** EXPEED_LOOKBACK: each nightly sync re-reads this much before each device's checkpoint, ms (default 2 days; 0 = off) */
  lookbackMs: number;
  /** EXPEED_RECONNECT_SETTLE: a device back online after an offline span is re-read over that span once it has been online this long, ms (default 10 min) */
  reconnectSettleMs: number;
  webhook: WebhookConfig;
  deadLetters: DeadLetterConfig;
  redisUrl: string;
  /** a Redis Cluster's startup nodes (REDIS_CLUSTER_NODES); REDIS_URL then gives only credentials and TLS */
  redisClusterNodes?: ClusterNode[];
  /** EXPEED_PREFIX; on a cluster in a hash tag (`expeed` -> `{expeed}`) */
  prefix: string;
  /** the prefix was wrapped in a hash tag here: the start log says so */
  prefixWrapped: boolean;
  influx: InfluxConfig;
  schedules: SchedulesConfig;
  admin?: { user: string; password: string };
  logLevel: string;
  /**
   * how far V8 lets the heap grow past what the last full GC kept, in percent (V8's
   * --heap-growing-percent, set by the CLI at start); 0 = V8's own growth. No hard cap: a burst
   * only costs more garbage collections, never an out-of-memory crash.
   */
  heapGrowthPercent: number;
  /** V8 semi-space size in MB (0 = V8's default); undefined = chosen by the roles (see run) */
  semiSpaceMb?: number;
  /** how long a command waits for Redis before it gives up (`run`: before each logged retry), ms */
  redisConnectTimeoutMs: number;
  /** how long `run` waits for InfluxDB to answer /ping at start before it exits, ms */
  influxStartTimeoutMs: number;
}

/**
 * The platform's documented facts, and the defaults built on them, stated once: the zone of its
 * timestamps and token day, its daily token calls, the largest history page, and the request rate
 * this product keeps to by default. The configuration, the token budget, the walk and the
 * schedules all take them from here.
 */
export const PLATFORM_DEFAULTS = {
  timezone: 'Asia/Shanghai',
  tokenDailyLimit: 200,
  /** token calls kept back for the operator's commands (below the daily limit) */
  tokenReserve: 10,
  /** the largest `limit` of a history page, and the page size asked for by default */
  historyPageMax: 6000,
  /** platform requests a second, across processes */
  requestRate: 20,
} as const;

/** measured with bench/backfill.ts: see docs/benchmarks.md, "Memory" */
export const DEFAULT_HEAP_GROWTH_PERCENT = 50;
/**
 * V8's young generation (semi-space, MB) in a process that runs the webhook role, when
 * EXPEED_SEMI_SPACE_MB is not set: measured with bench/webhook.ts, see docs/benchmarks.md
 */
export const WEBHOOK_SEMI_SPACE_MB = 32;
/** long enough for a Redis that is restarting, short enough that a typo in REDIS_URL is seen at once */
export const DEFAULT_REDIS_CONNECT_TIMEOUT_MS = 10_000;
/** InfluxDB started by the same compose file may take this long to answer */
export const DEFAULT_INFLUX_START_TIMEOUT_MS = 30_000;

/** Every secret value of a configuration, for the log and error scrubber. */
export function secretsOf(config: Config): string[] {
  const redis = new URL(config.redisUrl);
  const redisPassword = redis.password ? decodeURIComponent(redis.password) : undefined;
  return [
    config.platformKey,
    config.secretKey,
    config.webhook.token,
    config.influx.token,
    config.admin?.password,
    redisPassword,
  ].filter((s): s is string => typeof s === 'string' && s.length > 0);
}
