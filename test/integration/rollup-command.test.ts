/**
 * `expeed-sync rollup` builds the rollups (hourly, then daily) of history written before rollups
 * existed (no dirty marks), as the real executable, and leaves the open hour alone.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestDatabase, deleteRedisPrefix, INFLUX_URL, influxRows, testPrefix } from '../helpers/services.js';
import { runCli } from '../helpers/cli.js';
import { testEnv } from '../fixtures/pull-env.js';
import { dayDiffs, rollupDiffs } from '../fixtures/rollup-check.js';
import { platformDay } from '../../src/platform/timestamp.js';
import { RedisDeadLetterStore } from '../../src/dead-letters/store.js';
import { DirtyHours } from '../../src/rollup/dirty-hours.js';
import { createRedis } from '../../src/base/redis.js';
import { REDIS_URL } from '../helpers/services.js';

const HOUR = 3_600_000;
const NOW_HOUR = Math.floor(Date.now() / HOUR) * HOUR;
const FROM = NOW_HOUR - 30 * HOUR + 17 * 60_000;

describe('expeed-sync rollup', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  const prefix = testPrefix('rcmd');
  let env: Record<string, string>;

  beforeAll(async () => {
    db = await createTestDatabase('rcmd');
    env = testEnv({
      simUrl: 'http://127.0.0.1:9',
      prefix,
      db: db.name,
      influxUrl: INFLUX_URL,
      env: { EXPEED_ROLLUP_SETTLE: '1ms', LOG_LEVEL: 'warn' },
    });
    const lines: string[] = [];
    // 30 hours of history up to now, the open hour included; written behind expeed-sync's back
    for (let t = FROM, k = 0; t < Date.now(); t += 60_000, k++) {
      lines.push(`device_data,device_id=old-1 temperature=${20 + (k % 9) / 3},mode="${k % 4 ? 'eco' : 'auto'}" ${t}`);
      if (k % 2) lines.push(`device_data,device_id=old\\ 2 temperature=${k % 5},door=${k % 3 === 0} ${t}`);
    }
    const res = await fetch(`${INFLUX_URL}/write?db=${db.name}&precision=ms`, {
      method: 'POST',
      body: lines.join('\n'),
    });
    expect(res.status).toBe(204);
  });

  afterAll(async () => {
    await db?.drop();
    await deleteRedisPrefix(prefix);
  });

  test('without options: every device, from its first row to the last ended hour, equal to GROUP BY time(1h); then their days', async () => {
    const r = await runCli(['rollup'], env, { timeoutMs: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('old-1: 30 hour(s)');
    expect(r.stdout).toContain('old 2: 30 hour(s)');
    expect(r.stdout).toContain('60/60 hour(s) rolled up into device_data_1h');
    const check = await rollupDiffs(db.name, INFLUX_URL, FROM - HOUR, NOW_HOUR);
    expect(check.diffs).toEqual([]);
    expect(check.hours).toBe(60);
    // the open hour is not final: no rollup of it yet
    expect(await influxRows(db.name, `SELECT * FROM "device_data_1h" WHERE time >= ${NOW_HOUR}ms`)).toEqual([]);
    // the days of those hours follow, before the command ends: each equals the raw day up to the last ended hour
    const days = new Set(Array.from({ length: 30 }, (_, i) => platformDay(FROM + i * HOUR, 'Asia/Shanghai').start))
      .size;
    expect(r.stdout).toContain(`${2 * days}/${2 * days} day(s) into device_data_1d`);
    const daily = await dayDiffs(
      db.name,
      INFLUX_URL,
      platformDay(FROM, 'Asia/Shanghai').start,
      NOW_HOUR,
      'Asia/Shanghai',
    );
    expect(daily.diffs).toEqual([]);
    expect(daily.hours).toBe(2 * days);
  });

  test('--device and a range recompute only that; a bad --from is refused naming it', async () => {
    await influxRows(db.name, `DELETE FROM "device_data_1h" WHERE time >= ${NOW_HOUR - 5 * HOUR}ms`);
    const r = await runCli(
      [
        'rollup',
        '--device',
        'old-1',
        '--from',
        new Date(NOW_HOUR - 3 * HOUR).toISOString(),
        '--to',
        new Date(NOW_HOUR - HOUR).toISOString(),
      ],
      env,
      { timeoutMs: 120_000 },
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('2/2 hour(s)');
    const rows = await influxRows(
      db.name,
      `SELECT "temperature_count" FROM "device_data_1h" WHERE time >= ${NOW_HOUR - 5 * HOUR}ms GROUP BY "device_id"`,
    );
    expect(rows.map((x) => [x.device_id, x.time])).toEqual([
      ['old-1', NOW_HOUR - 3 * HOUR],
      ['old-1', NOW_HOUR - 2 * HOUR],
    ]);
    const bad = await runCli(['rollup', '--from', 'whenever'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--from: expected ISO 8601');
  });

  test('a dead letter retried into an hour already rolled up marks that hour dirty', async () => {
    const redis = createRedis(REDIS_URL);
    try {
      const hour = NOW_HOUR - 10 * HOUR;
      const id = await new RedisDeadLetterStore(redis, prefix).add({
        kind: 'point',
        source: 'pull',
        reason: 'test',
        deviceId: 'old-1',
        raw: { measurement: 'device_data', deviceId: 'old-1', time: hour + 1234, fields: { temperature: 99 } },
      });
      const dirty = new DirtyHours({ redis, prefix });
      expect(await dirty.count('old-1', [hour])).toBe(0);
      const r = await runCli(['dead-letters', 'retry', id], env);
      expect(r.code, r.stderr).toBe(0);
      expect(await dirty.count('old-1', [hour])).toBe(1);
    } finally {
      await redis.quit();
    }
  });
});
