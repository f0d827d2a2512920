/**
 * A rollup an operator asks for is due at once: with the default EXPEED_ROLLUP_SETTLE (5 min),
 * hours a backfill wrote seconds ago are rolled up by `expeed-sync rollup` without waiting for the
 * settle delay, and the compare-and-delete of a computation that read an older score still fails.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createApp, type App } from '../../src/app/app.js';
import { loadConfig } from '../../src/base/load-config.js';
import type { SinkPoint } from '../../src/influx/api.js';
import { createTestDatabase, deleteRedisPrefix, INFLUX_URL, testPrefix } from '../helpers/services.js';
import { runCli } from '../helpers/cli.js';
import { scrubber, silentLogger, testEnv } from '../fixtures/pull-env.js';
import { rollupDiffs } from '../fixtures/rollup-check.js';

const HOUR = 3_600_000;
const NOW_HOUR = Math.floor(Date.now() / HOUR) * HOUR;
const FROM = NOW_HOUR - 4 * HOUR;
const TO = NOW_HOUR - HOUR;

function rows(deviceId: string): SinkPoint[] {
  const out: SinkPoint[] = [];
  for (let t = FROM, k = 0; t < TO; t += 60_000, k++)
    out.push({
      measurement: 'device_data',
      deviceId,
      time: t,
      fields: { temperature: 20 + (k % 7) / 2, mode: k % 3 ? 'eco' : 'auto' },
    });
  return out;
}

describe('a manual rollup is due at once', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let stack: App;
  const prefix = testPrefix('rman');
  let env: Record<string, string>;

  beforeAll(async () => {
    db = await createTestDatabase('rman');
    // no EXPEED_ROLLUP_SETTLE: the default 5 minutes
    env = testEnv({
      simUrl: 'http://127.0.0.1:9',
      prefix,
      db: db.name,
      influxUrl: INFLUX_URL,
      env: { LOG_LEVEL: 'warn' },
    });
    stack = createApp(loadConfig(env), { logger: silentLogger(), scrubber: scrubber() });
    expect(stack.config.rollupSettleMs).toBe(5 * 60_000);
  });

  afterAll(async () => {
    await stack?.close();
    await db?.drop();
    await deleteRedisPrefix(prefix);
  });

  test('hours written a moment ago (as by `backfill --wait`) are rolled up without the settle delay', async () => {
    // the write path marks each hour touched now: not due for another 5 minutes
    for (const d of ['m-1', 'm-2']) await stack.writer.write(rows(d), { source: 'pull' });
    expect((await stack.rollup.dirty.settled(stack.config.rollupSettleMs, 100)).length).toBe(0);
    expect((await stack.rollup.dirty.backlog()).hours).toBe(6);

    // the CLI's own timeout (90 s) is well under the settle delay: waiting it out would fail here
    const r = await runCli(
      ['rollup', '--from', new Date(FROM).toISOString(), '--to', new Date(TO).toISOString()],
      env,
      { timeoutMs: 90_000 },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('6/6 hour(s) rolled up into device_data_1h');
    expect((await stack.rollup.dirty.backlog()).hours).toBe(0);
    const check = await rollupDiffs(db.name, INFLUX_URL, FROM, TO);
    expect(check.diffs).toEqual([]);
    expect(check.hours).toBe(6);
  });

  test('a manual request makes an hour due now and gives it a score it never had; a later touch raises it again', async () => {
    const dirty = stack.rollup.dirty;
    const hour = FROM;
    await dirty.mark(new Map([['m-3', [hour]]]));
    const [touched] = (await dirty.settled(-10 * 60_000, 10)).filter((h) => h.deviceId === 'm-3');
    expect(Number(touched.score)).toBeGreaterThanOrEqual(Date.now() - 60_000);
    expect(await dirty.settled(stack.config.rollupSettleMs, 10)).toEqual([]);

    await dirty.mark(new Map([['m-3', [hour]]]), { manual: true });
    const [first] = await dirty.settled(stack.config.rollupSettleMs, 10);
    expect(first).toMatchObject({ deviceId: 'm-3', hour });
    expect(Number(first.score)).toBeLessThanOrEqual(hour + HOUR - stack.config.rollupSettleMs - 1);
    // a computation that read the touched score must not clear the hour
    expect(await dirty.clear([touched])).toBe(0);

    // touch, then a second manual request: a score different from the first manual one
    await dirty.mark(new Map([['m-3', [hour]]]));
    expect(await dirty.settled(stack.config.rollupSettleMs, 10)).toEqual([]);
    await dirty.mark(new Map([['m-3', [hour]]]), { manual: true });
    const [second] = await dirty.settled(stack.config.rollupSettleMs, 10);
    expect(second.score).not.toBe(first.score);
    expect(await dirty.clear([first])).toBe(0);
    expect(await dirty.clear([second])).toBe(1);
    expect((await dirty.backlog()).hours).toBe(0);
  });
});
