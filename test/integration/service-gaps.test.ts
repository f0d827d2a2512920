/**
 * The scheduled gap check inside `expeed-sync run` (a child process against the simulator, real
 * Redis and real InfluxDB): holes cut into a device's data after its first sync are counted in
 * `expeed_gaps_found_total{device_id}` one per gap, a device without holes gets no series, the
 * backfills the check queues fill the holes, and later slots find nothing more to count.
 */
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/index.js';
import { metricValue, runCli, startRun, type RunningService } from '../helpers/cli.js';
import { fieldValuesInInflux, fieldValuesInSim } from '../fixtures/pull-env.js';
import {
  createTestDatabase,
  deleteRedisPrefix,
  freePort,
  influxQuery,
  REDIS_URL,
  testPrefix,
  until,
} from '../helpers/services.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const prefix = testPrefix('svcgaps');
// history up to the minute the test starts: every slot's scan window (the 24 h before the slot,
// less the newest 10 minutes) then ends inside the simulator's data, so it has no trailing hole
const to = Math.floor(Date.now() / MINUTE) * MINUTE;
const from = to - 30 * HOUR;
// holes well inside the scanned window and away from the newest points the cadence is measured on
const HOLES: Record<string, Array<[number, number]>> = {
  'dev-0001': [
    [to - 20 * HOUR, to - 19 * HOUR],
    [to - 12 * HOUR, to - 11 * HOUR],
  ],
  'dev-0002': [[to - 16 * HOUR, to - 15 * HOUR]],
  'dev-0003': [],
};
// a gap slot every 10 s: the backfills a slot queues land within ~0.1-0.4 s here, so the next slot
// sees the holes filled and each hole is counted once
const GAP_SLOT_SECONDS = 10;

let sim: Simulator;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let port: number;
let env: Record<string, string>;
const children: ChildProcess[] = [];

type Run = RunningService;

function start(extra: Record<string, string>): Run {
  const run = startRun({ ...env, ...extra });
  children.push(run.child);
  return run;
}

async function stop(run: Run): Promise<void> {
  run.child.kill('SIGTERM');
  const exit = await Promise.race([run.exited, new Promise<'late'>((r) => setTimeout(() => r('late'), 20_000))]);
  expect(exit).toEqual({ code: 0, signal: null });
}

async function metricsText(): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

const gapsFound = (text: string, deviceId: string) =>
  metricValue(text, 'expeed_gaps_found_total', `{device_id="${deviceId}"}`);

/** Field values of a device in InfluxDB, and in the simulator. */
const valuesInInflux = (deviceId: string) => fieldValuesInInflux(db.name, deviceId);
const valuesInSim = (deviceId: string) => fieldValuesInSim(sim, deviceId, from, to);

async function allLanded(): Promise<boolean> {
  for (const d of sim.devices) if ((await valuesInInflux(d.id)) !== valuesInSim(d.id)) return false;
  return true;
}

/** The gap slots a run has finished (its `schedule slot ran` log lines), as slot times in ms. */
function gapSlotsRan(run: Run): number[] {
  return run
    .stderr()
    .split('\n')
    .filter((l) => l.includes('"msg":"schedule slot ran"'))
    .map((l) => JSON.parse(l) as { schedule: string; slot: string })
    .filter((e) => e.schedule === 'gaps')
    .map((e) => Date.parse(e.slot));
}

beforeAll(async () => {
  db = await createTestDatabase('svcgaps');
  // gapRate 0: the platform's own data has no holes, so every gap found is one this test made
  sim = await startSimulator({
    platformKey: 'gaps-pk',
    secretKey: 'gaps-sk-secret',
    devices: 3,
    from,
    to,
    seed: 11,
    gapRate: 0,
  });
  port = await freePort();
  env = {
    EXPEED_BASE_URL: sim.url,
    EXPEED_PLATFORM_KEY: 'gaps-pk',
    EXPEED_SECRET_KEY: 'gaps-sk-secret',
    EXPEED_PREFIX: prefix,
    REDIS_URL,
    INFLUX_URL: db.url,
    INFLUX_BUCKET: db.name,
    INFLUX_API: 'v1',
    WEBHOOK_PORT: String(port),
    EXPEED_BACKFILL_START: new Date(from).toISOString(),
    EXPEED_SCHEDULE_NIGHTLY: '',
    EXPEED_SCHEDULE_STATUS: '', // no device_status points: no offline time to subtract
    EXPEED_SCHEDULE_GAPS: '',
    LOG_LEVEL: 'info',
  };
  for (const d of sim.devices) {
    const added = await runCli(['devices', 'add', d.id, '--key', d.key], env);
    expect(added.code).toBe(0);
  }
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await sim?.close();
  await db?.drop();
  await deleteRedisPrefix(prefix);
});

describe('expeed-sync run: the scheduled gap check', () => {
  test('counts each hole in expeed_gaps_found_total{device_id}, fills it, and counts nothing once filled', async () => {
    // the first sync, with the gap check off: it must not see the history half-written
    const first = start({});
    await until('the first sync to land the history', allLanded, { timeoutMs: 30_000 });
    await stop(first);

    let cut = 0;
    for (const [deviceId, holes] of Object.entries(HOLES)) {
      for (const [a, b] of holes) {
        await influxQuery(
          db.name,
          `DELETE FROM device_data WHERE device_id = '${deviceId}' AND time >= ${a}ms AND time < ${b}ms`,
        );
        cut++;
      }
    }
    expect(cut).toBe(3);
    for (const [deviceId, holes] of Object.entries(HOLES)) {
      if (holes.length) expect(await valuesInInflux(deviceId)).toBeLessThan(valuesInSim(deviceId));
      else expect(await valuesInInflux(deviceId)).toBe(valuesInSim(deviceId));
    }

    // the gap check every few seconds; the checkpoints are current, so nothing else is queued at start
    const second = start({ EXPEED_SCHEDULE_GAPS: `*/${GAP_SLOT_SECONDS} * * * * *` });
    await until('the gap backfills to fill the holes', allLanded, { timeoutMs: 30_000, detail: second.stderr });
    const filledAt = Date.now();
    expect(second.stderr()).toMatch(/"msg":"gap check: backfills queued"/);

    // a slot that started after the holes were filled finds none: the counts stay one per hole
    await until('a gap slot after the fill', async () => gapSlotsRan(second).some((slot) => slot > filledAt), {
      timeoutMs: 3 * GAP_SLOT_SECONDS * 1000,
      detail: second.stderr,
    });
    const text = await metricsText();
    expect(text).toContain('# TYPE expeed_gaps_found_total counter');
    const checks = second
      .stderr()
      .split('\n')
      .filter((l) => l.includes('"schedule slot ran"') || l.includes('"gap check: backfills queued"'))
      .join('\n');
    expect(gapsFound(text, 'dev-0001'), `two holes, one gap each; the gap slots:\n${checks}`).toBe(2);
    expect(gapsFound(text, 'dev-0002'), `one hole; the gap slots:\n${checks}`).toBe(1);
    expect(gapsFound(text, 'dev-0003'), 'no hole: no series').toBeUndefined();

    await stop(second);
    expect(second.stderr()).not.toContain('gaps-sk-secret');
    expect(await allLanded()).toBe(true);
    expect(sim.stats.violations).toEqual([]);
  }, 90_000);
});
