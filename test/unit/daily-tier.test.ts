import { describe, expect, test } from 'vitest';
import { ConfigError } from '../../src/base/config.js';
import { loadConfig } from '../../src/base/load-config.js';
import { ensureDatabase, rollupRps } from '../../src/influx/database.js';
import { dayQuery, hourlyFieldKinds, hourlySource } from '../../src/rollup/day-query.js';
import { rollupQuery } from '../../src/rollup/rollup-query.js';
import { DayComputer } from '../../src/rollup/day-computer.js';
import { renderStatus } from '../../src/cli/commands/status.js';
import { createMetrics, setRollupBacklog } from '../../src/ops/metrics.js';
import type { StatusReport } from '../../src/status/report.js';

const NOW = Date.UTC(2026, 11, 2);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

describe('EXPEED_HOURLY_RETENTION', () => {
  test('off by default (hourly rollups kept forever); durations are taken', () => {
    expect(loadConfig({}, NOW).influx.hourlyRetentionMs).toBeUndefined();
    expect(loadConfig({ EXPEED_HOURLY_RETENTION: '' }, NOW).influx.hourlyRetentionMs).toBeUndefined();
    expect(loadConfig({ EXPEED_HOURLY_RETENTION: '400d' }, NOW).influx.hourlyRetentionMs).toBe(400 * DAY);
    expect(loadConfig({ EXPEED_HOURLY_RETENTION: '2d' }, NOW).influx.hourlyRetentionMs).toBe(2 * DAY);
  });

  test.each([
    [{ EXPEED_HOURLY_RETENTION: 'never' }, 'duration'],
    [{ EXPEED_HOURLY_RETENTION: '1d' }, 'at least 48h'],
    [{ EXPEED_HOURLY_RETENTION: '2d', EXPEED_ROLLUP_SETTLE: '1d' }, 'at least 49h'],
  ])('%o is refused naming the variable', (env, problem) => {
    let error: unknown;
    try {
      loadConfig(env, NOW);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe('EXPEED_HOURLY_RETENTION');
    expect((error as Error).message).toContain(problem);
  });

  test('the tiers’ retention policies: the default RP without any retention, rollups_hourly and rollups_forever with them', () => {
    expect(rollupRps({})).toEqual({ hourly: undefined, daily: undefined });
    expect(rollupRps({ rawRetentionMs: 90 * DAY })).toEqual({ hourly: 'rollups_forever', daily: 'rollups_forever' });
    expect(rollupRps({ hourlyRetentionMs: 400 * DAY })).toEqual({ hourly: 'rollups_hourly', daily: 'rollups_forever' });
    expect(rollupRps({ rawRetentionMs: 90 * DAY, hourlyRetentionMs: 400 * DAY })).toEqual({
      hourly: 'rollups_hourly',
      daily: 'rollups_forever',
    });
  });

  test('is refused on 2.x+ before anything is asked of the server', async () => {
    const calls: string[] = [];
    const fetch = (async (url: string) => {
      calls.push(url);
      return new Response('{"buckets":[{}]}', { status: 200 });
    }) as unknown as typeof globalThis.fetch;
    await expect(
      ensureDatabase({ url: 'http://influx', api: 'v2', bucket: 'b', hourlyRetentionMs: 90 * DAY, fetch }),
    ).rejects.toThrow(/EXPEED_HOURLY_RETENTION works on InfluxDB 1\.x only/);
    expect(calls).toEqual([]);
  });
});

describe('daily rollup queries', () => {
  test('the hourly field keys name the datapoints: numeric by _mean/_sum, others by _last', () => {
    const keys = [
      't_mean',
      't_min',
      't_max',
      't_sum',
      't_count',
      'x_sum_mean',
      'x_sum_count',
      'mode_last',
      'mode_count',
      'odd',
    ].map((fieldKey) => ({ fieldKey }));
    expect(hourlyFieldKinds(keys)).toEqual({ numeric: ['t', 'x_sum'], other: ['mode'] });
  });

  test('one statement per run: sums and counts add, min of minima, max of maxima, last, mean = sum/count, local days', () => {
    const q = dayQuery(
      { numeric: ['t'], other: ['mode'] },
      hourlySource('rollups_hourly'),
      0,
      2 * DAY,
      "d'1",
      'Europe/Berlin',
    );
    expect(q).toBe(
      'SELECT sum("t_sum") / sum("t_count") AS "t_mean", min("t_min") AS "t_min", max("t_max") AS "t_max", sum("t_sum") AS "t_sum", sum("t_count") AS "t_count", ' +
        'last("mode_last") AS "mode_last", sum("mode_count") AS "mode_count" FROM "rollups_hourly"."device_data_1h" ' +
        `WHERE "device_id" = 'd\\'1' AND time >= 0ms AND time < ${2 * DAY}ms GROUP BY time(1d), "device_id" fill(none) tz('Europe/Berlin')`,
    );
    expect(hourlySource(undefined)).toBe('"device_data_1h"');
    expect(rollupQuery({ numeric: ['t'], other: [] }, 0, DAY, 'd', { every: '1d', timezone: 'Asia/Kolkata' })).toMatch(
      /FROM "device_data" .*GROUP BY time\(1d\), "device_id" fill\(none\) tz\('Asia\/Kolkata'\)$/,
    );
  });

  test('a day is read from the hours, from the raw rows where the hours cannot answer it, or left alone', () => {
    const computer = (timezone: string, retention: { hourlyRetentionMs?: number; rawRetentionMs?: number } = {}) =>
      new DayComputer({
        query: { rows: async () => [], series: async () => [] },
        writer: { write: async () => ({ written: 0, merged: 0, deadLettered: 0 }) },
        canDelete: async () => true,
        rawFields: async () => ({ numeric: [], other: [] }),
        timezone,
        now: () => NOW,
        ...retention,
      });
    const shanghai = Date.UTC(2026, 10, 1) - 8 * HOUR;
    const days = [0, 1, 2, 4].map((i) => shanghai + i * DAY + 5 * HOUR);
    const runs = (c: DayComputer) => c.runs(days).map((r) => [r.source, r.days.map((d) => (d.start - shanghai) / DAY)]);
    expect(runs(computer('Asia/Shanghai'))).toEqual([
      ['hourly', [0, 1, 2]],
      ['hourly', [4]],
    ]);
    // hours kept 30 days: the two oldest days are older than NOW − 30d (2026-11-02)
    expect(runs(computer('Asia/Shanghai', { hourlyRetentionMs: 30 * DAY }))).toEqual([
      ['raw', [0, 1]],
      ['hourly', [2]],
      ['hourly', [4]],
    ]);
    expect(
      runs(computer('Asia/Shanghai', { hourlyRetentionMs: 30 * DAY, rawRetentionMs: 30 * DAY + 12 * HOUR })),
    ).toEqual([
      ['expired', [0]],
      ['raw', [1]],
      ['hourly', [2]],
      ['hourly', [4]],
    ]);
    // Kolkata's midnight is at :30 UTC: every day from the raw rows
    expect(
      computer('Asia/Kolkata')
        .runs([Date.UTC(2026, 10, 1, 12)])
        .map((r) => [r.source, r.days[0].start]),
    ).toEqual([['raw', Date.UTC(2026, 9, 31, 18, 30)]]);
  });
});

describe('the daily tier in status and metrics', () => {
  const base: StatusReport = {
    at: NOW,
    summary: { ok: 0, failing: 0, stale: 0, 'never synced': 0 },
    staleAfterMs: 2 * DAY,
    devices: [],
    queues: {},
    rollupBacklog: { hours: 3, oldestDue: NOW - 60_000 },
    errors: {},
  };

  test('status shows the days waiting and the hourly retention', () => {
    const out = renderStatus(
      { ...base, rollupDayBacklog: { hours: 2, oldestDue: NOW - 120_000 }, hourlyRetentionMs: 400 * DAY },
      'UTC',
      (s) => s,
    );
    expect(out).toMatch(
      /ROLLUPS {2}3 hour\(s\) waiting, the oldest due .+; 2 day\(s\) waiting, the oldest due .+\n {2}raw rows kept forever \(EXPEED_RAW_RETENTION\), hourly rollups 400d \(EXPEED_HOURLY_RETENTION\), daily rollups forever/,
    );
  });

  test('the backlog gauges have a tier="1d" series', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    setRollupBacklog(metrics, { hours: 3, oldestDue: NOW - 60_000 }, NOW, { hours: 2, oldestDue: NOW - 120_000 });
    const text = await metrics.registry.metrics();
    expect(text).toContain('expeed_rollup_backlog{tier="hour"} 3');
    expect(text).toContain('expeed_rollup_backlog{tier="1d"} 2');
    expect(text).toContain('expeed_rollup_backlog_oldest_seconds{tier="hour"} 60');
    expect(text).toContain('expeed_rollup_backlog_oldest_seconds{tier="1d"} 120');
  });
});
