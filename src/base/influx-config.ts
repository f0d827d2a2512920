/**
 * The InfluxDB section of the configuration: where (a URL without credentials), which API, the
 * database, and the retentions, each long enough for the rollups built from what it keeps.
 */
import { ConfigError, DEFAULT_NUMERIC_STRINGS, type Config } from './config.js';
import { duration, optional, str, url, type Env } from './env-readers.js';

const DAY_MS = 86_400_000;

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
    throw new ConfigError(
      name,
      `must be at least ${Math.ceil(floor / 3_600_000)}h (1d, and longer than EXPEED_ROLLUP_SETTLE + EXPEED_BACKFILL_WINDOW + 1h), got "${optional(env, name)}"`,
    );
  }
  return ms;
}

/**
 * EXPEED_HOURLY_RETENTION: empty = off (hourly rollups kept forever). A day is built from its
 * hours once they have settled, so they must outlive a day and the settle time.
 */
function hourlyRetention(env: Env, settleMs: number): number | undefined {
  const name = 'EXPEED_HOURLY_RETENTION';
  if (optional(env, name) === undefined) return undefined;
  const ms = duration(env, name, 0);
  const floor = Math.max(2 * DAY_MS, settleMs + DAY_MS + 3_600_000);
  if (ms < floor) {
    throw new ConfigError(
      name,
      `must be at least ${Math.ceil(floor / 3_600_000)}h (2d, and longer than 1d + EXPEED_ROLLUP_SETTLE + 1h), got "${optional(env, name)}"`,
    );
  }
  return ms;
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

/** InfluxDB: where, which API, and the retentions (long enough for the rollups of `pull`'s settle and windows). */
export function influxConfig(env: Env, pull: Pick<Config, 'rollupSettleMs' | 'backfillWindowMs'>): Config['influx'] {
  const api = str(env, 'INFLUX_API', 'auto').toLowerCase();
  if (api !== 'auto' && api !== 'v1' && api !== 'v2') {
    throw new ConfigError('INFLUX_API', `expected auto, v1 or v2, got "${api}"`);
  }
  const numericStrings = str(env, 'EXPEED_NUMERIC_STRINGS', DEFAULT_NUMERIC_STRINGS).toLowerCase();
  if (numericStrings !== 'number' && numericStrings !== 'string') {
    throw new ConfigError(
      'EXPEED_NUMERIC_STRINGS',
      `expected number (a numeric string such as "21.5" is written as a float) or string (kept as it came), got "${numericStrings}"`,
    );
  }
  return {
    url: influxUrl(env),
    api,
    bucket: str(env, 'INFLUX_BUCKET', 'expeed'),
    org: optional(env, 'INFLUX_ORG'),
    token: optional(env, 'INFLUX_TOKEN'),
    rawRetentionMs: rawRetention(env, pull.rollupSettleMs, pull.backfillWindowMs),
    hourlyRetentionMs: hourlyRetention(env, pull.rollupSettleMs),
    numericStrings,
  };
}
