/**
 * The configuration read from the environment: every variable with its default, and the rules that
 * tie variables together (credentials set in pairs, a reserve below the limit, a retention long
 * enough for rollups, a Redis Cluster with database 0 only), one reader per section (InfluxDB's in
 * influx-config.ts). Defaults match .env.example (tested).
 */
import { clusterPrefix } from './redis.js';
import { influxConfig } from './influx-config.js';
import {
  ConfigError,
  PLATFORM_DEFAULTS,
  DEFAULT_HEAP_GROWTH_PERCENT,
  DEFAULT_INFLUX_START_TIMEOUT_MS,
  DEFAULT_REDIS_CONNECT_TIMEOUT_MS,
  type Config,
} from './config.js';
import {
  bool,
  clusterNodes,
  cron,
  duration,
  instant,
  int,
  optional,
  seconds,
  str,
  timezone,
  url,
  type Env,
} from './env-readers.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const DAY_MS = 86_400_000;

/** The vendor platform: credentials (set in pairs), zone, token budget, request behaviour. */
function platformConfig(
  env: Env,
): Pick<
  Config,
  | 'baseUrl'
  | 'platformKey'
  | 'secretKey'
  | 'timezone'
  | 'tokenDailyLimit'
  | 'tokenReserve'
  | 'tokenCooldownMs'
  | 'tokenCooldownMaxMs'
  | 'unknownCodeRetries'
  | 'settingBody'
  | 'requestTimeoutMs'
> {
  const platformKey = optional(env, 'EXPEED_PLATFORM_KEY');
  const secretKey = optional(env, 'EXPEED_SECRET_KEY');
  if ((platformKey === undefined) !== (secretKey === undefined)) {
    throw new ConfigError(
      platformKey === undefined ? 'EXPEED_PLATFORM_KEY' : 'EXPEED_SECRET_KEY',
      'EXPEED_PLATFORM_KEY and EXPEED_SECRET_KEY must be set together',
    );
  }
  const tokenDailyLimit = int(env, 'EXPEED_TOKEN_DAILY_LIMIT', PLATFORM_DEFAULTS.tokenDailyLimit, 1);
  const tokenReserve = int(
    env,
    'EXPEED_TOKEN_RESERVE',
    Math.min(PLATFORM_DEFAULTS.tokenReserve, tokenDailyLimit - 1),
    0,
  );
  if (tokenReserve >= tokenDailyLimit) {
    throw new ConfigError(
      'EXPEED_TOKEN_RESERVE',
      `must be below EXPEED_TOKEN_DAILY_LIMIT (${tokenDailyLimit}), got ${tokenReserve}`,
    );
  }
  const tokenCooldownMs = duration(env, 'EXPEED_TOKEN_COOLDOWN', 15 * 60_000);
  const tokenCooldownMaxMs = duration(env, 'EXPEED_TOKEN_COOLDOWN_MAX', Math.max(4 * 3_600_000, tokenCooldownMs));
  if (tokenCooldownMaxMs < tokenCooldownMs) {
    throw new ConfigError(
      'EXPEED_TOKEN_COOLDOWN_MAX',
      `must not be shorter than EXPEED_TOKEN_COOLDOWN (${tokenCooldownMs} ms), got ${tokenCooldownMaxMs} ms`,
    );
  }
  const settingBody = str(env, 'EXPEED_SETTING_BODY', 'bare').toLowerCase();
  if (settingBody !== 'bare' && settingBody !== 'data') {
    throw new ConfigError(
      'EXPEED_SETTING_BODY',
      `expected bare (the settings object) or data ({"data": settings}), got "${settingBody}"`,
    );
  }
  return {
    baseUrl: url(env, 'EXPEED_BASE_URL', 'https://api.iot-expeed.com', ['http:', 'https:']),
    platformKey,
    secretKey,
    timezone: timezone(env, 'EXPEED_TIMEZONE', PLATFORM_DEFAULTS.timezone),
    tokenDailyLimit,
    tokenReserve,
    tokenCooldownMs,
    tokenCooldownMaxMs,
    unknownCodeRetries: int(env, 'EXPEED_UNKNOWN_CODE_RETRIES', 3, 0, 20),
    settingBody,
    requestTimeoutMs: duration(env, 'EXPEED_REQUEST_TIMEOUT', 30_000),
  };
}

type PullConfig = Pick<
  Config,
  | 'devicesFile'
  | 'backfillStart'
  | 'backfillWindowMs'
  | 'pageLimit'
  | 'platformRateLimit'
  | 'workerConcurrency'
  | 'catchUpThresholdMs'
  | 'settingTimeoutMs'
  | 'rollupSettleMs'
  | 'lookbackMs'
  | 'reconnectSettleMs'
>;

/** Pulling and the work that follows it: devices, backfill windows, pages, rate, workers, rollup settle, lookback, reconnects. */
function pullConfig(env: Env, now: number): PullConfig {
  return {
    devicesFile: optional(env, 'EXPEED_DEVICES_FILE'),
    backfillStart: instant(env, 'EXPEED_BACKFILL_START', now - 30 * DAY_MS, now),
    backfillWindowMs: duration(env, 'EXPEED_BACKFILL_WINDOW', DAY_MS),
    pageLimit: int(env, 'EXPEED_PAGE_LIMIT', PLATFORM_DEFAULTS.historyPageMax, 1, PLATFORM_DEFAULTS.historyPageMax),
    platformRateLimit: int(env, 'EXPEED_RATE_LIMIT', PLATFORM_DEFAULTS.requestRate, 1),
    workerConcurrency: int(env, 'WORKER_CONCURRENCY', 4, 1, 256),
    catchUpThresholdMs: duration(env, 'EXPEED_CATCHUP_AFTER', 15 * 60_000),
    settingTimeoutMs: duration(env, 'EXPEED_SETTING_TIMEOUT', 5 * 60_000),
    rollupSettleMs: duration(env, 'EXPEED_ROLLUP_SETTLE', 5 * 60_000),
    lookbackMs: optional(env, 'EXPEED_LOOKBACK') === '0' ? 0 : duration(env, 'EXPEED_LOOKBACK', 2 * DAY_MS),
    reconnectSettleMs: duration(env, 'EXPEED_RECONNECT_SETTLE', 10 * 60_000),
  };
}

/** The webhook server: where it listens, what it accepts, when it refuses pushes. */
function webhookConfig(env: Env): Config['webhook'] {
  const path = str(env, 'WEBHOOK_PATH', '/webhook');
  if (!path.startsWith('/')) throw new ConfigError('WEBHOOK_PATH', `must start with "/", got "${path}"`);
  return {
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
    redisMemoryPercent: int(env, 'WEBHOOK_REDIS_MEMORY_PERCENT', 80, 1, 100),
    maxBacklog: int(env, 'WEBHOOK_MAX_BACKLOG', 0, 0),
  };
}

function deadLetterConfig(env: Env): Config['deadLetters'] {
  return {
    maxBytes: int(env, 'EXPEED_DEAD_LETTER_MAX_BYTES', 256 * 1024 * 1024, 1024),
    maxRawBytes: int(env, 'EXPEED_DEAD_LETTER_MAX_RAW_BYTES', 64 * 1024, 256),
  };
}

/** Redis: one server or a cluster (database 0 only), and the key prefix (in a hash tag on a cluster). */
function redisConfig(env: Env): Pick<Config, 'redisUrl' | 'redisClusterNodes' | 'prefix' | 'prefixWrapped'> {
  const givenPrefix = str(env, 'EXPEED_PREFIX', 'expeed');
  if (/[\s:]/.test(givenPrefix))
    throw new ConfigError('EXPEED_PREFIX', `must not contain spaces or ":", got "${givenPrefix}"`);
  const redisClusterNodes = clusterNodes('REDIS_CLUSTER_NODES', optional(env, 'REDIS_CLUSTER_NODES'));
  const prefix = redisClusterNodes ? clusterPrefix(givenPrefix) : givenPrefix;
  const redisUrl = url(env, 'REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:']);
  if (redisClusterNodes && !['', '/', '/0'].includes(new URL(redisUrl).pathname)) {
    throw new ConfigError(
      'REDIS_URL',
      `a Redis Cluster has only database 0; REDIS_URL names database "${new URL(redisUrl).pathname.slice(1)}" while REDIS_CLUSTER_NODES is set`,
    );
  }
  return { redisUrl, redisClusterNodes, prefix, prefixWrapped: prefix !== givenPrefix };
}

function schedulesConfig(env: Env): Config['schedules'] {
  return {
    nightly: cron(env, 'EXPEED_SCHEDULE_NIGHTLY', '0 2 * * *'),
    status: cron(env, 'EXPEED_SCHEDULE_STATUS', '*/5 * * * *'),
    gaps: cron(env, 'EXPEED_SCHEDULE_GAPS', '17 * * * *'),
    verify: cron(env, 'EXPEED_SCHEDULE_VERIFY', '30 3 * * 0'),
  };
}

/** The process: admin credentials (set in pairs), log level, V8 heap, start-up timeouts. */
function processConfig(
  env: Env,
): Pick<
  Config,
  'admin' | 'logLevel' | 'heapGrowthPercent' | 'semiSpaceMb' | 'redisConnectTimeoutMs' | 'influxStartTimeoutMs'
> {
  const logLevel = str(env, 'LOG_LEVEL', 'info').toLowerCase();
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', `expected one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }
  const adminUser = optional(env, 'ADMIN_USER');
  const adminPassword = optional(env, 'ADMIN_PASSWORD');
  if ((adminUser === undefined) !== (adminPassword === undefined)) {
    throw new ConfigError(
      adminUser === undefined ? 'ADMIN_USER' : 'ADMIN_PASSWORD',
      'ADMIN_USER and ADMIN_PASSWORD must be set together',
    );
  }
  return {
    admin: adminUser && adminPassword ? { user: adminUser, password: adminPassword } : undefined,
    logLevel,
    heapGrowthPercent: int(env, 'EXPEED_HEAP_GROWTH_PERCENT', DEFAULT_HEAP_GROWTH_PERCENT, 0, 1000),
    semiSpaceMb:
      optional(env, 'EXPEED_SEMI_SPACE_MB') === undefined ? undefined : int(env, 'EXPEED_SEMI_SPACE_MB', 0, 0, 256),
    redisConnectTimeoutMs: duration(env, 'EXPEED_REDIS_CONNECT_TIMEOUT', DEFAULT_REDIS_CONNECT_TIMEOUT_MS),
    influxStartTimeoutMs: duration(env, 'EXPEED_INFLUX_START_TIMEOUT', DEFAULT_INFLUX_START_TIMEOUT_MS),
  };
}

/** Every section read in turn; the first variable that is wrong throws its ConfigError. */
export function loadConfig(env: Env = process.env, now = Date.now()): Config {
  const platform = platformConfig(env);
  const pull = pullConfig(env, now);
  const webhook = webhookConfig(env);
  const deadLetters = deadLetterConfig(env);
  const redis = redisConfig(env);
  return {
    ...platform,
    ...pull,
    webhook,
    deadLetters,
    ...redis,
    influx: influxConfig(env, pull),
    schedules: schedulesConfig(env),
    ...processConfig(env),
  };
}
