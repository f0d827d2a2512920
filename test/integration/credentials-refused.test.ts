/**
 * One cause, one line: `expeed-sync run` started with a secret key the platform refuses, 50
 * devices never synced. The first sync's jobs wait for the token cool-down (delayed, no attempt
 * spent) instead of failing one by one; the log names the refusal once; `status` says it in one
 * line instead of listing 50 failing devices. Started again with the right key, the waiting jobs
 * start at once and the first sync completes.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { Queue } from 'bullmq';
import { startSimulator, type Simulator } from '../../src/simulator/index.js';
import { DeviceRegistry } from '../../src/devices/registry.js';
import { Checkpoints } from '../../src/pull/checkpoints.js';
import { QUEUE } from '../../src/base/jobs.js';
import { runCli, startRun, type RunningService } from '../helpers/cli.js';
import { createTestDatabase, deleteRedisPrefix, freePort, REDIS_URL, testPrefix, until } from '../helpers/services.js';

const DEVICES = 50;
const prefix = testPrefix('credrefused');
const to = Math.floor(Date.now() / 60_000) * 60_000;
const from = to - 2 * 3_600_000;
const redis = new Redis(REDIS_URL);
let sim: Simulator;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let env: Record<string, string>;
let queue: Queue;
let running: RunningService | undefined;

beforeAll(async () => {
  db = await createTestDatabase('credrefused');
  sim = await startSimulator({ platformKey: 'cr-pk', secretKey: 'cr-sk-right', devices: DEVICES, from, to, seed: 23 });
  env = {
    EXPEED_BASE_URL: sim.url,
    EXPEED_PLATFORM_KEY: 'cr-pk',
    EXPEED_SECRET_KEY: 'cr-sk-wrong',
    EXPEED_PREFIX: prefix,
    REDIS_URL,
    INFLUX_URL: db.url,
    INFLUX_BUCKET: db.name,
    INFLUX_API: 'v1',
    WEBHOOK_PORT: String(await freePort()),
    EXPEED_BACKFILL_START: new Date(from).toISOString(),
    EXPEED_TOKEN_COOLDOWN: '1h',
    EXPEED_RATE_LIMIT: '1000',
    EXPEED_SCHEDULE_NIGHTLY: '',
    EXPEED_SCHEDULE_GAPS: '',
    // the status slot stays on: its first poll at start meets the refusal too
    LOG_LEVEL: 'info',
  };
  const registry = new DeviceRegistry(redis, prefix);
  for (const d of sim.devices) await registry.upsert({ id: d.id, key: d.key }, 'cli');
  queue = new Queue(QUEUE.backfill, { connection: redis, prefix });
});

afterAll(async () => {
  running?.child.kill('SIGKILL');
  await queue?.close();
  await sim?.close();
  await db?.drop();
  await deleteRedisPrefix(prefix);
  redis.disconnect();
});

async function stop(r: RunningService): Promise<void> {
  r.child.kill('SIGTERM');
  expect((await r.exited).code).toBe(0);
}

describe.sequential('run with credentials the platform refuses', () => {
  let jobs = 0;

  test('one token call, every first-sync job waits for the cool-down, none failed, the refusal logged once', async () => {
    running = startRun(env);
    const r = running;
    await until(
      'every first-sync job delayed',
      async () => {
        const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized');
        jobs = c.delayed;
        return c.delayed >= DEVICES && c.waiting + c.active + c.prioritized === 0;
      },
      { timeoutMs: 60_000, detail: () => `token calls ${sim.stats.tokenCalls}; stderr ${r.stderr().slice(-2000)}` },
    );
    const counts = await queue.getJobCounts('delayed', 'failed', 'completed');
    expect(counts).toEqual({ delayed: jobs, failed: 0, completed: 0 });
    // the status poll at start was skipped for the pause, not failed
    const statusQueue = new Queue(QUEUE.status, { connection: redis, prefix });
    await until(
      'the first status poll ended',
      async () =>
        (await statusQueue.getJobCounts('completed', 'failed')).completed +
          (await statusQueue.getJobCounts('failed')).failed >
        0,
    );
    expect(await statusQueue.getJobCounts('failed', 'completed', 'delayed')).toEqual({
      failed: 0,
      completed: 1,
      delayed: 0,
    });
    await statusQueue.close();
    expect(sim.stats.tokenCalls).toBe(1);
    expect(sim.stats.requests.history ?? 0).toBe(0);
    const delayed = await queue.getJobs(['delayed']);
    expect(delayed.every((j) => j.attemptsMade === 0)).toBe(true);
    // each waits for the end of the one-hour pause
    expect(delayed.every((j) => j.timestamp + j.delay >= Date.now() + 50 * 60_000)).toBe(true);
    expect(await redis.zcard(`${prefix}:token:waiting`)).toBe(jobs);

    const log = r.stderr().split('\n');
    expect(log.filter((l) => l.includes('refused the credentials'))).toHaveLength(1);
    expect(log.filter((l) => l.includes('failed for good'))).toEqual([]);
    expect(log.some((l) => l.includes('cr-sk-wrong'))).toBe(false);
  }, 90_000);

  test('status says it in one line, no device failing', async () => {
    const s = await runCli(['status'], env);
    expect(s.code).toBe(0);
    const lines = s.stdout.split('\n');
    const refused = lines.filter((l) => l.includes('refused the credentials'));
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatch(
      new RegExp(
        `^platform refused the credentials at \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d \\S+; ${jobs} jobs wait for the cool-down until \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d \\S+$`,
      ),
    );
    // the devices keep the state the first sync's enqueue gave them (a checkpoint at the start): none is failing
    expect(lines.filter((l) => /^ {2}ok \d+ {2}failing 0 {2}stale \d+ {2}never synced \d+ /.test(l))).toHaveLength(1);
    expect(s.stdout).not.toContain('failed job');
    const json = JSON.parse((await runCli(['status', '--json'], env)).stdout) as {
      summary: Record<string, number>;
      cooldownWaits: { jobs: number };
      token: { cooldownKind: string };
    };
    expect(json.summary.failing).toBe(0);
    expect(Object.values(json.summary).reduce((a, b) => a + b, 0)).toBe(DEVICES);
    expect(json.cooldownWaits.jobs).toBe(jobs);
    expect(json.token.cooldownKind).toBe('credentials');
  }, 60_000);

  test('the waiting process stops cleanly', async () => {
    await stop(running!);
    running = undefined;
  }, 30_000);

  test('started again with the same key during the pause: no token call, the jobs keep waiting, one line says why', async () => {
    const again = (running = startRun(env));
    await until(
      'the restarted service says why it waits',
      async () => again.stderr().includes('refused these credentials'),
      { timeoutMs: 60_000, detail: () => again.stderr().slice(-2000) },
    );
    expect(sim.stats.tokenCalls).toBe(1);
    expect(await queue.getJobCounts('delayed', 'failed', 'completed')).toEqual({
      delayed: jobs,
      failed: 0,
      completed: 0,
    });
    const said = again
      .stderr()
      .split('\n')
      .filter((l) => l.includes('refused the') || l.includes('refused these'));
    expect(said, said.join('\n')).toHaveLength(1);
    expect(said[0]).toContain(`"jobs":${jobs}`);
    await stop(again);
    running = undefined;
  }, 90_000);

  test('started with the right key, the waiting jobs start at once and the first sync completes', async () => {
    running = startRun({ ...env, EXPEED_SECRET_KEY: 'cr-sk-right' });
    const r = running;
    await until(
      'every first-sync job completed',
      async () => (await queue.getJobCounts('completed')).completed === jobs,
      {
        timeoutMs: 120_000,
        detail: () => `${JSON.stringify(sim.stats.requests)}; stderr ${r.stderr().slice(-2000)}`,
      },
    );
    expect(await queue.getJobCounts('delayed', 'failed', 'waiting', 'active')).toEqual({
      delayed: 0,
      failed: 0,
      waiting: 0,
      active: 0,
      paused: 0,
    });
    expect(sim.stats.tokenCalls).toBe(2);
    expect(await redis.zcard(`${prefix}:token:waiting`)).toBe(0);
    const synced = await new Checkpoints({ redis, prefix }).getMany(sim.devices.map((d) => d.id));
    expect(synced.size).toBe(DEVICES);
    expect(r.stderr()).toContain(
      `"jobs":${jobs},"msg":"backfill jobs that waited for the credentials cool-down start now"`,
    );
    const s = await runCli(['status'], { ...env, EXPEED_SECRET_KEY: 'cr-sk-right' });
    expect(s.stdout).not.toContain('refused the credentials');
    await stop(r);
    running = undefined;
  }, 150_000);
});
