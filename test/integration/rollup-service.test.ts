/**
 * `expeed-sync run` (all roles in one child process) rolls up by itself what its first sync lands:
 * the writer marks the hours, the scheduler dispatches them once settled, the worker computes them.
 * `status --json` shows the backlog draining to zero.
 */
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/index.js';
import { runCli, startRun } from '../helpers/cli.js';
import {
  createTestDatabase,
  deleteRedisPrefix,
  freePort,
  INFLUX_URL,
  REDIS_URL,
  testPrefix,
  until,
} from '../helpers/services.js';
import { rollupDiffs } from '../fixtures/rollup-check.js';

const HOUR = 3_600_000;
// history of whole, ended hours: every one of them can be rolled up
const to = Math.floor(Date.now() / HOUR) * HOUR;
const from = to - 6 * HOUR;
const prefix = testPrefix('rsvc');

let sim: Simulator;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let env: Record<string, string>;
const children: ChildProcess[] = [];

beforeAll(async () => {
  db = await createTestDatabase('rsvc');
  sim = await startSimulator({ platformKey: 'rsvc-pk', secretKey: 'rsvc-sk-secret', devices: 2, from, to, seed: 5 });
  env = {
    EXPEED_BASE_URL: sim.url,
    EXPEED_PLATFORM_KEY: 'rsvc-pk',
    EXPEED_SECRET_KEY: 'rsvc-sk-secret',
    EXPEED_PREFIX: prefix,
    REDIS_URL,
    INFLUX_URL,
    INFLUX_BUCKET: db.name,
    INFLUX_API: 'v1',
    WEBHOOK_PORT: String(await freePort()),
    EXPEED_BACKFILL_START: new Date(from).toISOString(),
    EXPEED_SCHEDULE_NIGHTLY: '',
    EXPEED_SCHEDULE_STATUS: '',
    EXPEED_SCHEDULE_GAPS: '',
    EXPEED_ROLLUP_SETTLE: '1ms',
    LOG_LEVEL: 'info',
  };
  for (const d of sim.devices) expect((await runCli(['devices', 'add', d.id, '--key', d.key], env)).code).toBe(0);
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await sim?.close();
  await db?.drop();
  await deleteRedisPrefix(prefix);
});

describe('expeed-sync run: rollups', () => {
  test('the first sync is rolled up by the service itself, exactly, and the backlog drains to zero', async () => {
    const run = startRun(env);
    children.push(run.child);
    const backlog = async () => {
      const r = await runCli(['status', '--json'], env);
      return (JSON.parse(r.stdout) as { rollupBacklog?: { hours: number } }).rollupBacklog;
    };
    const done = await until(
      'every synced hour rolled up',
      async () => {
        const check = await rollupDiffs(db.name, INFLUX_URL, from, to);
        return check.hours === 2 * 6 && check.diffs.length === 0 && (await backlog())?.hours === 0 ? check : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 1000, detail: () => run.stderr().slice(-2000) },
    );
    expect(done.values).toBeGreaterThan(2 * 6 * 2);
    run.child.kill('SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
  });
});
