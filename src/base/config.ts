import nodeCron from 'node-cron';
import { clusterPrefix, type ClusterNode } from './queues.js';

/**
 * The whole configuration, read from the environment once at start and validated into one typed
 * object. Nothing else in src/ reads process.env: components get what they need from here.
 */

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
}

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

type Env = Record<string, string | undefined>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const DAY_MS = 86_400_000;
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

function str(env: Env, name: string, dflt: string): string {
  const v = env[name];
  return v === undefined || v.trim() === '' ? dflt : v.trim();
}

function optional(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

function int(env: Env, name: string, dflt: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return dflt;
  if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(name, `expected a whole number, got "${raw}"`);
  const n = Number(raw.trim());
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function bool(env: Env, name: string, dflt: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return dflt;
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new ConfigError(name, `expected true or false, got "${raw}"`);
}

/** A URL as it may be shown: a user and password in it are secrets (REDIS_URL carries Redis's). */
export function withoutCredentials(raw: string): string {
  return raw.replace(/\/\/[^/?#]*@/, '//[REDACTED]@');
}

function url(env: Env, name: string, dflt: string, protocols: string[]): string {
  const raw = str(env, name, dflt);
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, `not a valid URL: "${withoutCredentials(raw)}"`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `expected a ${protocols.join(' or ')} URL, got "${parsed.protocol}"`);
  }
  return raw.replace(/\/+$/, '');
}

/** Parses a duration such as `90s`, `15m`, `2h`, `1d` or plain milliseconds. */
export function parseDuration(raw: string): number | undefined {
  const m = /^(\d+)\s*(ms|s|m|h|d)?$/.exec(raw.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: DAY_MS }[(m[2] ?? 'ms') as 'ms'];
  return n * unit;
}

function duration(env: Env, name: string, dflt: number): number {
  const raw = optional(env, name);
  if (raw === undefined) return dflt;
  const ms = parseDuration(raw);
  if (ms === undefined || ms <= 0) {
    throw new ConfigError(name, `expected a duration such as 500ms, 30s, 15m, 2h or 1d, got "${raw}"`);
  }
  return ms;
}

/** Seconds as a plain number (`300`) or a duration (`5m`); 0 is allowed (it turns the check off). */
function seconds(env: Env, name: string, dflt: number): number {
  const raw = optional(env, name);
  if (raw === undefined) return dflt;
  if (/^\d+$/.test(raw)) return Number(raw);
  const ms = parseDuration(raw);
  if (ms === undefined || ms % 1000 !== 0) {
    throw new ConfigError(name, `expected whole seconds (300) or a duration such as 5m, got "${raw}"`);
  }
  return ms / 1000;
}

/**
 * EXPEED_RAW_RETENTION: empty = off. An hour must settle and a backfill window must land before
 * its raw rows may expire, or a rollup would be computed from rows already gone.
 */
function rawRetention(env: Env, settleMs: number, backfillWindowMs: number): number | undefined {
  const name = 'EXPEED_RAW_RETENTION';
  if (optional(env, name) === undefined) return undefined;
  const ms = duration(env, name, 0);
  const floor = Math.max(DAY_MS, settleMs + backfillWindowMs + 3_600_000);
  if (ms < floor) {
    throw new ConfigError(name, `must be at least ${Math.ceil(floor / 3_600_000)}h (1d, and longer than EXPEED_ROLLUP_SETTLE + EXPEED_BACKFILL_WINDOW + 1h), got "${optional(env, name)}"`);
  }
  return ms;
}

function timezone(env: Env, name: string): string {
  const tz = str(env, name, 'Asia/Shanghai');
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
  } catch {
    throw new ConfigError(name, `unknown time zone "${tz}" (use an IANA name such as Asia/Shanghai)`);
  }
  return tz;
}

/**
 * node-cron's own validator, the one the scheduler uses: it also refuses steps of 0, values out of
 * range and days that never occur in the named months (`0 0 31 2 *`), which would never fire.
 */
function cron(env: Env, name: string, dflt: string): string | undefined {
  const raw = env[name];
  if (raw !== undefined && raw.trim() === '') return undefined; // empty disables
  const expr = raw === undefined ? dflt : raw.trim();
  const fields = expr.split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6) throw new ConfigError(name, `not a cron expression (5 or 6 fields): "${expr}"`);
  const checked = nodeCron.validateDetailed(expr);
  if (!checked.valid) {
    const why = checked.errors.map((e) => e.message).join('; ') || 'refused by the cron parser';
    throw new ConfigError(name, `invalid cron expression "${expr}": ${why}`);
  }
  return expr;
}

/**
 * InfluxDB credentials go in INFLUX_TOKEN, never in the URL: a URL is printed (logs, /readyz) and
 * the client does not send its user part, so every write would fail while pushes were acknowledged.
 */
function influxUrl(env: Env): string {
  const value = url(env, 'INFLUX_URL', 'http://127.0.0.1:8086', ['http:', 'https:']);
  const parsed = new URL(value);
  if (parsed.username || parsed.password) {
    parsed.username = '';
    parsed.password = '';
    throw new ConfigError(
      'INFLUX_URL',
      `must not contain a user or password (got "${parsed.origin}" with credentials): set INFLUX_TOKEN=user:password (1.x) or the API token (2.x) instead`,
    );
  }
  return value;
}

/** Reads an instant: ISO 8601 with or without zone, or a duration back from now such as `30d`. */
function instant(env: Env, name: string, dflt: number, now: number): number {
  const raw = optional(env, name);
  if (raw === undefined) return dflt;
  const ago = parseDuration(raw);
  if (ago !== undefined) return now - ago;
  const t = Date.parse(raw);
  if (Number.isNaN(t)) throw new ConfigError(name, `expected an ISO 8601 time or a duration such as 30d, got "${raw}"`);
  return t;
}

/** `host:port,host:port,...`; a cluster knows the rest of its nodes, so one answering is enough to start. */
function clusterNodes(name: string, raw: string | undefined): ClusterNode[] | undefined {
  if (raw === undefined) return undefined;
  return raw.split(',').map((entry) => {
    const m = /^\s*(\[[0-9a-fA-F:.]+\]|[^\s:,[\]]+):(\d{1,5})\s*$/.exec(entry);
    const port = m ? Number(m[2]) : 0;
    if (!m || port < 1 || port > 65535) throw new ConfigError(name, `expected host:port,host:port,..., got "${entry.trim()}" in "${raw}"`);
    return { host: m[1].replace(/^\[|\]$/g, ''), port };
  });
}

export function loadConfig(env: Env = process.env, now = Date.now()): Config {
  const platformKey = optional(env, 'EXPEED_PLATFORM_KEY');
  const secretKey = optional(env, 'EXPEED_SECRET_KEY');
  if ((platformKey === undefined) !== (secretKey === undefined)) {
    throw new ConfigError(
      platformKey === undefined ? 'EXPEED_PLATFORM_KEY' : 'EXPEED_SECRET_KEY',
      'EXPEED_PLATFORM_KEY and EXPEED_SECRET_KEY must be set together',
    );
  }
  const logLevel = str(env, 'LOG_LEVEL', 'info').toLowerCase();
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', `expected one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }
  const api = str(env, 'INFLUX_API', 'auto').toLowerCase();
  if (api !== 'auto' && api !== 'v1' && api !== 'v2') {
    throw new ConfigError('INFLUX_API', `expected auto, v1 or v2, got "${api}"`);
  }
  const path = str(env, 'WEBHOOK_PATH', '/webhook');
  if (!path.startsWith('/')) throw new ConfigError('WEBHOOK_PATH', `must start with "/", got "${path}"`);
  const givenPrefix = str(env, 'EXPEED_PREFIX', 'expeed');
  if (/[\s:]/.test(givenPrefix)) throw new ConfigError('EXPEED_PREFIX', `must not contain spaces or ":", got "${givenPrefix}"`);
  const redisClusterNodes = clusterNodes('REDIS_CLUSTER_NODES', optional(env, 'REDIS_CLUSTER_NODES'));
  const prefix = redisClusterNodes ? clusterPrefix(givenPrefix) : givenPrefix;
  const redisUrl = url(env, 'REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:']);
  if (redisClusterNodes && !['', '/', '/0'].includes(new URL(redisUrl).pathname)) {
    throw new ConfigError('REDIS_URL', `a Redis Cluster has only database 0; REDIS_URL names database "${new URL(redisUrl).pathname.slice(1)}" while REDIS_CLUSTER_NODES is set`);
  }
  const adminUser = optional(env, 'ADMIN_USER');
  const adminPassword = optional(env, 'ADMIN_PASSWORD');
  if ((adminUser === undefined) !== (adminPassword === undefined)) {
    throw new ConfigError(adminUser === undefined ? 'ADMIN_USER' : 'ADMIN_PASSWORD', 'ADMIN_USER and ADMIN_PASSWORD must be set together');
  }
  const tokenDailyLimit = int(env, 'EXPEED_TOKEN_DAILY_LIMIT', 200, 1);
  const tokenReserve = int(env, 'EXPEED_TOKEN_RESERVE', Math.min(10, tokenDailyLimit - 1), 0);
  if (tokenReserve >= tokenDailyLimit) {
    throw new ConfigError('EXPEED_TOKEN_RESERVE', `must be below EXPEED_TOKEN_DAILY_LIMIT (${tokenDailyLimit}), got ${tokenReserve}`);
  }
  const tokenCooldownMs = duration(env, 'EXPEED_TOKEN_COOLDOWN', 15 * 60_000);
  const tokenCooldownMaxMs = duration(env, 'EXPEED_TOKEN_COOLDOWN_MAX', Math.max(4 * 3_600_000, tokenCooldownMs));
  if (tokenCooldownMaxMs < tokenCooldownMs) {
    throw new ConfigError('EXPEED_TOKEN_COOLDOWN_MAX', `must not be shorter than EXPEED_TOKEN_COOLDOWN (${tokenCooldownMs} ms), got ${tokenCooldownMaxMs} ms`);
  }
  const settingBody = str(env, 'EXPEED_SETTING_BODY', 'bare').toLowerCase();
  if (settingBody !== 'bare' && settingBody !== 'data') {
    throw new ConfigError('EXPEED_SETTING_BODY', `expected bare (the settings object) or data ({"data": settings}), got "${settingBody}"`);
  }

  return {
    baseUrl: url(env, 'EXPEED_BASE_URL', 'https://api.iot-expeed.com', ['http:', 'https:']),
    platformKey,
    secretKey,
    timezone: timezone(env, 'EXPEED_TIMEZONE'),
    tokenDailyLimit,
    tokenReserve,
    tokenCooldownMs,
    tokenCooldownMaxMs,
    unknownCodeRetries: int(env, 'EXPEED_UNKNOWN_CODE_RETRIES', 3, 0, 20),
    settingBody,
    requestTimeoutMs: duration(env, 'EXPEED_REQUEST_TIMEOUT', 30_000),
    devicesFile: optional(env, 'EXPEED_DEVICES_FILE'),
    backfillStart: instant(env, 'EXPEED_BACKFILL_START', now - 30 * DAY_MS, now),
    backfillWindowMs: duration(env, 'EXPEED_BACKFILL_WINDOW', DAY_MS),
    pageLimit: int(env, 'EXPEED_PAGE_LIMIT', 6000, 1, 6000),
    platformRateLimit: int(env, 'EXPEED_RATE_LIMIT', 20, 1),
    workerConcurrency: int(env, 'WORKER_CONCURRENCY', 4, 1, 256),
    catchUpThresholdMs: duration(env, 'EXPEED_CATCHUP_AFTER', 15 * 60_000),
    settingTimeoutMs: duration(env, 'EXPEED_SETTING_TIMEOUT', 5 * 60_000),
    rollupSettleMs: duration(env, 'EXPEED_ROLLUP_SETTLE', 5 * 60_000),
    webhook: {
      host: str(env, 'WEBHOOK_HOST', '127.0.0.1'),
      port: int(env, 'WEBHOOK_PORT', 8780, 0, 65535),
      path,
      token: optional(env, 'EXPEED_WEBHOOK_TOKEN'),
      bodyLimit: int(env, 'WEBHOOK_BODY_LIMIT', 5 * 1024 * 1024, 1024),
      timestampWindowSec: seconds(env, 'WEBHOOK_TIMESTAMP_WINDOW', 300),
      requestTimeoutMs: duration(env, 'WEBHOOK_REQUEST_TIMEOUT', 30_000),
      idleTimeoutMs: duration(env, 'WEBHOOK_IDLE_TIMEOUT', 10_000),
      maxConnections: int(env, 'WEBHOOK_MAX_CONNECTIONS', 1000, 1),
      requirePostSignature: bool(env, 'WEBHOOK_REQUIRE_SIGNATURE', false),
      pushOnlineCode: int(env, 'EXPEED_PUSH_ONLINE_CODE', 0, 0, 1),
      autoRegister: bool(env, 'EXPEED_AUTO_REGISTER', true),
    },
    deadLetters: {
      maxBytes: int(env, 'EXPEED_DEAD_LETTER_MAX_BYTES', 256 * 1024 * 1024, 1024),
      maxRawBytes: int(env, 'EXPEED_DEAD_LETTER_MAX_RAW_BYTES', 64 * 1024, 256),
    },
    redisUrl,
    redisClusterNodes,
    prefix,
    prefixWrapped: prefix !== givenPrefix,
    influx: {
      url: influxUrl(env),
      api,
      bucket: str(env, 'INFLUX_BUCKET', 'expeed'),
      org: optional(env, 'INFLUX_ORG'),
      token: optional(env, 'INFLUX_TOKEN'),
      rawRetentionMs: rawRetention(env, duration(env, 'EXPEED_ROLLUP_SETTLE', 5 * 60_000), duration(env, 'EXPEED_BACKFILL_WINDOW', DAY_MS)),
    },
    schedules: {
      nightly: cron(env, 'EXPEED_SCHEDULE_NIGHTLY', '0 2 * * *'),
      status: cron(env, 'EXPEED_SCHEDULE_STATUS', '*/5 * * * *'),
      gaps: cron(env, 'EXPEED_SCHEDULE_GAPS', '17 * * * *'),
    },
    admin: adminUser && adminPassword ? { user: adminUser, password: adminPassword } : undefined,
    logLevel,
    heapGrowthPercent: int(env, 'EXPEED_HEAP_GROWTH_PERCENT', DEFAULT_HEAP_GROWTH_PERCENT, 0, 1000),
    semiSpaceMb: optional(env, 'EXPEED_SEMI_SPACE_MB') === undefined ? undefined : int(env, 'EXPEED_SEMI_SPACE_MB', 0, 0, 256),
    redisConnectTimeoutMs: duration(env, 'EXPEED_REDIS_CONNECT_TIMEOUT', DEFAULT_REDIS_CONNECT_TIMEOUT_MS),
    influxStartTimeoutMs: duration(env, 'EXPEED_INFLUX_START_TIMEOUT', DEFAULT_INFLUX_START_TIMEOUT_MS),
  };
}

/** Every secret value of a configuration, for the log and error scrubber. */
export function secretsOf(config: Config): string[] {
  const redis = new URL(config.redisUrl);
  const redisPassword = redis.password ? decodeURIComponent(redis.password) : undefined;
  return [config.platformKey, config.secretKey, config.webhook.token, config.influx.token, config.admin?.password, redisPassword].filter(
    (s): s is string => typeof s === 'string' && s.length > 0,
  );
}
