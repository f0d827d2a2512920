/**
 * Rows pushed by the simulator through the webhook and the ingest worker (the push path as the
 * service wires it) reach their day: the rollup worker rolls up their hour, then its day, and
 * `device_data_1d` equals the raw day. The rows lie in one hour, so the day's sum is that hour's
 * and the comparison can be exact whatever the simulator's values.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { dayDiffs } from '../fixtures/rollup-check.js';
import { until } from '../helpers/services.js';
import { startStack, TZ, type Stack } from './push-stack.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 10, 20) - 8 * HOUR; // 2026-11-20 00:00 in Asia/Shanghai (TZ)

describe('pushed rows reach the daily tier', () => {
  let s: Stack;

  beforeAll(async () => {
    expect(TZ).toBe('Asia/Shanghai');
    s = await startStack({ sim: { devices: [{ id: 'wp-1', key: 'key-w', cadenceSec: 60 }], from: T0, to: T0 + DAY } });
  });

  afterAll(async () => {
    await s?.close();
  });

  test('pushes land, their hour and then their day are rolled up, the day equals the raw day', async () => {
    const rows = s.sim!.rows('wp-1', T0 + 9 * HOUR, T0 + 9 * HOUR + 40 * 60_000);
    expect(rows.length).toBe(40);
    for (let i = 0; i < rows.length; i += 10)
      expect((await s.sim!.pushData('wp-1', rows.slice(i, i + 10))).status).toBe(200);
    await s.until(
      '40 pushed rows',
      () => s.rows(`SELECT * FROM device_data WHERE device_id = 'wp-1'`),
      (r) => r.length === 40,
    );

    const worker = s.app.startRollupWorker();
    const dispatcher = s.app.rollup.startDispatcher({ everyMs: 100, settleMs: 0 });
    try {
      await until(
        'the pushed hour and its day rolled up',
        async () => (await s.app.rollup.dirty.backlog()).hours === 0 && (await s.app.rollup.days.backlog()).hours === 0,
        { timeoutMs: 60_000 },
      );
    } finally {
      await dispatcher.close();
      await worker.close();
    }
    const check = await dayDiffs(s.db.name, s.db.url, T0, T0 + DAY, TZ);
    expect(check.diffs).toEqual([]);
    expect(check.hours).toBe(1);
    expect(check.values).toBeGreaterThan(0);
    const [day] = await s.rows(`SELECT * FROM device_data_1d WHERE device_id = 'wp-1'`);
    expect(day.time).toBe(T0);
    // every datapoint's count is the raw count of the pushed rows (sparse rows leave a datapoint out)
    const [raw] = await s.rows(`SELECT count(*) FROM device_data WHERE device_id = 'wp-1'`);
    const counts = Object.entries(raw).filter(([k]) => k.startsWith('count_'));
    expect(counts.length).toBeGreaterThan(0);
    for (const [k, n] of counts) expect([k, day[`${k.slice('count_'.length)}_count`]]).toEqual([k, n]);
    expect(Math.max(...counts.map(([, n]) => n as number))).toBeLessThanOrEqual(40);
  });
});
