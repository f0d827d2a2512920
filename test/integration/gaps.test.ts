import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Simulator } from '../../src/simulator/index.js';
import type { App } from '../../src/app/app.js';
import { INFLUX_URL, influxQuery } from '../helpers/services.js';
import {
  drained,
  expectedTotals,
  influxTotals,
  numericFields,
  stackScheduler,
  startPullEnv,
  type PullEnv,
} from '../fixtures/pull-env.js';

const HOUR = 3_600_000;
const FROM = Date.UTC(2026, 3, 1);
const TO = FROM + 2 * 24 * HOUR;
const OFFLINE: [number, number] = [FROM + 30 * HOUR, FROM + 33 * HOUR];
const HOLE: [number, number] = [FROM + 10 * HOUR, FROM + 12 * HOUR];
const DEVICES = [
  { id: 'g-1', key: 'key-g1', cadenceSec: 60, offline: [OFFLINE] },
  { id: 'g-2', key: 'key-g2', cadenceSec: 30 },
];

function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/expeed-sync.js', ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b));
    child.stderr.on('data', (b: Buffer) => (stderr += b));
    child.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe('gaps', () => {
  let pullEnv: PullEnv;
  let sim: Simulator;
  let stack: App;
  let db: PullEnv['db'];
  let prefix: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    pullEnv = await startPullEnv({ name: 'gaps', sim: { devices: DEVICES, from: FROM, to: TO, seed: 9, gapRate: 0 } });
    ({ sim, app: stack, db, prefix, env } = pullEnv);
    for (const d of DEVICES) await stack.backfills.enqueue({ deviceId: d.id, from: FROM, to: TO, reason: 'manual' });
    stack.startBackfillWorker();
    await drained(stack.backfillQueue);
    // the device said it was offline during its quiet hours; then a hole appears in our copy
    await stack.writer.write(
      [
        {
          measurement: 'device_status',
          deviceId: 'g-1',
          time: OFFLINE[0] + 1000,
          fields: { online: false, raw_status: 0, source: 'poll' },
        },
        {
          measurement: 'device_status',
          deviceId: 'g-1',
          time: OFFLINE[1] - 1000,
          fields: { online: true, raw_status: 1, source: 'poll' },
        },
      ],
      { source: 'poll' },
    );
    await influxQuery(
      db.name,
      `DELETE FROM device_data WHERE device_id = 'g-1' AND time >= ${HOLE[0]}ms AND time < ${HOLE[1]}ms`,
    );
  });

  afterAll(async () => {
    await pullEnv?.close();
  });

  test('finds the hole, not the offline hours, judged by the device cadence', async () => {
    const g1 = await stack.gapFinder.scan('g-1', FROM, TO);
    expect(Math.abs(g1.cadenceMs! - 60_000)).toBeLessThan(2000); // median of jittered intervals
    expect(g1.thresholdMs).toBe(10 * 60_000);
    expect(g1.gaps).toHaveLength(1);
    const [gap] = g1.gaps;
    expect(gap.from).toBeLessThanOrEqual(HOLE[0]);
    expect(gap.to).toBeGreaterThanOrEqual(HOLE[1]);
    expect(gap.to - gap.from).toBeLessThan(HOLE[1] - HOLE[0] + 4 * 150_000); // within a bucket or two
    expect(g1.offlineMs).toBeGreaterThan(2.9 * HOUR);

    const g2 = await stack.gapFinder.scan('g-2', FROM, TO);
    expect(Math.abs(g2.cadenceMs! - 30_000)).toBeLessThan(1000);
    expect(g2.gaps).toEqual([]);

    const none = await stack.gapFinder.scan('nobody', FROM, TO);
    expect(none.gaps).toEqual([]);
    expect(none.note).toMatch(/no data/);
  });

  test('the CLI reports the gap, --fill queues it, and backfill --wait lands it', async () => {
    const range = ['--from', new Date(FROM).toISOString(), '--to', new Date(TO).toISOString()];
    const report = await cli(['gaps', '--device', 'g-1', ...range, '--fill'], env);
    expect(report.stderr).toBe('');
    expect(report.code).toBe(0);
    expect(report.stdout).toMatch(/g-1: cadence 1m00s, gaps longer than 10m00s: 1/);
    expect(report.stdout).toMatch(
      /2026-04-01 1\d:\d\d:\d\d Asia\/Shanghai \.\. 2026-04-01 2\d:\d\d:\d\d Asia\/Shanghai/,
    );
    expect(report.stdout).toMatch(/queued [1-9]\d* backfill window/);
    await drained(stack.backfillQueue);

    const expected = expectedTotals(sim, 'g-1', FROM, TO);
    expect(
      await influxTotals(db.name, INFLUX_URL, 'g-1', Object.keys(expected), numericFields(sim, 'g-1', FROM, TO)),
    ).toEqual(expected);
    expect((await stack.gapFinder.scan('g-1', FROM, TO)).gaps).toEqual([]);

    // a hole again, this time filled by a backfill command that waits (not a terminal: plain lines)
    await influxQuery(
      db.name,
      `DELETE FROM device_data WHERE device_id = 'g-2' AND time >= ${HOLE[0]}ms AND time < ${HOLE[1]}ms`,
    );
    const run = await cli(
      ['backfill', '--device', 'g-2', '--from', '2026-04-01T16:00', '--to', '2026-04-01T22:00+08:00', '--wait'],
      env,
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/queued 1 backfill window\(s\) for 1 device\(s\)/);
    expect(run.stdout).toMatch(/backfill: 1\/1 devices done, 1\/1 windows, \d+ points/);
    expect(run.stdout).toMatch(/done: 720 points/);
    const e2 = expectedTotals(sim, 'g-2', FROM, TO);
    expect(
      await influxTotals(db.name, INFLUX_URL, 'g-2', Object.keys(e2), numericFields(sim, 'g-2', FROM, TO)),
    ).toEqual(e2);
  });

  test('the gap check schedule queues backfills for recent holes, once per slot', async () => {
    await influxQuery(
      db.name,
      `DELETE FROM device_data WHERE device_id = 'g-1' AND time >= ${HOLE[0]}ms AND time < ${HOLE[1]}ms`,
    );
    const a = stackScheduler(stack, prefix, FROM);
    const b = stackScheduler(stack, prefix, FROM);
    // the check covers the 24 h before the slot, leaving out the newest 10 minutes
    const slot = new Date(FROM + 24 * HOUR + 10 * 60_000);
    const t0 = Date.now();
    const [ra, rb] = await Promise.all([a.fire('gaps', slot), b.fire('gaps', slot)]);
    expect([ra.ran, rb.ran].sort()).toEqual([false, true]);
    expect(ra.jobs + rb.jobs).toBeGreaterThan(0);
    const jobs = [...(await stack.backfillQueue.getJobs(['waiting', 'active', 'delayed', 'completed']))].filter(
      (j) => j.data.reason === 'gap' && j.timestamp >= t0,
    );
    const fresh = jobs.filter((j) => j.data.from < HOLE[1] && j.data.to > HOLE[0]);
    expect(fresh.length).toBeGreaterThan(0);
    expect(jobs).toHaveLength(ra.jobs + rb.jobs);
    // g-2 has no hole; scheduled work never spends the operator's token reserve
    expect(jobs.map((j) => [j.data.deviceId, j.data.useReserve ?? false])).toEqual(jobs.map(() => ['g-1', false]));
    await drained(stack.backfillQueue);
    const expected = expectedTotals(sim, 'g-1', FROM, TO);
    expect(
      await influxTotals(db.name, INFLUX_URL, 'g-1', Object.keys(expected), numericFields(sim, 'g-1', FROM, TO)),
    ).toEqual(expected);
    await a.close();
    await b.close();
  });

  test('backfill --wait exits non-zero naming the device and the reason when a job fails', async () => {
    await stack.registry.upsert({ id: 'ghost', key: 'key-ghost' }, 'cli');
    const run = await cli(
      ['backfill', '--device', 'ghost', '--from', '2026-04-01', '--to', '2026-04-02', '--wait'],
      env,
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /^backfill failed: device ghost window 2026-03-31T16:00:00.000Z..2026-04-01T16:00:00.000Z: device "ghost" does not exist on the platform.*result_code 2/,
    );
    expect(run.stderr).toMatch(/expeed-sync backfill: 1 backfill job\(s\) failed, for device\(s\) ghost/);
    expect((await stack.registry.get('ghost'))?.failure?.code).toBe(2);

    const unknown = await cli(['backfill', '--device', 'nope'], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/device "nope" is not registered/);
    const usage = await cli(['backfill', '--from', 'yesterday', '--all'], env);
    expect(usage.code).toBe(1);
    expect(usage.stderr).toMatch(/--from: expected ISO 8601/);
  });
});
