/**
 * `expeed-sync backfill --all --wait`, as users run it, against a platform for every reading of the
 * vendor document (docs/platform-api.md §2.3): what the cursor points at, whether `limit` counts rows
 * or datapoints, inclusive or exclusive `start`/`end`, rows sharing a millisecond across page
 * boundaries, and 5 % of device calls failing (HTTP 502 or a reset connection). What lands in
 * InfluxDB must be exactly what the platform holds, per device and field, with one token call.
 */
import { afterAll, describe, expect, test } from 'vitest';
import { startSimulator, type HistoryReading, type Simulator } from '../../src/simulator/index.js';
import { runCli } from '../helpers/cli.js';
import { influxRows } from '../helpers/services.js';
import {
  drained,
  PLATFORM_KEY,
  SECRET_KEY,
  scrubber,
  silentLogger,
  startCliEnv,
  totalsDifferences,
} from '../fixtures/pull-env.js';
import { loadConfig } from '../../src/base/load-config.js';
import { createApp } from '../../src/app/app.js';
import { windowKey } from '../../src/pull/windows.js';

const HOUR = 3_600_000;
const FROM = Date.UTC(2026, 3, 1);
const TO = FROM + 36 * HOUR;

interface Combo {
  name: string;
  history: Partial<HistoryReading>;
  /** A, B, A in one millisecond */
  sameMsRepeat?: boolean;
}

// every cursor reading of the table in issue 10, each with other open points read the other way
const COMBOS: Combo[] = [
  { name: 'next', history: { cursor: 'next', limit: 'datapoints' } },
  { name: 'next-exclusive', history: { cursor: 'next', start: 'exclusive', end: 'exclusive' } },
  { name: 'last-inclusive', history: { cursor: 'last-inclusive', limit: 'datapoints', end: 'inclusive' } },
  { name: 'last-exclusive', history: { cursor: 'last-exclusive', limit: 'datapoints', start: 'exclusive' } },
  { name: 'first-row', history: { cursor: 'first-row', start: 'exclusive', end: 'inclusive' } },
  { name: 'none', history: { cursor: 'none', limit: 'datapoints', start: 'exclusive' } },
  // the shapes a platform may give beyond the readings (issue 18): newest first whatever `first`
  // asks, `first` read inverted, a page cap of its own below `limit`, A,B,A in one millisecond
  { name: 'newest-first', history: { cursor: 'next', order: 'newest-first', end: 'inclusive' }, sameMsRepeat: true },
  { name: 'capped', history: { cursor: 'next', pageCap: 23 }, sameMsRepeat: true },
  {
    name: 'inverted-capped',
    history: { cursor: 'none', order: 'inverted', pageCap: 17, limit: 'datapoints', start: 'exclusive' },
  },
  { name: 'aba-last', history: { cursor: 'last-inclusive', limit: 'datapoints' }, sameMsRepeat: true },
];

const devicesOf = (name: string) => [
  { id: `${name}-a`, key: `key-${name}-a`, cadenceSec: 90 },
  { id: `${name} b`, key: `key-${name}-b`, cadenceSec: 150, fields: ['temp', 'humidity', 'switch'] },
];

describe('backfill --all --wait under every reading of the vendor document', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  async function setUp(_name: string, options: Parameters<typeof startSimulator>[0], pageLimit: number) {
    const cli = await startCliEnv('read', options, {
      EXPEED_PAGE_LIMIT: String(pageLimit),
      EXPEED_BACKFILL_WINDOW: '1d',
      WORKER_CONCURRENCY: '4',
      LOG_LEVEL: 'warn',
    });
    cleanups.push(() => cli.close());
    return cli;
  }

  async function runCombo(c: Combo): Promise<{ sim: Simulator; db: string; code: number | null; stderr: string }> {
    const { sim, db, env } = await setUp(
      c.name,
      {
        platformKey: PLATFORM_KEY,
        secretKey: SECRET_KEY,
        devices: devicesOf(c.name),
        from: FROM - 2 * HOUR,
        to: TO + 2 * HOUR,
        seed: 21,
        history: c.history,
        sameMsRate: 0.15,
        sameMsRepeat: c.sameMsRepeat,
        deviceFailRate: 0.05,
        deviceFailKind: 'mixed',
      },
      60,
    );
    // rows exactly at the window boundaries (platform midnight, 16:00Z) and at --from/--to: an
    // exclusive start must not lose them, and the row at --to belongs to a later backfill
    for (const d of sim.devices) {
      sim.addRows(
        d.id,
        [FROM, FROM + 16 * HOUR, TO - 1, TO].map((time, i) => ({ time, values: { temp: 40 + i, humidity: 7 } })),
      );
    }
    const run = await runCli(
      ['backfill', '--all', '--from', new Date(FROM).toISOString(), '--to', new Date(TO).toISOString(), '--wait'],
      env,
      { timeoutMs: 120_000 },
    );
    return { sim, db, code: run.code, stderr: run.stderr };
  }

  test('every reading lands exactly what the platform holds, with one token call', async () => {
    const results = await Promise.all(COMBOS.map(runCombo));
    // every combination is checked before anything is asserted: a failure lists all that differ
    const problems: string[] = [];
    for (const [i, r] of results.entries()) {
      const c = COMBOS[i];
      if (r.code !== 0) problems.push(`${c.name}: exit ${r.code}: ${r.stderr.slice(0, 400)}`);
      for (const d of devicesOf(c.name)) {
        const rows = r.sim.rows(d.id, FROM, TO);
        // the data really has rows sharing a millisecond
        expect(rows.length - new Set(rows.map((x) => x.time)).size, `${c.name} ${d.id} same-ms rows`).toBeGreaterThan(
          20,
        );
        problems.push(...(await totalsDifferences(c.name, r.sim, r.db, d.id, FROM, TO)));
      }
      if (r.sim.stats.tokenCalls !== 1) problems.push(`${c.name}: ${r.sim.stats.tokenCalls} token calls`);
      if (r.sim.stats.violations.length) problems.push(`${c.name}: violations ${r.sim.stats.violations.join('; ')}`);
      // the faults really happened (the PRNG is seeded: the same draws every run)
      const f = r.sim.stats.deviceFailures;
      if (f['502'] + f.reset === 0) problems.push(`${c.name}: no device call failed`);
    }
    expect(problems).toEqual([]);
    expect(results.reduce((n, r) => n + r.sim.stats.deviceFailures['502'], 0)).toBeGreaterThan(2);
    expect(results.reduce((n, r) => n + r.sim.stats.deviceFailures.reset, 0)).toBeGreaterThan(2);
  }, 150_000);

  test('more rows in one millisecond than a page holds: exits non-zero naming the device and the window', async () => {
    const devices = [{ id: 'crowded-1', key: 'key-crowded', cadenceSec: 600, fields: ['a', 'b', 'c', 'd'] }];
    const { sim, env } = await setUp(
      'crowded',
      {
        platformKey: PLATFORM_KEY,
        secretKey: SECRET_KEY,
        devices,
        from: FROM,
        to: TO,
        seed: 3,
        history: { cursor: 'none' },
        sameMsRate: 1,
      },
      1,
    );
    const run = await runCli(
      [
        'backfill',
        '--all',
        '--from',
        new Date(FROM).toISOString(),
        '--to',
        new Date(FROM + 6 * HOUR).toISOString(),
        '--wait',
      ],
      env,
      { timeoutMs: 60_000 },
    );
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(
      /device crowded-1 window 2026-0[34]-\d\dT\d\d:00:00\.000Z\.\.2026-04-01T06:00:00\.000Z: history walk cannot make progress: .*more rows share that time than one page holds/,
    );
    expect(sim.stats.requests.history ?? 0).toBeLessThan(10);
  }, 70_000);

  test('a resumed window asks from 1 ms before its saved position: an exclusive start loses no row of that millisecond', async () => {
    const devices = [{ id: 'resume-1', key: 'key-resume', cadenceSec: 300 }];
    const { sim, db, env } = await setUp(
      'resume',
      {
        platformKey: PLATFORM_KEY,
        secretKey: SECRET_KEY,
        devices,
        from: FROM,
        to: TO,
        seed: 4,
        history: { cursor: 'last-exclusive', start: 'exclusive' },
      },
      50,
    );
    const at = FROM + 5 * HOUR + 123;
    // two rows at the saved position (one millisecond), as if the run before had written one of them
    sim.addRows('resume-1', [{ time: at, values: { temp: 71.5 } }]);
    sim.addRows('resume-1', [{ time: at, values: { humidity: 33 } }]);
    const stack = createApp(loadConfig(env), { logger: silentLogger(), scrubber: scrubber() });
    cleanups.push(() => stack.close());
    await stack.registry.mergeFile(env.EXPEED_DEVICES_FILE);
    const window = { from: FROM, to: FROM + 16 * HOUR }; // the first window on the platform-local grid
    await stack.checkpoints.setPosition(windowKey('resume-1', window), at);
    const queued = await stack.backfills.enqueue({
      deviceId: 'resume-1',
      from: window.from,
      to: window.to,
      reason: 'manual',
    });
    expect(queued.map((q) => [q.from, q.to])).toEqual([[window.from, window.to]]);
    stack.startBackfillWorker();
    expect((await drained(stack.backfillQueue, 60_000)).failed).toBe(0);
    const landed = await influxRows(db, `SELECT * FROM device_data WHERE device_id = 'resume-1' AND time <= ${at}ms`);
    // nothing before the saved position was walked again; the saved millisecond landed whole
    expect(landed.map((r) => [r.time, r.temp, r.humidity])).toEqual([[at, 71.5, 33]]);
    const after = await influxRows(
      db,
      `SELECT count(temp) AS c FROM device_data WHERE device_id = 'resume-1' AND time > ${at}ms`,
    );
    expect(after[0]?.c).toBe(sim.rows('resume-1', at + 1, window.to).filter((r) => 'temp' in r.values).length);
  }, 70_000);
});
