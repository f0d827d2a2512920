/**
 * A rollup that keeps failing for one device backs off with a bound and shows in `status`. The
 * failure is real: a field that is a string in the one shard holding device "bad"'s rows and a
 * float elsewhere is numeric to the rollup, and InfluxDB refuses `mean()` over that shard
 * ("unsupported mean iterator type"). The three other devices' rows are in another shard, with
 * 300 more fields, so that the refused query (which the error quotes) is tens of KB long.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { pino } from 'pino';
import { createApp, type App } from '../../src/app/app.js';
import { RollupDispatcher } from '../../src/rollup/dispatcher.js';
import { RollupFailures, REASON_CHARS } from '../../src/rollup/rollup-failures.js';
import { runCli } from '../helpers/cli.js';
import {
  createTestDatabase,
  deleteRedisPrefix,
  INFLUX_URL,
  influxQuery,
  influxRows,
  testPrefix,
  until,
} from '../helpers/services.js';
import { drained, scrubber, testConfig, testEnv } from '../fixtures/pull-env.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
/** a Monday: the shard groups of autogen are weeks from Monday */
const BAD_HOUR = Date.UTC(2026, 2, 2, 10);
const GOOD_HOUR = Date.UTC(2026, 2, 16, 10);
const GOOD = ['good-1', 'good-2', 'good-3'];
const EXTRA_FIELDS = Array.from({ length: 300 }, (_, i) => `extra_field_number_${String(i).padStart(3, '0')}`);

describe('a failing rollup', () => {
  const prefix = testPrefix('rollfail');
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let app: App;
  let env: Record<string, string>;
  const logLines: string[] = [];
  // the backoff's clock: moved by the test, a minute a step
  let clock = Date.UTC(2026, 11, 1);
  const now = () => clock;

  beforeAll(async () => {
    db = await createTestDatabase('rollfail');
    env = testEnv({
      simUrl: 'http://127.0.0.1:1',
      prefix,
      db: db.name,
      influxUrl: INFLUX_URL,
      env: { LOG_LEVEL: 'warn' },
    });
    const logger = pino({ level: 'warn' }, { write: (l: string) => void logLines.push(l) });
    app = createApp(testConfig({ simUrl: 'http://127.0.0.1:1', prefix, db: db.name, influxUrl: INFLUX_URL }), {
      logger,
      scrubber: scrubber(),
    });
    const lines = [`device_data,device_id=bad odd="text",temp=1 ${BAD_HOUR + 5 * MIN}000000`];
    for (const [i, id] of GOOD.entries()) {
      const extra = EXTRA_FIELDS.map((f, j) => `${f}=${i + j}`).join(',');
      lines.push(`device_data,device_id=${id} odd=1.5,temp=${20 + i},${extra} ${GOOD_HOUR + 5 * MIN}000000`);
    }
    const res = await fetch(`${INFLUX_URL}/write?db=${db.name}`, { method: 'POST', body: lines.join('\n') });
    expect(res.status).toBe(204);
    await app.rollup.dirty.mark(
      new Map([['bad', [BAD_HOUR]], ...GOOD.map((id) => [id, [GOOD_HOUR]] as [string, number[]])]),
      { manual: true },
    );
  });

  afterAll(async () => {
    await app?.close();
    await db?.drop();
    await deleteRedisPrefix(prefix);
  });

  test('the pause doubles from 1 min and stops at 1 h; the reason is cut to 200 characters; a success forgets the device', async () => {
    const f = new RollupFailures(app.redis, `${prefix}:unit`);
    const pauses: number[] = [];
    for (let i = 0; i < 9; i++) {
      const r = await f.failed('dev-x', [BAD_HOUR, BAD_HOUR + HOUR], 'x'.repeat(5000), 1_000_000 + i);
      pauses.push((r.nextAt - r.lastAt) / MIN);
    }
    expect(pauses).toEqual([1, 2, 4, 8, 16, 32, 60, 60, 60]);
    const r = (await f.get('dev-x'))!;
    expect(r).toMatchObject({ count: 9, firstAt: 1_000_000, lastAt: 1_000_008, hours: 2, firstHour: BAD_HOUR });
    expect(r.reason).toBe(`${'x'.repeat(REASON_CHARS)}… (5000 chars)`);
    expect(await f.backingOff(1_000_008 + HOUR - 1)).toEqual(new Set(['dev-x']));
    expect(await f.backingOff(1_000_008 + HOUR)).toEqual(new Set());
    await f.succeeded('dev-x');
    expect(await f.list()).toEqual([]);
  });

  test('backs off 1 min doubling (6 tries in an hour), the other devices land, status names it, log lines are short', async () => {
    const failures = new RollupFailures(app.redis, prefix, { baseMs: MIN, maxMs: HOUR });
    let failedJobs = 0;
    const startWorker = () => app.startRollupWorker({ failures, now }).on('failed', () => failedJobs++);
    let worker = startWorker();
    const dispatcher = new RollupDispatcher({
      dirty: app.rollup.dirty,
      queue: app.rollup.queue,
      failures,
      settleMs: 0,
      logger: app.logger,
      now,
    });
    const start = clock;
    const dispatchedAt: number[] = [];
    // an hour of the backoff's clock, the dispatcher ticking every minute
    for (let t = 0; t <= 60; t++) {
      clock = start + t * MIN;
      const before = (await failures.get('bad'))?.count ?? 0;
      await dispatcher.tick();
      await drained(app.rollup.queue);
      // the record is written inside the job, before it ends (the worker's event may come later)
      if (((await failures.get('bad'))?.count ?? 0) > before) dispatchedAt.push(t);
    }
    // failures at 0, 1, 3, 7, 15, 31 min: pauses of 1, 2, 4, 8, 16, then 32 min (the next at 63)
    expect(dispatchedAt).toEqual([0, 1, 3, 7, 15, 31]);
    await until('the six failed events', async () => failedJobs >= 6);
    expect(failedJobs).toBe(6);
    const record = await failures.get('bad');
    expect(record).toMatchObject({
      deviceId: 'bad',
      count: 6,
      firstAt: start,
      lastAt: start + 31 * MIN,
      nextAt: start + 63 * MIN,
      hours: 1,
      firstHour: BAD_HOUR,
    });
    expect(record!.reason).toMatch(
      /^InfluxDB refused the query \(HTTP \d+\): unsupported \w+ iterator type: .+… \(\d{5} chars\)$/,
    );
    expect(record!.reason.length).toBeLessThanOrEqual(REASON_CHARS + 20);

    // the other devices' rollups landed; "bad" has none and its hour stays dirty
    const rolled = await influxRows(db.name, 'SELECT "temp_mean" FROM "device_data_1h" GROUP BY "device_id"');
    expect(rolled.map((r) => r.device_id).sort()).toEqual(GOOD);
    for (const [i, id] of GOOD.entries()) {
      const rows = await influxRows(
        db.name,
        `SELECT "temp_mean", "${EXTRA_FIELDS[299]}_sum" FROM "device_data_1h" WHERE "device_id" = '${id}'`,
      );
      expect(rows).toEqual([{ time: GOOD_HOUR, temp_mean: 20 + i, [`${EXTRA_FIELDS[299]}_sum`]: i + 299 }]);
    }
    expect(await influxQuery(db.name, `SELECT * FROM "device_data_1h" WHERE "device_id" = 'bad'`)).toEqual([]);
    expect(await app.rollup.dirty.count('bad', [BAD_HOUR])).toBe(1);
    expect(await failures.list()).toHaveLength(1);

    // every log line is short; the flood of failures is one line plus counts of those not logged
    const failedLines = logLines.filter((l) => l.includes('rollup failed'));
    expect(failedLines.length).toBeGreaterThanOrEqual(1);
    expect(failedLines.length).toBeLessThanOrEqual(6);
    expect(Math.max(...logLines.map((l) => l.length))).toBeLessThan(1000);

    // status names it (and --json holds the record)
    const s = await runCli(['status'], env);
    const named = s.stdout.split('\n').filter((l) => l.startsWith('    bad: '));
    expect(named).toHaveLength(1);
    expect(named[0]).toMatch(
      /^ {4}bad: 6 failures since .+, 1 hour\(s\) from .+, next try .+: InfluxDB refused the query \(HTTP \d+\): unsupported \w+ iterator type/,
    );
    expect(named[0].length).toBeLessThan(400);
    expect(s.stdout).toContain('  FAILING (1 device; tried again after a backoff, 1 min doubling to 1 h):');
    const json = JSON.parse((await runCli(['status', '--json'], env)).stdout) as {
      rollupFailures: Array<{ deviceId: string; count: number }>;
    };
    expect(json.rollupFailures.map((f) => [f.deviceId, f.count])).toEqual([['bad', 6]]);

    // asked for by hand while it backs off: tried at once, and the command says why it failed
    // (this process's worker is stopped meanwhile: the command's own worker takes the job)
    await worker.close();
    const manual = await runCli(
      [
        'rollup',
        '--device',
        'bad',
        '--from',
        new Date(BAD_HOUR).toISOString(),
        '--to',
        new Date(BAD_HOUR + HOUR).toISOString(),
      ],
      env,
    );
    expect(manual.code).toBe(1);
    expect(manual.stderr).toMatch(
      /rollup failed \(its hours stay dirty and are retried by the service\): device bad: InfluxDB refused the query/,
    );
    expect(manual.stderr.length).toBeLessThan(1000);
    expect((await failures.get('bad'))?.count).toBe(7);

    // the cause removed, the next try after the backoff succeeds and clears the record
    await influxQuery(db.name, `DELETE FROM "device_data" WHERE "device_id" = 'bad'`);
    // (the command's try was on the real clock: its backoff ends within the hour after now)
    clock = Date.now() + 61 * MIN;
    worker = startWorker();
    await dispatcher.tick();
    await drained(app.rollup.queue);
    // no failure in this process since the hour of tries
    expect(failedJobs).toBe(6);
    expect(await failures.list()).toEqual([]);
    expect(await app.rollup.dirty.count('bad', [BAD_HOUR])).toBe(0);
    expect((await runCli(['status'], env)).stdout).not.toContain('FAILING');
  }, 180_000);
});
