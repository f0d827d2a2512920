/**
 * The whole service as an operator runs it: `expeed-sync run` as a child process against the
 * simulator, real Redis and real InfluxDB. Health, readiness, metrics, the queue dashboard's
 * auth, `status`, and a SIGTERM in the middle of a backfill: exit 0 within the grace, a checkpoint
 * that never runs ahead of the data, and a next start that finishes the job exactly.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { startSimulator, type Simulator } from '../../src/simulator/index.js';
import { Checkpoints } from '../../src/pull/checkpoints.js';
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

const metric = async (name: string, labels = '') => metricValue(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), name, labels);

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
    EXPEED_SCHEDULE_NIGHTLY: '',
    EXPEED_SCHEDULE_GAPS: '',
    EXPEED_SCHEDULE_STATUS: '',
    ADMIN_USER: 'ops',
    ADMIN_PASSWORD: 'ops-password-123',
    LOG_LEVEL: 'info',
  };
  for (const d of sim.devices) {
    const added = await runCli(['devices', 'add', d.id, '--key', d.key], env);
    expect(added.code).toBe(0);
  }
});

afterAll(async () => {
  await sim?.close();
  await db?.drop();
  await deleteRedisPrefix(prefix);
  redis.disconnect();
});

describe('expeed-sync run', () => {
  test('health, metrics, admin auth; SIGTERM mid-backfill exits 0 with a consistent checkpoint; the next start finishes exactly', async () => {
    const first = start();
    await until('readiness', async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200);
    const ready = await (await fetch(`http://127.0.0.1:${port}/readyz`)).json();
    expect(ready).toEqual({ status: 'ready', checks: { redis: 'ok', influxdb: 'ok', 'worker:backfill': 'ok', 'worker:status': 'ok', 'worker:rollup': 'ok', 'worker:ingest': 'ok', 'dead-letters': 'ok' } });
    expect(await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()).toEqual({ status: 'ok' });

    // Bull Board is behind basic auth
    expect((await fetch(`http://127.0.0.1:${port}/admin/queues`)).status).toBe(401);
    const wrong = { authorization: `Basic ${Buffer.from('ops:nope').toString('base64')}` };
    expect((await fetch(`http://127.0.0.1:${port}/admin/queues`, { headers: wrong })).status).toBe(401);
    const right = { authorization: `Basic ${Buffer.from('ops:ops-password-123').toString('base64')}` };
    const board = await fetch(`http://127.0.0.1:${port}/admin/queues/api/queues`, { headers: right });
    expect(board.status).toBe(200);
    expect(((await board.json()) as { queues: Array<{ name: string }> }).queues.map((q) => q.name).sort()).toEqual(['backfill', 'ingest', 'rollup', 'status']);

    // part of the history is written, not all of it
    await until('some pull points', async () => ((await metric('expeed_points_written_total', '{source="pull"}')) ?? 0) > 300);
    expect(await metric('expeed_token_calls_today')).toBe(1);
    expect(await metric('expeed_token_daily_limit')).toBe(200);
    expect(await metric('expeed_token_refreshes_total')).toBe(1);
    expect(await metric('expeed_platform_requests_total', '{endpoint="history",result="code_0"}')).toBeGreaterThan(0);
    // the dead-letter budget, and a signed POST refused without keeping anything (no token configured here)
    expect(await metric('expeed_dead_letter_max_bytes')).toBe(256 * 1024 * 1024);
    expect(await metric('expeed_dead_letter_bytes')).toBe(0);
    const signed = await fetch(`http://127.0.0.1:${port}/webhook?signature=${'f'.repeat(32)}&nonce=n&timestamp=1`, { method: 'POST', body: '{}' });
    expect(signed.status).toBe(503);
    expect(await metric('expeed_webhook_refused_total', '{reason="signature"}')).toBe(1);

    first.child.kill('SIGTERM');
    const exit = await Promise.race([first.exited, new Promise<'late'>((r) => setTimeout(() => r('late'), 20_000))]);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(first.stderr()).toContain('"msg":"stopped"');
    expect(first.stderr()).not.toContain('svc-sk-secret');

    // nothing before a device's checkpoint is missing; at least one device is not finished yet
    const checkpoints = new Checkpoints({ redis, prefix });
    let unfinished = 0;
    for (const d of sim.devices) {
      const cp = await checkpoints.get(d.id);
      expect(cp).toBeDefined();
      expect(await valuesInInflux(d.id, cp!.upTo)).toBe(valuesInSim(d.id, Math.min(cp!.upTo, to)));
      if (cp!.upTo < to) unfinished++;
    }
    expect(unfinished).toBeGreaterThan(0);

    // the next start resumes and lands everything, once
    sim.faults.latencyMs = 0;
    const second = start();
    await until(
      'the backfill to finish',
      async () => {
        for (const d of sim.devices) if ((await valuesInInflux(d.id)) !== valuesInSim(d.id)) return false;
        return true;
      },
      { timeoutMs: 90_000 },
    );
    const status = await runCli(['status', '--json'], env);
    expect(status.code).toBe(0);
    const report = JSON.parse(status.stdout);
    expect(report.devices.map((d: { id: string }) => d.id).sort()).toEqual(sim.devices.map((d) => d.id).sort());
    expect(report.token.calls).toBe(1); // the cached token survived the restart
    expect(report.deadLetters).toBe(0);
    const text = await runCli(['status'], env);
    expect(text.stdout).toMatch(/^DEVICES \(2\)$/m);
    expect(text.stdout).toMatch(/^ {2}backfill +waiting \d+ +active \d+/m);
    expect(text.stdout).toContain('1/200 calls on platform day');

    second.child.kill('SIGINT');
    expect(await second.exited).toEqual({ code: 0, signal: null });
    for (const d of sim.devices) expect(await valuesInInflux(d.id)).toBe(valuesInSim(d.id));
    expect(sim.stats.violations).toEqual([]);
  }, 180_000);
});
