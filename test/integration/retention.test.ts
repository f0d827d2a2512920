/**
 * EXPEED_RAW_RETENTION on InfluxDB 1.x: the default RP gets the retention and rollups go to
 * `rollups_forever`; gaps older than the retention are not reported, and the rollup of an hour
 * older than the retention is never deleted or recomputed from what is left of its raw rows.
 * InfluxDB refuses points older than an RP's duration, so the raw rows are recent and the
 * clocks of the gap finder and the rollups are moved forward instead.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createApp, type App } from '../../src/app/app.js';
import { GapFinder } from '../../src/pull/gap-finder.js';
import { RollupDispatcher } from '../../src/rollup/dispatcher.js';
import { ensureDatabase, ROLLUP_RP } from '../../src/influx/database.js';
import { loadConfig } from '../../src/base/load-config.js';
import type { SinkPoint } from '../../src/influx/api.js';
import { createTestDatabase, deleteRedisPrefix, INFLUX_URL, influxRows, testPrefix } from '../helpers/services.js';
import { drained, scrubber, silentLogger, testEnv } from '../fixtures/pull-env.js';
import { rollupDiffs } from '../fixtures/rollup-check.js';

const HOUR = 3_600_000;
const MIN = 60_000;
const DAY = 24 * HOUR;
const NOW = Math.floor(Date.now() / HOUR) * HOUR;
const FROM = NOW - 30 * HOUR;
const TO = NOW - HOUR;
/** two holes: an old one (28 h to 26 h ago) and a recent one (6 h to 5 h ago) */
const inHole = (t: number) =>
  (t >= NOW - 28 * HOUR && t < NOW - 26 * HOUR) || (t >= NOW - 6 * HOUR && t < NOW - 5 * HOUR);
const ROLLUPS = `"${ROLLUP_RP}"."device_data_1h"`;

describe('EXPEED_RAW_RETENTION (InfluxDB 1.x)', () => {
  let stack: App;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let dispatcher: RollupDispatcher;
  const prefix = testPrefix('ret');
  let clock = NOW + HOUR;
  const now = () => clock;

  async function rollUp(): Promise<void> {
    for (let i = 0; i < 50; i++) {
      if ((await dispatcher.tick()) === 0) return;
      await drained(stack.rollup.queue);
    }
    throw new Error('settled hours keep coming back');
  }

  beforeAll(async () => {
    db = await createTestDatabase('ret');
    const config = loadConfig(
      testEnv({
        simUrl: 'http://127.0.0.1:9',
        prefix,
        db: db.name,
        influxUrl: INFLUX_URL,
        env: { EXPEED_RAW_RETENTION: '2d', EXPEED_BACKFILL_WINDOW: '1h' },
      }),
    );
    expect(config.influx.rawRetentionMs).toBe(2 * DAY);
    stack = createApp(config, { logger: silentLogger(), scrubber: scrubber(), rollupClock: now });
    const points: SinkPoint[] = [];
    for (let t = FROM; t < TO; t += MIN)
      if (!inHole(t))
        points.push({
          measurement: 'device_data',
          deviceId: 'ret-a',
          time: t,
          fields: { temperature: 20 + ((t / MIN) % 7), mode: t % (2 * MIN) ? 'eco' : 'auto' },
        });
    // through the marking writer, as every sync path writes: ensures the database and marks the hours
    await stack.writer.write(points, { source: 'test' });
    stack.startRollupWorker();
    dispatcher = new RollupDispatcher({
      dirty: stack.rollup.dirty,
      queue: stack.rollup.queue,
      settleMs: config.rollupSettleMs,
      logger: silentLogger(),
    });
  });

  afterAll(async () => {
    await stack?.close();
    await db?.drop();
    await deleteRedisPrefix(prefix);
  });

  test('at start the default RP has the retention and rollups_forever keeps forever; a new value is followed', async () => {
    const rps = async () =>
      (await influxRows(db.name, `SHOW RETENTION POLICIES ON "${db.name}"`)).map((r) => [
        r.name,
        r.duration,
        r.shardGroupDuration,
        r.default,
      ]);
    expect(await rps()).toEqual([
      ['autogen', '48h0m0s', '24h0m0s', true],
      [ROLLUP_RP, '0s', '168h0m0s', false],
    ]);
    // every start ensures it again: idempotent, and a changed EXPEED_RAW_RETENTION is applied
    const target = { url: INFLUX_URL, api: 'v1' as const, bucket: db.name };
    await ensureDatabase({ ...target, rawRetentionMs: 365 * DAY });
    await ensureDatabase({ ...target, rawRetentionMs: 365 * DAY });
    expect(await rps()).toEqual([
      ['autogen', '8760h0m0s', '168h0m0s', true],
      [ROLLUP_RP, '0s', '168h0m0s', false],
    ]);
    await ensureDatabase({ ...target, rawRetentionMs: 2 * DAY });
    expect((await rps())[0]).toEqual(['autogen', '48h0m0s', '24h0m0s', true]);
  });

  test('rollups land in rollups_forever and equal GROUP BY time(1h) of the raw rows', async () => {
    clock += HOUR; // the writes touched the hours at NOW + 1h: let them settle
    await rollUp();
    const check = await rollupDiffs(db.name, INFLUX_URL, FROM, TO, ROLLUPS);
    expect(check.diffs).toEqual([]);
    expect(check.hours).toBe(29 - 3);
    expect(check.values).toBeGreaterThan(0);
    // nothing in the default RP, whose rows expire
    expect(await influxRows(db.name, 'SELECT count(*) FROM "autogen"."device_data_1h"')).toEqual([]);
  });

  test('a gap older than the retention is not reported', async () => {
    const recent = { from: NOW - 6 * HOUR, to: NOW - 5 * HOUR };
    // today both holes are inside the retention
    const today = await stack.gapFinder.scan('ret-a', FROM, NOW - HOUR);
    expect(today.gaps.length).toBe(2);
    // a day later, the cut-off (now − 2d) lies after the old hole
    const later = await new GapFinder({ query: stack.influx, rawRetentionMs: 2 * DAY, now: () => NOW + DAY }).scan(
      'ret-a',
      FROM,
      NOW - HOUR,
    );
    expect(later.from).toBe(NOW - DAY);
    expect(later.gaps.length).toBe(1);
    expect(later.gaps[0].from).toBeLessThanOrEqual(recent.from);
    expect(later.gaps[0].to).toBeGreaterThanOrEqual(recent.to);
    expect(later.gaps[0].from).toBeGreaterThan(NOW - 7 * HOUR);
    // a range wholly before the cut-off is not scanned at all
    const expired = await new GapFinder({ query: stack.influx, rawRetentionMs: 2 * DAY, now: () => NOW + DAY }).scan(
      'ret-a',
      FROM,
      NOW - 25 * HOUR,
    );
    expect(expired).toMatchObject({ gaps: [], note: 'older than EXPEED_RAW_RETENTION: its raw rows have expired' });
  });

  test('a backfill starts one window after the cut-off: InfluxDB would refuse older rows', async () => {
    const before = Date.now();
    const windows = await stack.backfills.enqueue({
      deviceId: 'ret-b',
      from: NOW - 10 * DAY,
      to: NOW,
      reason: 'manual',
    });
    expect(windows[0].from).toBeGreaterThanOrEqual(before - 2 * DAY + HOUR);
    expect(windows[0].from).toBeLessThan(NOW - 2 * DAY + 3 * HOUR);
    expect(windows.at(-1)!.to).toBe(NOW);
    expect((await stack.checkpoints.get('ret-b'))?.upTo).toBe(windows[0].from);
  });

  test('the rollup of an hour older than the retention is never deleted, a recent empty hour loses its rollup', async () => {
    const old = NOW - 29 * HOUR;
    const recent = NOW - 3 * HOUR;
    const rollupAt = async (h: number) =>
      (await influxRows(db.name, `SELECT * FROM ${ROLLUPS} WHERE time = ${h}ms`)).length;
    expect([await rollupAt(old), await rollupAt(recent)]).toEqual([1, 1]);
    // the raw rows of both hours are gone (the old one as InfluxDB would expire it)
    for (const h of [old, recent])
      await influxRows(db.name, `DELETE FROM "device_data" WHERE time >= ${h}ms AND time < ${h + HOUR}ms`);
    clock = NOW + DAY; // cut-off: NOW − 1d, after `old`, before `recent`
    await stack.rollup.dirty.mark(new Map([['ret-a', [old, recent]]]), { manual: true });
    await rollUp();
    expect(await rollupAt(old)).toBe(1);
    expect(await rollupAt(recent)).toBe(0);
    expect(await stack.rollup.dirty.count('ret-a', [old, recent])).toBe(0);
  });
});
