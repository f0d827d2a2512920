import { afterAll, describe, expect, test } from 'vitest';
import { startSimulator } from '../../src/simulator/index.js';
import { createApp } from '../../src/app/app.js';
import { createTestDatabase, deleteRedisPrefix, INFLUX_URL, testPrefix } from '../helpers/services.js';
import {
  drained,
  expectedTotals,
  influxTotals,
  numericFields,
  PLATFORM_KEY,
  SECRET_KEY,
  scrubber,
  silentLogger,
  testConfig,
} from '../fixtures/pull-env.js';

/**
 * The vendor's result code lists end in "…": a code we do not know is retried with backoff a
 * bounded number of times (EXPEED_UNKNOWN_CODE_RETRIES), then the job fails naming the code and
 * the vendor's message — and the device is not marked failed, since the code says nothing about it.
 */

const HOUR = 3_600_000;
const FROM = Date.UTC(2026, 1, 28, 16); // a platform day (Shanghai): one job
const TO = FROM + 24 * HOUR;
const DEVICES = [{ id: 'u-1', key: 'key-u1', cadenceSec: 30 }];

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setUp(env: Record<string, string> = {}) {
  const prefix = testPrefix('unknown');
  const sim = await startSimulator({
    platformKey: PLATFORM_KEY,
    secretKey: SECRET_KEY,
    devices: DEVICES,
    from: FROM,
    to: TO,
    seed: 13,
  });
  cleanups.push(() => sim.close());
  const db = await createTestDatabase('unknown');
  cleanups.push(() => db.drop().catch(() => undefined));
  cleanups.push(() => deleteRedisPrefix(prefix));
  const config = testConfig({
    simUrl: sim.url,
    prefix,
    db: db.name,
    influxUrl: INFLUX_URL,
    env: { EXPEED_PAGE_LIMIT: '500', ...env },
  });
  const stack = createApp(config, { logger: silentLogger(), scrubber: scrubber() });
  cleanups.push(() => stack.close());
  for (const d of DEVICES) await stack.registry.upsert(d, 'cli');
  await stack.backfills.enqueue({ deviceId: 'u-1', from: FROM, to: TO, reason: 'manual' });
  return { sim, stack, db };
}

describe('unknown result codes', () => {
  test('code 42 answered twice, then success: the backfill lands everything', async () => {
    const { sim, stack, db } = await setUp();
    sim.faults.codeStorm(42, 2, 'history');
    stack.startBackfillWorker();
    const counts = await drained(stack.backfillQueue);
    expect((await stack.backfillQueue.getJobs(['failed'])).map((j) => j.failedReason)).toEqual([]);
    expect(counts.completed).toBe(1);
    const expected = expectedTotals(sim, 'u-1', FROM, TO);
    expect(
      await influxTotals(db.name, INFLUX_URL, 'u-1', Object.keys(expected), numericFields(sim, 'u-1', FROM, TO)),
    ).toEqual(expected);
    expect((await stack.checkpoints.get('u-1'))?.upTo).toBe(TO);
    expect((await stack.registry.get('u-1'))?.failure).toBeUndefined();
  }, 60_000);

  test('more than EXPEED_UNKNOWN_CODE_RETRIES answers of code 42: the job fails naming it; the device is not marked failed', async () => {
    const { sim, stack } = await setUp({ EXPEED_UNKNOWN_CODE_RETRIES: '2' });
    sim.faults.codeStorm(42, 1e9, 'history');
    stack.startBackfillWorker();
    const counts = await drained(stack.backfillQueue);
    expect(counts.failed).toBe(1);
    const [job] = await stack.backfillQueue.getJobs(['failed']);
    expect(job.failedReason).toContain('unknown result code 42 from the platform in 3 answers in a row');
    expect(job.failedReason).toMatch(/vendor says ".+"/);
    expect(job.failedReason).toContain('device u-1');
    expect(sim.stats.requests.history).toBe(3);
    expect((await stack.registry.get('u-1'))?.failure).toBeUndefined();
  }, 60_000);
});
