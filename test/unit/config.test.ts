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
});
