import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { pino } from 'pino';
import type { Logger } from '../../src/base/log.js';
import { startSimulator, type Simulator } from '../../src/simulator/index.js';
import { createApp, type App } from '../../src/app/app.js';
import { platformDay } from '../../src/platform/timestamp.js';
import {
  createTestDatabase,
  deleteRedisPrefix,
  INFLUX_URL,
  influxQuery,
  startInfluxd,
  testPrefix,
  type ChildServer,
  until,
} from '../helpers/services.js';
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

const HOUR = 3_600_000;
const FROM = Date.UTC(2026, 2, 1);
const TO = FROM + 3 * 24 * HOUR;
const DEVICES = [
  { id: 'f-1', key: 'key-f1', cadenceSec: 10 },
  { id: 'f-2', key: 'key-f2', cadenceSec: 15 },
];

/** Waits for a condition of the stack (the one wait helper, 20 s, polled every 20 ms). */
const waitFor = (what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<boolean> =>
  until(what, check, { timeoutMs, intervalMs: 20 });

/** What the writer logs each time InfluxDB refuses or cannot take a write it will try again. */
const INFLUX_RETRY = 'InfluxDB write failed, retrying';

/** A warn-level logger that keeps the message of every line, to wait for what the stack did. */
function recordingLogger(): { logger: Logger; messages: string[] } {
  const messages: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void messages.push(String(JSON.parse(line).msg)) });
  return { logger, messages };
}

async function expectExact(sim: Simulator, stack: App, db: string, influxUrl: string): Promise<void> {
  for (const d of DEVICES) {
    const expected = expectedTotals(sim, d.id, FROM, TO);
    const landed = await influxTotals(db, influxUrl, d.id, Object.keys(expected), numericFields(sim, d.id, FROM, TO));
    expect(landed).toEqual(expected);
    expect((await stack.checkpoints.get(d.id))?.upTo).toBe(TO);
  }
  expect(sim.stats.violations).toEqual([]);
}

describe('backfill under faults', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function setUp(opts: {
    clock?: () => number;
    env?: Record<string, string>;
    influxUrl?: string;
    tokenDailyLimit?: number;
    logger?: Logger;
  }) {
    const prefix = testPrefix('fault');
    const sim = await startSimulator({
      platformKey: PLATFORM_KEY,
      secretKey: SECRET_KEY,
      devices: DEVICES,
      from: FROM,
      to: TO,
      seed: 11,
      now: opts.clock,
      tokenDailyLimit: opts.tokenDailyLimit,
    });
    sim.faults.latencyMs = 25;
    cleanups.push(() => sim.close());
    const influxUrl = opts.influxUrl ?? INFLUX_URL;
    const db = await createTestDatabase('fault', influxUrl);
    cleanups.push(() => db.drop().catch(() => undefined));
    cleanups.push(() => deleteRedisPrefix(prefix));
    const config = testConfig({
      simUrl: sim.url,
      prefix,
      db: db.name,
      influxUrl,
      env: { EXPEED_PAGE_LIMIT: '300', EXPEED_BACKFILL_WINDOW: '1d', WORKER_CONCURRENCY: '2', ...opts.env },
    });
    const stack = createApp(config, { logger: opts.logger ?? silentLogger(), scrubber: scrubber(), clock: opts.clock });
    cleanups.push(() => stack.close());
    for (const d of DEVICES) await stack.registry.upsert(d, 'cli');
    for (const d of DEVICES) await stack.backfills.enqueue({ deviceId: d.id, from: FROM, to: TO, reason: 'manual' });
    return { sim, stack, db, influxUrl };
  }

  const upTos = async (stack: App) =>
    Promise.all(DEVICES.map(async (d) => (await stack.checkpoints.get(d.id))?.upTo ?? 0));
  const moved = (stack: App, id: string, beyond: number) => async () =>
    ((await stack.checkpoints.get(id))?.upTo ?? 0) > beyond;

  test('token revoked mid-walk: one refresh, the walk completes', async () => {
    const { sim, stack, db, influxUrl } = await setUp({});
    stack.startBackfillWorker();
    await waitFor('first progress', moved(stack, 'f-1', FROM));
    expect(sim.stats.tokenCalls).toBe(1);
    sim.faults.revokeTokens();
    const counts = await drained(stack.backfillQueue);
    expect(counts.failed).toBe(0);
    expect(sim.stats.tokenCalls).toBe(2);
    await expectExact(sim, stack, db.name, influxUrl);
  });

  test('token budget spent: jobs wait for the reset (injectable clock) and finish, never above the limit', async () => {
    // the platform day ends 4 s from now on this clock, but the clock stops 1 s before the end until
    // the test has seen the budget spent: a slow machine cannot carry the walk into the new day first
    const realStart = Date.now();
    const dayEnd = platformDay(realStart, 'Asia/Shanghai').end;
    let offset = dayEnd - 4000 - realStart;
    let held = true;
    const clock = () => (held ? Math.min(Date.now() + offset, dayEnd - 1000) : Date.now() + offset);
    const { sim, stack, db, influxUrl } = await setUp({
      clock,
      tokenDailyLimit: 2,
      env: { EXPEED_TOKEN_DAILY_LIMIT: '2', EXPEED_TOKEN_RESERVE: '0' },
    });
    const dayBefore = platformDay(clock(), 'Asia/Shanghai').day;
    sim.faults.latencyMs = 60; // a walk long enough for two revocations
    stack.startBackfillWorker();
    await waitFor('first progress', moved(stack, 'f-1', FROM));
    sim.faults.revokeTokens(); // refresh: the 2nd and last call of the day
    await waitFor('refresh', async () => sim.stats.tokenCalls === 2);
    // every call in flight has moved to the new token (a call rejected with the old token and then
    // with a new one too stops for good, by the client's rule: that would be a different test)
    const served = sim.stats.requests.history ?? 0;
    await waitFor('new token in use', async () => (sim.stats.requests.history ?? 0) >= served + 6);
    sim.faults.revokeTokens(); // now the budget is spent: jobs must wait for the new day
    await waitFor('a job delayed', async () => (await stack.backfillQueue.getJobCounts('delayed')).delayed > 0).catch(
      async (e) => {
        const failed = await stack.backfillQueue.getJobs(['failed']);
        throw new Error(
          `${(e as Error).message}; token calls ${sim.stats.tokenCalls}, failed: ${failed.map((j) => j.failedReason).join('; ')}`,
        );
      },
    );
    const delayed = await stack.backfillQueue.getJobs(['delayed']);
    expect(delayed.every((j) => j.attemptsMade === 0)).toBe(true); // waiting is not a failed attempt
    expect(sim.stats.tokenCalls).toBe(2); // a delayed job did not ask for a token it cannot have
    // the new day begins now: the clock runs on from the day's end
    offset = Math.max(offset, dayEnd - Date.now());
    held = false;

    const counts = await drained(stack.backfillQueue);
    expect((await stack.backfillQueue.getJobs(['failed'])).map((j) => j.failedReason)).toEqual([]);
    expect(counts.failed).toBe(0);
    expect(sim.stats.tokenCallsByDay[dayBefore]).toBe(2);
    expect(Object.values(sim.stats.tokenCallsByDay).every((n) => n <= 2)).toBe(true);
    expect(sim.stats.tokenCalls).toBe(3); // one more, on the new day
    await expectExact(sim, stack, db.name, influxUrl);
  });

  test('InfluxDB stopped mid-walk: jobs wait, then complete after it is back; nothing lost', async () => {
    const influxd: ChildServer = await startInfluxd();
    cleanups.push(() => influxd.close());
    const { logger, messages } = recordingLogger();
    const { sim, stack, db, influxUrl } = await setUp({ influxUrl: influxd.url, logger });
    stack.startBackfillWorker({ maxBackoffMs: 2000 });
    await waitFor('first progress', moved(stack, 'f-1', FROM));
    await influxd.kill();
    const refused = () => messages.filter((m) => m === INFLUX_RETRY).length;
    await waitFor('a write refused', async () => refused() >= 1);
    const atFirstRefusal = await upTos(stack);
    await waitFor('writes retried while InfluxDB is down', async () => refused() >= 4);
    // nothing was acknowledged while InfluxDB was down: the checkpoints stood still
    expect(await upTos(stack)).toEqual(atFirstRefusal);
    expect(atFirstRefusal.every((upTo) => upTo < TO)).toBe(true);
    await influxd.start();
    const counts = await drained(stack.backfillQueue, 180_000);
    expect(counts.failed).toBe(0);
    await influxQuery(db.name, 'SHOW MEASUREMENTS', influxUrl);
    await expectExact(sim, stack, db.name, influxUrl);
  });
});
