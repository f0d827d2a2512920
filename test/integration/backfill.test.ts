import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Simulator } from '../../src/simulator/index.js';
import type { App } from '../../src/app/app.js';
import { windowKey } from '../../src/pull/windows.js';
import { INFLUX_URL } from '../helpers/services.js';
import {
  drained,
  expectedTotals,
  influxTotals,
  numericFields,
  startPullEnv,
  type PullEnv,
} from '../fixtures/pull-env.js';

const HOUR = 3_600_000;
const FROM = Date.UTC(2026, 0, 10); // 2026-01-10T00:00Z
const TO = FROM + 3 * 24 * HOUR;
const DEVICES = [
  { id: 'dev-a', key: 'key-a', cadenceSec: 60 },
  { id: 'dev/b c', key: 'key-b', cadenceSec: 120 },
  { id: 'dev:ç', key: 'key-c', cadenceSec: 45 },
];

describe('backfill of several devices over several days', () => {
  let env: PullEnv;
  let sim: Simulator;
  let stack: App;
  let db: PullEnv['db'];

  beforeAll(async () => {
    env = await startPullEnv({
      name: 'bf',
      sim: { devices: DEVICES, from: FROM - 2 * 24 * HOUR, to: TO + 24 * HOUR, seed: 7, boundaryRepeat: true },
      env: { EXPEED_BACKFILL_WINDOW: '12h', EXPEED_PAGE_LIMIT: '700', WORKER_CONCURRENCY: '3' },
    });
    ({ sim, app: stack, db } = env);
  });

  afterAll(async () => {
    await env?.close();
  });

  test('lands exactly what the simulator holds, per device and field', async () => {
    let queued = 0;
    for (const d of DEVICES)
      queued += (await stack.backfills.enqueue({ deviceId: d.id, from: FROM, to: TO, reason: 'manual' })).length;
    // 12 h windows on the platform-local grid (Asia/Shanghai midnight and noon = 16:00Z and 04:00Z)
    expect(queued).toBe(3 * 7);
    // the same windows again while they wait: deduplicated, nothing new queued
    const again = await stack.backfills.enqueue({ deviceId: 'dev-a', from: FROM, to: TO, reason: 'manual' });
    expect(again.map((w) => w.deduplicated)).toEqual(Array(7).fill(true));
    expect(again[0]).toMatchObject({ from: FROM, to: FROM + 4 * HOUR });
    expect((await stack.backfillQueue.getJobCounts('waiting')).waiting).toBe(21);

    stack.startBackfillWorker();
    const counts = await drained(stack.backfillQueue);
    expect(counts.failed).toBe(0);
    expect(counts.completed).toBe(21);

    for (const d of DEVICES) {
      const expected = expectedTotals(sim, d.id, FROM, TO);
      expect(Object.keys(expected).length).toBeGreaterThan(2);
      const landed = await influxTotals(
        db.name,
        INFLUX_URL,
        d.id,
        Object.keys(expected),
        numericFields(sim, d.id, FROM, TO),
      );
      expect(landed).toEqual(expected);
      const cp = await stack.checkpoints.get(d.id);
      expect(cp?.upTo).toBe(TO);
      const rows = sim.rows(d.id, FROM, TO);
      expect(cp?.lastRowAt).toBe(rows[rows.length - 1].time);
      expect(await stack.checkpoints.position(windowKey(d.id, { from: FROM, to: FROM + 4 * HOUR }))).toBeUndefined();
    }
    expect(sim.stats.violations).toEqual([]);
    expect(sim.stats.tokenCalls).toBe(1);
    expect(sim.stats.largestLimit).toBe(700);
  });

  test('a finished window can be queued again, and the device registry knows nothing failed', async () => {
    const again = await stack.backfills.enqueue({
      deviceId: 'dev-a',
      from: FROM + 4 * HOUR,
      to: FROM + 16 * HOUR,
      reason: 'manual',
    });
    expect(again).toHaveLength(1);
    expect(again[0].deduplicated).toBe(false);
    await drained(stack.backfillQueue);
    const job = await stack.backfillQueue.getJob(again[0].jobId);
    expect(await job?.getState()).toBe('completed');
    expect(job?.returnvalue.points).toBe(sim.rows('dev-a', FROM + 4 * HOUR, FROM + 16 * HOUR).length);
    expect((await stack.registry.get('dev-a'))?.failure).toBeUndefined();
  });
});
