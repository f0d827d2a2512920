import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/index.js';
import { createApp, type App } from '../../src/app/app.js';
import { PlatformNewestStore, QuietCheck } from '../../src/pull/quiet-check.js';
import { gatherStatus } from '../../src/status/report.js';
import { renderStatus } from '../../src/cli/commands/status.js';
import { deleteRedisPrefix, INFLUX_URL, testPrefix, until } from '../helpers/services.js';
import {
  drained,
  expectedTotals,
  influxTotals,
  numericFields,
  PLATFORM_KEY,
  SECRET_KEY,
  scrubber,
  silentLogger,
  stackScheduler,
  startPullEnv,
  testConfig,
  type PullEnv,
} from '../fixtures/pull-env.js';
import type { BackfillJob } from '../../src/base/jobs.js';

const HOUR = 3_600_000;
const now = Date.now();
// the quiet device reported nothing for the last six hours
const QUIET = {
  id: 'q-quiet',
  key: 'key-q1',
  cadenceSec: 60,
  offline: [[now - 6 * HOUR, now + HOUR]] as Array<[number, number]>,
};
const BUSY = { id: 'q-busy', key: 'key-q2', cadenceSec: 45 };

describe('currentDatapoints before nightly and catch-up walks', () => {
  let env: PullEnv;
  let sim: Simulator;
  let stack: App;
  let db: PullEnv['db'];
  let prefix: string;
  // the app counts skipped walks in its metrics (expeed_walks_skipped_total)
  const skipped = async () => (await stack.metrics.walksSkipped.get()).values[0]?.value ?? 0;

  beforeAll(async () => {
    env = await startPullEnv({
      name: 'quiet',
      sim: { devices: [QUIET, BUSY], from: now - 48 * HOUR, to: now + HOUR, seed: 11 },
      env: { EXPEED_BACKFILL_WINDOW: '2h' },
      register: false,
    });
    ({ sim, app: stack, db, prefix } = env);
  });

  afterAll(async () => {
    await env?.close();
  });

  const scheduler = () => stackScheduler(stack, prefix, now - 24 * HOUR);

  test('a quiet device costs one current call a night and no history call; its checkpoint still reaches the slot', async () => {
    await stack.registry.upsert(QUIET, 'cli');
    await stack.checkpoints.initialise(QUIET.id, now - 5 * HOUR);
    const before = { ...sim.stats.requests };
    const slot = new Date(Math.floor(Date.now() / 1000) * 1000);
    const fired = await scheduler().fire('nightly', slot);
    // five hours on a two-hour grid: three windows, all answered by one call
    expect(fired.jobs).toBeGreaterThanOrEqual(3);
    stack.startBackfillWorker();
    const counts = await drained(stack.backfillQueue);
    expect(counts.failed).toBe(0);
    expect((sim.stats.requests.current ?? 0) - (before.current ?? 0)).toBe(1);
    expect((sim.stats.requests.history ?? 0) - (before.history ?? 0)).toBe(0);
    expect(await skipped()).toBe(fired.jobs);
    expect((await stack.checkpoints.get(QUIET.id))?.upTo).toBe(slot.getTime());
    const seen = await stack.platformNewest.get(QUIET.id);
    const newest = sim.rows(QUIET.id, now - 48 * HOUR, now).at(-1)!.time;
    expect(seen?.newestAt).toBe(newest);
    expect(seen!.askedAt).toBeGreaterThanOrEqual(slot.getTime());
  });

  test('a device with new data is walked and lands exactly; status shows both newest times', async () => {
    await stack.registry.upsert(BUSY, 'cli');
    await stack.checkpoints.initialise(BUSY.id, now - 3 * HOUR);
    const before = { ...sim.stats.requests };
    const skippedBefore = await skipped();
    // the next second's slot, once it has begun (the simulator's rows up to it exist by then)
    const slot = new Date(Math.floor(Date.now() / 1000) * 1000 + 1000);
    await until('the slot to begin', async () => Date.now() >= slot.getTime(), { timeoutMs: 5_000, intervalMs: 20 });
    const fired = await scheduler().fire('nightly', slot);
    expect(fired.ran).toBe(true);
    const counts = await drained(stack.backfillQueue);
    expect(counts.failed).toBe(0);
    // one call per device (the quiet one's answer was asked before this slot: asked again)
    expect((sim.stats.requests.current ?? 0) - (before.current ?? 0)).toBe(2);
    expect((sim.stats.requests.history ?? 0) - (before.history ?? 0)).toBeGreaterThan(0);
    // only the quiet device's one-second window was skipped
    expect((await skipped()) - skippedBefore).toBe(1);
    const expected = expectedTotals(sim, BUSY.id, now - 3 * HOUR, slot.getTime());
    // the walk had real work: rows are sparse, so count rows, not one field's values (which vary with the clock)
    expect(sim.rows(BUSY.id, now - 3 * HOUR, slot.getTime()).length).toBeGreaterThan(100);
    const landed = await influxTotals(
      db.name,
      INFLUX_URL,
      BUSY.id,
      Object.keys(expected),
      numericFields(sim, BUSY.id, now - 3 * HOUR, now),
    );
    expect(landed).toEqual(expected);
    expect((await stack.checkpoints.get(BUSY.id))?.upTo).toBe(slot.getTime());

    const report = await gatherStatus({
      registry: stack.registry,
      checkpoints: stack.checkpoints,
      influx: stack.influx,
      queues: [stack.backfillQueue],
      backfillQueueName: 'backfill',
      tokens: stack.tokens,
      deadLetters: stack.deadLetters,
      platformNewest: stack.platformNewest,
    });
    const busy = report.devices.find((d) => d.id === BUSY.id)!;
    // the platform's newest row when it was asked: a row of the simulator, at or after the slot's last one
    expect(sim.rows(BUSY.id, busy.platformNewestAt!, busy.platformNewestAt! + 1)).toHaveLength(1);
    expect(busy.platformNewestAt).toBeGreaterThanOrEqual(
      sim.rows(BUSY.id, now - 3 * HOUR, slot.getTime()).at(-1)!.time,
    );
    expect(busy.lastDataAt).toBe(sim.rows(BUSY.id, now - 3 * HOUR, slot.getTime()).at(-1)!.time);
    expect(report.devices.find((d) => d.id === QUIET.id)!.platformNewestAt).toBe(
      sim.rows(QUIET.id, now - 48 * HOUR, now).at(-1)!.time,
    );
    const text = renderStatus(report, 'Asia/Shanghai', (s) => s, { all: true });
    expect(text).toMatch(/PLATFORM NEWEST/);
  });
});

describe('the quiet check never skips on doubt', () => {
  const prefix = testPrefix('quiet-unit');
  let stack: App;
  let sim: Simulator;
  const T = Date.UTC(2026, 10, 1);
  const job = (reason: BackfillJob['reason'], from = T, to = T + HOUR): BackfillJob => ({
    deviceId: 'd1',
    from,
    to,
    reason,
  });

  beforeAll(async () => {
    sim = await startSimulator({ platformKey: PLATFORM_KEY, secretKey: SECRET_KEY, devices: 1, from: T - HOUR, to: T });
    stack = createApp(testConfig({ simUrl: sim.url, prefix, db: 'unused', influxUrl: INFLUX_URL }), {
      logger: silentLogger(),
      scrubber: scrubber(),
    });
    await stack.registry.upsert({ id: 'd1', key: 'k1' }, 'cli');
    await stack.checkpoints.initialise('d1', T);
  });

  afterAll(async () => {
    await stack?.close();
    await sim?.close();
    await deleteRedisPrefix(prefix);
  });

  function check(
    current: () => Promise<{
      row: { time: number; values: Record<string, unknown> } | undefined;
      unreadable: Array<{ reason: string; raw: unknown }>;
    }>,
    at = T + 2 * HOUR,
  ) {
    let calls = 0;
    const q = new QuietCheck({
      platform: { currentDatapoints: async () => (calls++, current()) },
      store: new PlatformNewestStore(stack.redis, `${prefix}:${Math.random()}`),
      registry: stack.registry,
      checkpoints: stack.checkpoints,
      logger: silentLogger(),
      now: () => at,
    });
    return { q, calls: () => calls };
  }

  test('operator backfills and gap fills always walk, without a call', async () => {
    const { q, calls } = check(async () => ({ row: { time: T - HOUR, values: { a: 1 } }, unreadable: [] }));
    expect(await q.skip(job('manual'))).toBe(false);
    expect(await q.skip(job('gap'))).toBe(false);
    expect(calls()).toBe(0);
  });

  test('a failed call, an unreadable or empty answer, a row at the window start, or a window not yet ended: walked', async () => {
    expect(await check(async () => Promise.reject(new Error('502'))).q.skip(job('nightly'))).toBe(false);
    expect(
      await check(async () => ({ row: undefined, unreadable: [{ reason: 'bad time', raw: {} }] })).q.skip(
        job('nightly'),
      ),
    ).toBe(false);
    expect(await check(async () => ({ row: undefined, unreadable: [] })).q.skip(job('nightly'))).toBe(false);
    expect(
      await check(async () => ({ row: { time: T, values: { a: 1 } }, unreadable: [] })).q.skip(job('catch-up')),
    ).toBe(false);
    // asked before the window ended: the device may still report into it
    expect(
      await check(async () => ({ row: { time: T - HOUR, values: { a: 1 } }, unreadable: [] }), T + HOUR - 1).q.skip(
        job('nightly'),
      ),
    ).toBe(false);
    expect((await stack.checkpoints.get('d1'))?.upTo).toBe(T);
    // and the one case that skips: newest before the window, asked after its end
    expect(
      await check(async () => ({ row: { time: T - 1, values: { a: 1 } }, unreadable: [] }), T + HOUR).q.skip(
        job('catch-up'),
      ),
    ).toBe(true);
    expect((await stack.checkpoints.get('d1'))?.upTo).toBe(T + HOUR);
  });
});
