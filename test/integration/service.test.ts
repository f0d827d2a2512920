/**
 * The whole service as an operator runs it: `expeed-sync run` as a child process against the
 * simulator, real Redis and real InfluxDB. Health, readiness, metrics, the queue dashboard's
 * auth, `status`, and a SIGTERM in the middle of a backfill: exit 0 within the grace, a checkpoint
 * that never runs ahead of the data, and a next start that finishes the job exactly.
 *
 * Every child process starts through tsx when dist/ is not a fresh build (CI), seconds each on a
 * loaded machine: devices are registered in Redis directly (`devices add` has its own test) and
 * `status` runs once. The backfill queue stays paused while the checks that need no progress run,
 * and its windows are short and many, so the SIGTERM lands mid-backfill however slow the machine.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { Queue } from 'bullmq';
import { startSimulator, type Simulator } from '../../src/simulator/index.js';
import { Checkpoints } from '../../src/pull/checkpoints.js';
import { DeviceRegistry } from '../../src/devices/registry.js';
import { QUEUE } from '../../src/base/jobs.js';
import { metricValue, runCli, startRun } from '../helpers/cli.js';
import { fieldValuesInInflux, fieldValuesInSim } from '../fixtures/pull-env.js';
import { createTestDatabase, deleteRedisPrefix, freePort, REDIS_URL, testPrefix, until } from '../helpers/services.js';

const DAY = 86_400_000;
const prefix = testPrefix('service');
const to = Math.floor(Date.now() / 60_000) * 60_000 - 2 * DAY;
const from = to - 3 * DAY;
let sim: Simulator;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let port: number;
let env: Record<string, string>;
const redis = new Redis(REDIS_URL);

const start = () => startRun(env);

const metricsText = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();

/** Field values per device in InfluxDB before `before` (all when omitted). */
const valuesInInflux = (deviceId: string, before?: number) => fieldValuesInInflux(db.name, deviceId, before);

const valuesInSim = (deviceId: string, before = to) => fieldValuesInSim(sim, deviceId, from, before);

beforeAll(async () => {
  db = await createTestDatabase('service');
  sim = await startSimulator({ platformKey: 'svc-pk', secretKey: 'svc-sk-secret', devices: 2, from, to, seed: 7 });
  sim.faults.latencyMs = 250; // slow enough that a SIGTERM lands in the middle of the walk
  port = await freePort();
  env = {
    EXPEED_BASE_URL: sim.url,
    EXPEED_PLATFORM_KEY: 'svc-pk',
    EXPEED_SECRET_KEY: 'svc-sk-secret',
    EXPEED_PREFIX: prefix,
    REDIS_URL,
    INFLUX_URL: db.url,
    INFLUX_BUCKET: db.name,
    INFLUX_API: 'v1',
    WEBHOOK_PORT: String(port),
    EXPEED_BACKFILL_START: new Date(from).toISOString(),
    EXPEED_PAGE_LIMIT: '150',
    // 6 h windows, two at a time: a window is a few pages (a SIGTERM lets the running ones finish
    // within the grace) and the whole backfill is dozens of them (far from done when it lands)
    EXPEED_BACKFILL_WINDOW: '6h',
    WORKER_CONCURRENCY: '2',
    EXPEED_SCHEDULE_NIGHTLY: '',
    EXPEED_SCHEDULE_GAPS: '',
    EXPEED_SCHEDULE_STATUS: '',
    ADMIN_USER: 'ops',
    ADMIN_PASSWORD: 'ops-password-123',
    LOG_LEVEL: 'info',
  };
  const registry = new DeviceRegistry(redis, prefix);
  for (const d of sim.devices) await registry.upsert({ id: d.id, key: d.key }, 'cli');
});

afterAll(async () => {
  await sim?.close();
  await db?.drop();
  await deleteRedisPrefix(prefix);
  redis.disconnect();
});

/**
 * One operator's session, in order: each step is its own test (a failure names the concern), and
 * they share the two `run` processes. vitest runs a file's tests in sequence.
 */
describe.sequential('expeed-sync run', () => {
  let backfillQueue: Queue;
  let first: ReturnType<typeof start>;
  let metrics = '';
  const metric = (name: string, labels = '') => metricValue(metrics, name, labels);

  afterAll(async () => {
    first?.child.kill('SIGKILL');
    await backfillQueue?.close();
  });

  test('starts ready: Redis, InfluxDB, every worker and the dead-letter budget', async () => {
    // the first sync's windows wait in the paused queue until the checks that need no progress are done
    backfillQueue = new Queue(QUEUE.backfill, { connection: redis, prefix });
    await backfillQueue.pause();
    first = start();
    await until('readiness', async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200);
    const ready = await (await fetch(`http://127.0.0.1:${port}/readyz`)).json();
    expect(ready).toEqual({
      status: 'ready',
      checks: {
        redis: 'ok',
        influxdb: 'ok',
        'worker:backfill': 'ok',
        'worker:status': 'ok',
        'worker:rollup': 'ok',
        'worker:ingest': 'ok',
        'dead-letters': 'ok',
        'redis-headroom': 'ok',
      },
    });
    expect(await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()).toEqual({ status: 'ok' });
  }, 60_000);

  test('Bull Board is behind basic auth', async () => {
    expect((await fetch(`http://127.0.0.1:${port}/admin/queues`)).status).toBe(401);
    const wrong = { authorization: `Basic ${Buffer.from('ops:nope').toString('base64')}` };
    expect((await fetch(`http://127.0.0.1:${port}/admin/queues`, { headers: wrong })).status).toBe(401);
    const right = { authorization: `Basic ${Buffer.from('ops:ops-password-123').toString('base64')}` };
    const board = await fetch(`http://127.0.0.1:${port}/admin/queues/api/queues`, { headers: right });
    expect(board.status).toBe(200);
    expect(((await board.json()) as { queues: Array<{ name: string }> }).queues.map((q) => q.name).sort()).toEqual([
      'backfill',
      'ingest',
      'rollup',
      'status',
    ]);
  });

  test('a signed POST is refused without keeping anything (no webhook token configured)', async () => {
    const signed = await fetch(`http://127.0.0.1:${port}/webhook?signature=${'f'.repeat(32)}&nonce=n&timestamp=1`, {
      method: 'POST',
      body: '{}',
    });
    expect(signed.status).toBe(503);
    expect(await backfillQueue.getJobCounts('active', 'completed')).toEqual({ active: 0, completed: 0 });
  });

  test('SIGTERM mid-backfill: exit 0 within the grace, no secret in the log', async () => {
    // part of the history is written, not all of it: SIGTERM as soon as that is seen
    await backfillQueue.resume();
    metrics = await until('some pull points', async () => {
      const text = await metricsText();
      return (metricValue(text, 'expeed_points_written_total', '{source="pull"}') ?? 0) > 300 && text;
    });
    first.child.kill('SIGTERM');
    const exit = await Promise.race([first.exited, new Promise<'late'>((r) => setTimeout(() => r('late'), 20_000))]);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(first.stderr()).toContain('"msg":"stopped"');
    expect(first.stderr()).not.toContain('svc-sk-secret');
  }, 90_000);

  test('the metrics read before the SIGTERM: one token call, history requests, the dead-letter budget, the refused POST', () => {
    expect(metric('expeed_token_calls_today')).toBe(1);
    expect(metric('expeed_token_daily_limit')).toBe(200);
    expect(metric('expeed_token_refreshes_total')).toBe(1);
    expect(metric('expeed_platform_requests_total', '{endpoint="history",result="code_0"}')).toBeGreaterThan(0);
    expect(metric('expeed_dead_letter_max_bytes')).toBe(256 * 1024 * 1024);
    expect(metric('expeed_dead_letter_bytes')).toBe(0);
    expect(metric('expeed_webhook_refused_total', '{reason="signature"}')).toBe(1);
  });

  test('after the SIGTERM nothing before a checkpoint is missing, and the backfill is not finished', async () => {
    const checkpoints = new Checkpoints({ redis, prefix });
    let unfinished = 0;
    for (const d of sim.devices) {
      const cp = await checkpoints.get(d.id);
      expect(cp).toBeDefined();
      expect(await valuesInInflux(d.id, cp!.upTo)).toBe(valuesInSim(d.id, Math.min(cp!.upTo, to)));
      if (cp!.upTo < to) unfinished++;
    }
    expect(unfinished).toBeGreaterThan(0);
  });

  test('the next start resumes and lands everything once; status shows both devices and the surviving token', async () => {
    sim.faults.latencyMs = 0;
    const second = start();
    try {
      await until(
        'the backfill to finish',
        async () => {
          for (const d of sim.devices) if ((await valuesInInflux(d.id)) !== valuesInSim(d.id)) return false;
          return true;
        },
        { timeoutMs: 90_000 },
      );
      const status = await runCli(['status', '--all'], env);
      expect(status.code).toBe(0);
      expect(status.stdout).toMatch(/^DEVICES \(2\)$/m);
      for (const d of sim.devices) expect(status.stdout).toMatch(new RegExp(`^ {2}${d.id} `, 'm'));
      expect(status.stdout).toMatch(/^ {2}backfill +waiting \d+ +active \d+/m);
      expect(status.stdout).toContain('1/200 calls on platform day'); // the cached token survived the restart
      expect(status.stdout).toMatch(/^DEAD LETTERS {2}0$/m);
    } finally {
      second.child.kill('SIGINT');
    }
    expect(await second.exited).toEqual({ code: 0, signal: null });
    for (const d of sim.devices) expect(await valuesInInflux(d.id)).toBe(valuesInSim(d.id));
    expect(sim.stats.violations).toEqual([]);
  }, 180_000);
});
