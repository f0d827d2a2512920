import { describe, expect, test } from 'vitest';
import { ConfigError, DEFAULT_HEAP_GROWTH_PERCENT, loadConfig, parseDuration, secretsOf } from '../../src/config.js';

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
    expect(c.influx).toEqual({ url: 'http://127.0.0.1:8086', api: 'auto', bucket: 'expeed', org: undefined, token: undefined });
    expect(c.schedules).toEqual({ nightly: '0 2 * * *', status: '*/5 * * * *', gaps: '17 * * * *' });
    expect(c.admin).toBeUndefined();
    expect(c.logLevel).toBe('info');
    expect(c.heapGrowthPercent).toBe(DEFAULT_HEAP_GROWTH_PERCENT);
    expect(c.semiSpaceMb).toBeUndefined(); // chosen by the roles of `run`
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
      expect(() => loadConfig({ [variable]: expr }, NOW)).toThrow(new RegExp(`^${variable}: invalid cron expression .*${why.replace(/[*]/g, '\\*')}`));
    }
  });

  test('valid cron expressions pass, including ones that fire only in leap years or some months', () => {
    const c = loadConfig({ EXPEED_SCHEDULE_NIGHTLY: '0 0 29 2 *', EXPEED_SCHEDULE_GAPS: '0 0 31 */2 *', EXPEED_SCHEDULE_STATUS: '*/10 * * * * *' }, NOW);
    expect(c.schedules).toEqual({ nightly: '0 0 29 2 *', gaps: '0 0 31 */2 *', status: '*/10 * * * * *' });
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
    expect(loadConfig({ EXPEED_REDIS_CONNECT_TIMEOUT: '2s', EXPEED_INFLUX_START_TIMEOUT: '1m' }, NOW)).toMatchObject({ redisConnectTimeoutMs: 2000, influxStartTimeoutMs: 60_000 });
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
        expect(() => loadConfig({ REDIS_CLUSTER_NODES: bad }, NOW)).toThrow(/^REDIS_CLUSTER_NODES: expected host:port,host:port/);
      }
      const env = { REDIS_CLUSTER_NODES: 'h:7001', REDIS_URL: 'redis://:redis-pw-9@h:7001/2' };
      expect(() => loadConfig(env, NOW)).toThrow(/^REDIS_URL: a Redis Cluster has only database 0/);
      expect(() => loadConfig(env, NOW)).not.toThrow(/redis-pw-9/);
      expect(loadConfig({ ...env, REDIS_URL: 'rediss://:redis-pw-9@h:7001/0' }, NOW).redisClusterNodes).toHaveLength(1);
    });
  });
});
