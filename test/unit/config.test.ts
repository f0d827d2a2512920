import { describe, expect, test } from 'vitest';
import { ConfigError, DEFAULT_HEAP_GROWTH_PERCENT, DEFAULT_NUMERIC_STRINGS, secretsOf } from '../../src/base/config.js';
import { loadConfig } from '../../src/base/load-config.js';
import { parseDuration } from '../../src/base/env-readers.js';

const NOW = Date.UTC(2026, 10, 26, 0, 0, 0);

describe('loadConfig', () => {
  test('defaults follow the interface', () => {
    const c = loadConfig({}, NOW);
    expect(c.baseUrl).toBe('https://api.iot-expeed.com');
    expect(c.timezone).toBe('Asia/Shanghai');
    expect(c.tokenDailyLimit).toBe(200);
    expect(c.tokenReserve).toBe(10);
    expect(c.backfillStart).toBe(NOW - 30 * 86_400_000);
    expect(c.webhook).toMatchObject({ host: '127.0.0.1', port: 8780, path: '/webhook', bodyLimit: 5 * 1024 * 1024 });
    expect(c.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(c.prefix).toBe('expeed');
    expect(c.influx).toEqual({
      url: 'http://127.0.0.1:8086',
      api: 'auto',
      bucket: 'expeed',
      org: undefined,
      token: undefined,
      numericStrings: 'number',
    });
    expect(c.schedules).toEqual({
      nightly: '0 2 * * *',
      status: '*/5 * * * *',
      gaps: '17 * * * *',
      verify: '30 3 * * 0',
    });
    expect(c.lookbackMs).toBe(2 * 86_400_000);
    expect(loadConfig({ EXPEED_LOOKBACK: '0' }, NOW).lookbackMs).toBe(0);
    expect(c.reconnectSettleMs).toBe(10 * 60_000);
    expect(loadConfig({ EXPEED_RECONNECT_SETTLE: '90s' }, NOW).reconnectSettleMs).toBe(90_000);
    expect(c.admin).toBeUndefined();
    expect(c.logLevel).toBe('info');
    expect(c.heapGrowthPercent).toBe(DEFAULT_HEAP_GROWTH_PERCENT);
    expect(c.semiSpaceMb).toBeUndefined(); // chosen by the roles of `run`
  });

  test('the webhook timestamp window takes seconds or a duration, and 0 turns it off', () => {
    expect(loadConfig({}, NOW).webhook.timestampWindowSec).toBe(300);
    expect(loadConfig({ WEBHOOK_TIMESTAMP_WINDOW: '0' }, NOW).webhook.timestampWindowSec).toBe(0);
    expect(loadConfig({ WEBHOOK_TIMESTAMP_WINDOW: '120' }, NOW).webhook.timestampWindowSec).toBe(120);
    expect(loadConfig({ WEBHOOK_TIMESTAMP_WINDOW: '10m' }, NOW).webhook.timestampWindowSec).toBe(600);
    expect(() => loadConfig({ WEBHOOK_TIMESTAMP_WINDOW: '-5' }, NOW)).toThrow(/^WEBHOOK_TIMESTAMP_WINDOW: /);
    expect(() => loadConfig({ WEBHOOK_TIMESTAMP_WINDOW: '1500ms' }, NOW)).toThrow(
      /^WEBHOOK_TIMESTAMP_WINDOW: expected whole seconds/,
    );
  });

  test('webhook timeouts, connection cap and the dead-letter budget have bounded defaults and are validated', () => {
    const c = loadConfig({}, NOW);
    expect(c.webhook).toMatchObject({ requestTimeoutMs: 30_000, idleTimeoutMs: 10_000, maxConnections: 1000 });
    expect(c.deadLetters).toEqual({ maxBytes: 256 * 1024 * 1024, maxRawBytes: 64 * 1024 });
    const set = loadConfig(
      {
        WEBHOOK_REQUEST_TIMEOUT: '5s',
        WEBHOOK_IDLE_TIMEOUT: '2s',
        WEBHOOK_MAX_CONNECTIONS: '50',
        EXPEED_DEAD_LETTER_MAX_BYTES: '1048576',
        EXPEED_DEAD_LETTER_MAX_RAW_BYTES: '4096',
      },
      NOW,
    );
    expect(set.webhook).toMatchObject({ requestTimeoutMs: 5000, idleTimeoutMs: 2000, maxConnections: 50 });
    expect(set.deadLetters).toEqual({ maxBytes: 1_048_576, maxRawBytes: 4096 });
    expect(() => loadConfig({ WEBHOOK_REQUEST_TIMEOUT: '0' }, NOW)).toThrow(/^WEBHOOK_REQUEST_TIMEOUT: /);
    expect(() => loadConfig({ WEBHOOK_MAX_CONNECTIONS: '0' }, NOW)).toThrow(/^WEBHOOK_MAX_CONNECTIONS: /);
    expect(() => loadConfig({ EXPEED_DEAD_LETTER_MAX_BYTES: '10MB' }, NOW)).toThrow(/^EXPEED_DEAD_LETTER_MAX_BYTES: /);
  });

  test('the heap growth takes 0 (V8 default) to 1000 percent', () => {
    expect(loadConfig({ EXPEED_HEAP_GROWTH_PERCENT: '0' }, NOW).heapGrowthPercent).toBe(0);
    expect(loadConfig({ EXPEED_HEAP_GROWTH_PERCENT: '20' }, NOW).heapGrowthPercent).toBe(20);
  });

  test('the young generation takes 0 (V8 default) to 256 MB; empty leaves the choice to the roles', () => {
    expect(loadConfig({ EXPEED_SEMI_SPACE_MB: '0' }, NOW).semiSpaceMb).toBe(0);
    expect(loadConfig({ EXPEED_SEMI_SPACE_MB: '64' }, NOW).semiSpaceMb).toBe(64);
    expect(loadConfig({ EXPEED_SEMI_SPACE_MB: ' ' }, NOW).semiSpaceMb).toBeUndefined();
  });

  test('token cool-down, unknown-code retries and the setting body', () => {
    expect(loadConfig({}, NOW)).toMatchObject({
      tokenCooldownMs: 15 * 60_000,
      tokenCooldownMaxMs: 4 * 3_600_000,
      unknownCodeRetries: 3,
      settingBody: 'bare',
    });
    const c = loadConfig(
      { EXPEED_TOKEN_COOLDOWN: '5h', EXPEED_UNKNOWN_CODE_RETRIES: '0', EXPEED_SETTING_BODY: 'DATA' },
      NOW,
    );
    // a first pause longer than the default maximum raises the maximum with it
    expect(c).toMatchObject({
      tokenCooldownMs: 5 * 3_600_000,
      tokenCooldownMaxMs: 5 * 3_600_000,
      unknownCodeRetries: 0,
      settingBody: 'data',
    });
  });

  test('numeric strings are written as floats unless EXPEED_NUMERIC_STRINGS=string', () => {
    expect(loadConfig({}, NOW).influx.numericStrings).toBe(DEFAULT_NUMERIC_STRINGS);
    expect(DEFAULT_NUMERIC_STRINGS).toBe('number');
    expect(loadConfig({ EXPEED_NUMERIC_STRINGS: 'String' }, NOW).influx.numericStrings).toBe('string');
    expect(loadConfig({ EXPEED_NUMERIC_STRINGS: 'number' }, NOW).influx.numericStrings).toBe('number');
  });

  test('an empty schedule disables it', () => {
    expect(loadConfig({ EXPEED_SCHEDULE_GAPS: '' }, NOW).schedules.gaps).toBeUndefined();
  });

  test.each([
    [{ EXPEED_TOKEN_DAILY_LIMIT: 'abc' }, 'EXPEED_TOKEN_DAILY_LIMIT', 'whole number'],
    [{ EXPEED_TOKEN_DAILY_LIMIT: '0' }, 'EXPEED_TOKEN_DAILY_LIMIT', 'between 1'],
    [{ WEBHOOK_PORT: '70000' }, 'WEBHOOK_PORT', 'between 0 and 65535'],
    [{ EXPEED_BASE_URL: 'not a url' }, 'EXPEED_BASE_URL', 'not a valid URL'],
    [{ REDIS_URL: 'http://x' }, 'REDIS_URL', 'redis: or rediss:'],
    [{ EXPEED_TIMEZONE: 'Mars/Olympus' }, 'EXPEED_TIMEZONE', 'unknown time zone'],
    [{ INFLUX_API: 'v3' }, 'INFLUX_API', 'auto, v1 or v2'],
    [{ EXPEED_SCHEDULE_NIGHTLY: 'every night' }, 'EXPEED_SCHEDULE_NIGHTLY', 'cron'],
    [{ EXPEED_PLATFORM_KEY: 'k' }, 'EXPEED_SECRET_KEY', 'set together'],
    [{ ADMIN_USER: 'u' }, 'ADMIN_PASSWORD', 'set together'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL', 'one of'],
    [{ WEBHOOK_PATH: 'hook' }, 'WEBHOOK_PATH', 'start with'],
    [{ EXPEED_PREFIX: 'a b' }, 'EXPEED_PREFIX', 'must not contain'],
    [{ EXPEED_BACKFILL_START: 'yesterday' }, 'EXPEED_BACKFILL_START', 'ISO 8601'],
    [{ EXPEED_TOKEN_RESERVE: '200' }, 'EXPEED_TOKEN_RESERVE', 'below'],
    [{ WEBHOOK_REQUIRE_SIGNATURE: 'maybe' }, 'WEBHOOK_REQUIRE_SIGNATURE', 'true or false'],
    [{ EXPEED_HEAP_GROWTH_PERCENT: '20%' }, 'EXPEED_HEAP_GROWTH_PERCENT', 'whole number'],
    [{ EXPEED_HEAP_GROWTH_PERCENT: '-5' }, 'EXPEED_HEAP_GROWTH_PERCENT', 'between 0 and 1000'],
    [{ EXPEED_SEMI_SPACE_MB: '32MB' }, 'EXPEED_SEMI_SPACE_MB', 'whole number'],
    [{ EXPEED_SEMI_SPACE_MB: '1024' }, 'EXPEED_SEMI_SPACE_MB', 'between 0 and 256'],
    [{ EXPEED_TOKEN_COOLDOWN: 'soon' }, 'EXPEED_TOKEN_COOLDOWN', 'duration'],
    [
      { EXPEED_TOKEN_COOLDOWN: '1h', EXPEED_TOKEN_COOLDOWN_MAX: '30m' },
      'EXPEED_TOKEN_COOLDOWN_MAX',
      'not be shorter than EXPEED_TOKEN_COOLDOWN',
    ],
    [{ EXPEED_UNKNOWN_CODE_RETRIES: '-1' }, 'EXPEED_UNKNOWN_CODE_RETRIES', 'between 0 and 20'],
    [{ EXPEED_SETTING_BODY: 'wrapped' }, 'EXPEED_SETTING_BODY', 'bare'],
    [{ EXPEED_NUMERIC_STRINGS: 'float' }, 'EXPEED_NUMERIC_STRINGS', 'expected number'],
    [{ EXPEED_ROLLUP_SETTLE: 'soon' }, 'EXPEED_ROLLUP_SETTLE', 'duration'],
    [{ EXPEED_ROLLUP_SETTLE: '0' }, 'EXPEED_ROLLUP_SETTLE', 'duration'],
  ])('%o is refused naming %s', (env, variable, problem) => {
    let error: unknown;
    try {
      loadConfig(env as Record<string, string>, NOW);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(variable);
    expect((error as Error).message).toContain(variable);
    expect((error as Error).message).toContain(problem);
  });

  test('backfill start takes ISO times and durations', () => {
    expect(loadConfig({ EXPEED_BACKFILL_START: '7d' }, NOW).backfillStart).toBe(NOW - 7 * 86_400_000);
    expect(loadConfig({ EXPEED_BACKFILL_START: '2026-01-01T00:00:00Z' }, NOW).backfillStart).toBe(Date.UTC(2026, 0, 1));
  });

  test('the rollup settle delay defaults to 5 minutes', () => {
    expect(loadConfig({}, NOW).rollupSettleMs).toBe(300_000);
    expect(loadConfig({ EXPEED_ROLLUP_SETTLE: '30s' }, NOW).rollupSettleMs).toBe(30_000);
  });

  test('secrets are collected for redaction', () => {
    const c = loadConfig({ EXPEED_PLATFORM_KEY: 'pk-123', EXPEED_SECRET_KEY: 'sk-456', INFLUX_TOKEN: 'tok-789' }, NOW);
    expect(secretsOf(c).sort()).toEqual(['pk-123', 'sk-456', 'tok-789']);
  });

  test.each([
    ['99 99 99 99 99', 'invalid expression for minute'],
    ['*/0 * * * *', '*/0 is a invalid expression for minute'],
    ['61 * * * *', '61 is a invalid expression for minute'],
    // 31 February never comes: the schedule would never fire
    ['0 0 31 2 *', 'impossible day of month'],
    ['0 0 30,31 2 *', 'impossible day of month'],
  ])('cron "%s" is refused at load, naming the variable', (expr, why) => {
    for (const variable of ['EXPEED_SCHEDULE_NIGHTLY', 'EXPEED_SCHEDULE_STATUS', 'EXPEED_SCHEDULE_GAPS']) {
      expect(() => loadConfig({ [variable]: expr }, NOW)).toThrow(
        new RegExp(`^${variable}: invalid cron expression .*${why.replace(/[*]/g, '\\*')}`),
      );
    }
  });

  test('valid cron expressions pass, including ones that fire only in leap years or some months', () => {
    const c = loadConfig(
      {
        EXPEED_SCHEDULE_NIGHTLY: '0 0 29 2 *',
        EXPEED_SCHEDULE_GAPS: '0 0 31 */2 *',
        EXPEED_SCHEDULE_STATUS: '*/10 * * * * *',
      },
      NOW,
    );
    expect(c.schedules).toEqual({
      nightly: '0 0 29 2 *',
      gaps: '0 0 31 */2 *',
      status: '*/10 * * * * *',
      verify: '30 3 * * 0',
    });
  });

  test('INFLUX_URL with a user or password is refused, naming INFLUX_TOKEN, without printing the password', () => {
    let error: unknown;
    try {
      loadConfig({ INFLUX_URL: 'http://admin:influx-pw-77@influx.local:8086' }, NOW);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe('INFLUX_URL');
    expect((error as Error).message).toContain('INFLUX_TOKEN');
    expect((error as Error).message).not.toContain('influx-pw-77');
    expect(() => loadConfig({ INFLUX_URL: 'http://admin@influx.local:8086' }, NOW)).toThrow(/INFLUX_TOKEN/);
  });

  test('the Redis password is a secret, also in the error of an invalid REDIS_URL', () => {
    const c = loadConfig({ REDIS_URL: 'redis://:redis%40pw-5@127.0.0.1:6379' }, NOW);
    expect(secretsOf(c)).toContain('redis@pw-5');
    expect(() => loadConfig({ REDIS_URL: 'redis://:redis-pw-6@127.0.0.1:notaport' }, NOW)).toThrow(/REDIS_URL/);
    expect(() => loadConfig({ REDIS_URL: 'redis://:redis-pw-6@127.0.0.1:notaport' }, NOW)).not.toThrow(/redis-pw-6/);
  });

  test('connect and start timeouts: defaults and durations', () => {
    expect(loadConfig({}, NOW)).toMatchObject({ redisConnectTimeoutMs: 10_000, influxStartTimeoutMs: 30_000 });
    expect(loadConfig({ EXPEED_REDIS_CONNECT_TIMEOUT: '2s', EXPEED_INFLUX_START_TIMEOUT: '1m' }, NOW)).toMatchObject({
      redisConnectTimeoutMs: 2000,
      influxStartTimeoutMs: 60_000,
    });
    expect(() => loadConfig({ EXPEED_REDIS_CONNECT_TIMEOUT: 'soon' }, NOW)).toThrow(/^EXPEED_REDIS_CONNECT_TIMEOUT: /);
    expect(() => loadConfig({ EXPEED_INFLUX_START_TIMEOUT: '0' }, NOW)).toThrow(/^EXPEED_INFLUX_START_TIMEOUT: /);
  });

  test.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['15m', 900_000],
    ['2h', 7_200_000],
    ['1d', 86_400_000],
    ['250', 250],
    ['x', undefined],
  ])('parseDuration(%s) = %s', (raw, ms) => {
    expect(parseDuration(raw)).toBe(ms);
  });

  describe('REDIS_CLUSTER_NODES', () => {
    test('a cluster is off by default, and the prefix is kept as given', () => {
      const c = loadConfig({}, NOW);
      expect(c.redisClusterNodes).toBeUndefined();
      expect(c.prefixWrapped).toBe(false);
    });

    test('nodes are parsed; a plain prefix gets a hash tag, one with a tag is kept', () => {
      const c = loadConfig({ REDIS_CLUSTER_NODES: ' redis-a:7001, 10.0.0.2:7002,[::1]:7003 ' }, NOW);
      expect(c.redisClusterNodes).toEqual([
        { host: 'redis-a', port: 7001 },
        { host: '10.0.0.2', port: 7002 },
        { host: '::1', port: 7003 },
      ]);
      expect(c.prefix).toBe('{expeed}');
      expect(c.prefixWrapped).toBe(true);
      expect(loadConfig({ REDIS_CLUSTER_NODES: 'h:1', EXPEED_PREFIX: 'site-b' }, NOW).prefix).toBe('{site-b}');
      const tagged = loadConfig({ REDIS_CLUSTER_NODES: 'h:1', EXPEED_PREFIX: 'prod{expeed}' }, NOW);
      expect(tagged.prefix).toBe('prod{expeed}');
      expect(tagged.prefixWrapped).toBe(false);
      // an empty tag hashes the whole key: it is no tag
      expect(loadConfig({ REDIS_CLUSTER_NODES: 'h:1', EXPEED_PREFIX: 'x{}' }, NOW).prefix).toBe('{x{}}');
    });

    test('bad entries and a database other than 0 are refused, naming the variable and not the password', () => {
      for (const bad of ['redis-a', 'redis-a:', 'redis-a:0', 'redis-a:70000', 'a:1,,b:2', 'redis://a:1']) {
        expect(() => loadConfig({ REDIS_CLUSTER_NODES: bad }, NOW)).toThrow(
          /^REDIS_CLUSTER_NODES: expected host:port,host:port/,
        );
      }
      const env = { REDIS_CLUSTER_NODES: 'h:7001', REDIS_URL: 'redis://:redis-pw-9@h:7001/2' };
      expect(() => loadConfig(env, NOW)).toThrow(/^REDIS_URL: a Redis Cluster has only database 0/);
      expect(() => loadConfig(env, NOW)).not.toThrow(/redis-pw-9/);
      expect(loadConfig({ ...env, REDIS_URL: 'rediss://:redis-pw-9@h:7001/0' }, NOW).redisClusterNodes).toHaveLength(1);
    });
  });
});
