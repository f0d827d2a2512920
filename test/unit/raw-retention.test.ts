import { describe, expect, test } from 'vitest';
import { ConfigError } from '../../src/base/config.js';
import { loadConfig } from '../../src/base/load-config.js';
import { ensureDatabase } from '../../src/influx/database.js';
import { writePath } from '../../src/influx/write-request.js';
import { renderStatus } from '../../src/cli/commands/status.js';
import type { StatusReport } from '../../src/status/report.js';

const NOW = Date.UTC(2026, 11, 2);
const DAY = 86_400_000;

describe('EXPEED_RAW_RETENTION', () => {
  test('off by default; durations are taken', () => {
    expect(loadConfig({}, NOW).influx.rawRetentionMs).toBeUndefined();
    expect(loadConfig({ EXPEED_RAW_RETENTION: '' }, NOW).influx.rawRetentionMs).toBeUndefined();
    expect(loadConfig({ EXPEED_RAW_RETENTION: '90d' }, NOW).influx.rawRetentionMs).toBe(90 * DAY);
    expect(loadConfig({ EXPEED_RAW_RETENTION: '1d', EXPEED_BACKFILL_WINDOW: '6h' }, NOW).influx.rawRetentionMs).toBe(
      DAY,
    );
  });

  test.each([
    [{ EXPEED_RAW_RETENTION: 'forever' }, 'duration'],
    [{ EXPEED_RAW_RETENTION: '12h', EXPEED_BACKFILL_WINDOW: '1h' }, 'at least 24h'],
    // the default backfill window (1d) + settle (5m) + 1h: one day is too short
    [{ EXPEED_RAW_RETENTION: '1d' }, 'at least 26h'],
    [{ EXPEED_RAW_RETENTION: '3d', EXPEED_BACKFILL_WINDOW: '3d' }, 'at least 74h'],
  ])('%o is refused naming the variable', (env, problem) => {
    let error: unknown;
    try {
      loadConfig(env, NOW);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe('EXPEED_RAW_RETENTION');
    expect((error as Error).message).toContain('EXPEED_RAW_RETENTION');
    expect((error as Error).message).toContain(problem);
  });

  test('is refused on 2.x+ before anything is asked of the server', async () => {
    const calls: string[] = [];
    const fetch = (async (url: string) => {
      calls.push(url);
      return new Response('{"buckets":[{}]}', { status: 200 });
    }) as unknown as typeof globalThis.fetch;
    await expect(
      ensureDatabase({ url: 'http://influx', api: 'v2', bucket: 'b', rawRetentionMs: 90 * DAY, fetch }),
    ).rejects.toThrow(/EXPEED_RAW_RETENTION works on InfluxDB 1\.x only/);
    expect(calls).toEqual([]);
    await ensureDatabase({ url: 'http://influx', api: 'v2', bucket: 'b', fetch });
    expect(calls.length).toBe(1);
  });

  test('a 1.x write names its RP only when asked', () => {
    expect(writePath({ url: 'u', api: 'v1', bucket: 'db' })).toBe('/write?db=db&precision=ms');
    expect(writePath({ url: 'u', api: 'v1', bucket: 'db', rp: 'rollups_forever' })).toBe(
      '/write?db=db&precision=ms&rp=rollups_forever',
    );
  });

  test('status shows the retention in effect under ROLLUPS', () => {
    const base: StatusReport = {
      at: NOW,
      summary: { ok: 0, failing: 0, stale: 0, 'never synced': 0 },
      staleAfterMs: 2 * DAY,
      devices: [],
      queues: {},
      rollupBacklog: { hours: 0 },
      errors: {},
    };
    expect(renderStatus({ ...base, rawRetentionMs: 90 * DAY }, 'UTC', (s) => s)).toContain(
      'ROLLUPS  0 hour(s) waiting\n  raw rows kept 90d (EXPEED_RAW_RETENTION), rollups forever',
    );
    expect(renderStatus({ ...base, rawRetentionMs: 36 * 3_600_000 }, 'UTC', (s) => s)).toContain(
      'raw rows kept 36h (EXPEED_RAW_RETENTION)',
    );
    expect(renderStatus(base, 'UTC', (s) => s)).toContain('raw rows kept forever (EXPEED_RAW_RETENTION)');
  });
});
