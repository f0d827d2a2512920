/**
 * Range arguments are bounded, as the real executable: a `--to` in the future is capped at now
 * and the command says so; a range that would queue too many windows is refused with one line
 * before anything is queued.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Queue } from 'bullmq';
import { createRedis } from '../../src/base/redis.js';
import { deleteRedisPrefix, INFLUX_URL, REDIS_URL, testPrefix } from '../helpers/services.js';
import { runCli } from '../helpers/cli.js';
import { testEnv } from '../fixtures/pull-env.js';

describe('range bounds', () => {
  const prefix = testPrefix('range');
  let env: Record<string, string>;
  const redis = createRedis(REDIS_URL);
  const backfills = new Queue('backfill', { connection: redis, prefix });

  beforeAll(async () => {
    env = testEnv({
      simUrl: 'http://127.0.0.1:9',
      prefix,
      db: 'range_unused',
      influxUrl: INFLUX_URL,
      env: { LOG_LEVEL: 'warn' },
    });
    const add = await runCli(['devices', 'add', 'dev-1', '--key', 'k-1'], env);
    expect(add.code, add.stderr).toBe(0);
  });

  afterAll(async () => {
    await backfills.close();
    await redis.quit();
    await deleteRedisPrefix(prefix);
  });

  test('backfill --to 9999-01-01 is capped at now, says so, and queues the two days up to now', async () => {
    const from = new Date(Date.now() - 36 * 3_600_000).toISOString();
    const r = await runCli(['backfill', '--device', 'dev-1', '--from', from, '--to', '9999-01-01'], env, {
      timeoutMs: 30_000,
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^--to 9999-01-01 is later than now: capped at \d{4}-\d\d-\d\dT[\d:.]+Z\n/);
    const windows = await backfills.getJobs(['waiting', 'delayed', 'prioritized']);
    expect(windows.length).toBeGreaterThanOrEqual(2);
    expect(windows.length).toBeLessThanOrEqual(3);
    expect(Math.max(...windows.map((j) => j.data.to))).toBeLessThanOrEqual(Date.now());
    expect(r.stdout).toContain(`queued ${windows.length} backfill window(s) for 1 device(s)`);
  });

  test('a range of thousands of years is refused with one line, and nothing more is queued', async () => {
    const before = (await backfills.getJobs(['waiting', 'delayed', 'prioritized'])).length;
    const r = await runCli(['backfill', '--device', 'dev-1', '--from', '0100-01-01'], env, { timeoutMs: 30_000 });
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(
      /range too large: device dev-1 from \S+ to \S+ is [\d,]+ backfill windows, more than the 3,660 one command takes per device; nothing was queued/,
    );
    expect((await backfills.getJobs(['waiting', 'delayed', 'prioritized'])).length).toBe(before);
  });

  test('gaps and rollup refuse a huge range too, before touching InfluxDB', async () => {
    const gaps = await runCli(['gaps', '--device', 'dev-1', '--from', '2000-01-01'], env, { timeoutMs: 30_000 });
    expect(gaps.stderr).toMatch(
      /range too large: device dev-1 from \S+ to \S+ is [\d,]+ days, more than the 366 one command takes per device/,
    );
    const rollup = await runCli(['rollup', '--device', 'dev-1', '--from', '1900-01-01'], env, { timeoutMs: 30_000 });
    expect(rollup.stderr).toMatch(
      /range too large: device dev-1 from \S+ to \S+ is [\d,]+ hours, more than the 87,840 one command takes per device/,
    );
  });

  test('verify caps --to at now with a line, and refuses a huge range with one line before reading anything', async () => {
    // the platform address is unreachable: a verify that began its work would fail on a request instead
    const r = await runCli(['verify', '--device', 'dev-1', '--from', '2000-01-01', '--to', '9999-01-01'], env, {
      timeoutMs: 30_000,
    });
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/^--to 9999-01-01 is later than now: capped at \d{4}-\d\d-\d\dT[\d:.]+Z\n$/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(
      /range too large: device dev-1 from \S+ to \S+ is [\d,]+ hours, more than the 8,784 one command takes per device; nothing was queued/,
    );
    // --json keeps stdout for the one JSON document: the capping line goes to stderr
    const json = await runCli(
      ['verify', '--device', 'dev-1', '--from', '2000-01-01', '--to', '9999-01-01', '--json'],
      env,
      { timeoutMs: 30_000 },
    );
    expect(json.code).toBe(2);
    expect(json.stdout).toBe('');
    const lines = json.stderr.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^--to 9999-01-01 is later than now: capped at \d{4}-\d\d-\d\dT[\d:.]+Z$/);
    expect(lines[1]).toMatch(/range too large: device dev-1 .* hours, more than the 8,784/);
  });
});
