/**
 * The process computing rollups is killed with SIGKILL mid-way, rows land late into hours it had
 * already rolled up, and a new worker starts: no hour, and no day, is left stale or missing. Then
 * the same during daily rollups: killed between and inside day jobs, nothing is lost.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createApp, type App } from '../../src/app/app.js';
import type { RollupDispatcher } from '../../src/rollup/dispatcher.js';
import type { SinkPoint } from '../../src/influx/api.js';
import { loadConfig } from '../../src/base/load-config.js';
import {
  createTestDatabase,
  deleteRedisPrefix,
  INFLUX_URL,
  influxRows,
  testPrefix,
  until,
} from '../helpers/services.js';
import { scrubber, silentLogger, testEnv } from '../fixtures/pull-env.js';
import { dayDiffs, rollupDiffs } from '../fixtures/rollup-check.js';

const HOUR = 3_600_000;
const FROM = Date.UTC(2026, 3, 1);
const DAYS = 5;
const DEVICES = ['k-1', 'k-2', 'k-3'];
/** the days of [FROM, FROM + DAYS days) in Asia/Shanghai (the default zone): 00:00 UTC is 08:00 there */
const LOCAL_DAYS = DAYS + 1;

function startWorker(env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/worker-process.ts', 'rollup'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('ready')) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`rollup worker exited early with ${code}`)));
  });
}

async function kill9(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

/** 10 s rows of a numeric, a text and a boolean datapoint. */
function rows(deviceId: string, from: number, to: number, step = 10_000): SinkPoint[] {
  const out: SinkPoint[] = [];
  for (let t = from; t < to; t += step) {
    const k = (t - FROM) / step;
    out.push({
      measurement: 'device_data',
      deviceId,
      time: t,
      fields: { temperature: 20 + ((k * 7) % 13) / 4, mode: k % 50 < 25 ? 'eco' : 'boost', door: k % 3 === 0 },
    });
  }
  return out;
}

describe('a rollup worker killed with SIGKILL mid-way', () => {
  let stack: App;
  let dispatcher: RollupDispatcher;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  const children: ChildProcess[] = [];
  const prefix = testPrefix('rkill');
  let env: Record<string, string>;

  beforeAll(async () => {
    db = await createTestDatabase('rkill');
    env = testEnv({
      simUrl: 'http://127.0.0.1:9',
      prefix,
      db: db.name,
      influxUrl: INFLUX_URL,
      env: { EXPEED_ROLLUP_SETTLE: '1ms' },
    });
    stack = createApp(loadConfig(env), { logger: silentLogger(), scrubber: scrubber() });
  });

  afterAll(async () => {
    for (const c of children) await kill9(c);
    await stack?.close();
    await db?.drop();
    await deleteRedisPrefix(prefix);
  });

  test('recomputes, never skips: every hour equals GROUP BY time(1h) after a restart', async () => {
    for (const d of DEVICES) await stack.writer.write(rows(d, FROM, FROM + DAYS * 24 * HOUR), { source: 'pull' });
    const total = DEVICES.length * DAYS * 24;
    expect((await stack.rollup.dirty.backlog()).hours).toBe(total);

    const first = await startWorker(env);
    children.push(first);
    // small jobs, so that the kill lands between and inside them
    dispatcher = stack.rollup.startDispatcher({ everyMs: 100, hoursPerJob: 6 });
    const left = await until(
      'some hours rolled up',
      async () => {
        const n = (await stack.rollup.dirty.backlog()).hours;
        return n < total - 6 ? n : undefined;
      },
      { intervalMs: 10 },
    );
    await kill9(first);
    const atKill = (await stack.rollup.dirty.backlog()).hours;
    expect(atKill).toBeGreaterThan(0); // it really died mid-way
    expect(atKill).toBeLessThanOrEqual(left);

    // rows arrive late into an hour the killed worker had already rolled up
    let lateDevice = '';
    let late = 0;
    for (const d of DEVICES) {
      for (let h = FROM; h < FROM + DAYS * 24 * HOUR && !lateDevice; h += HOUR) {
        if ((await stack.rollup.dirty.count(d, [h])) === 0) [lateDevice, late] = [d, h];
      }
    }
    expect(lateDevice).not.toBe('');
    await stack.writer.write(
      rows(lateDevice, late + 5_000, late + HOUR, 600_000).map((p) => ({
        ...p,
        fields: { temperature: -50, door: true, mode: 'late' },
      })),
      { source: 'push' },
    );

    const second = await startWorker(env);
    children.push(second);
    await until(
      'the backlog worked off',
      async () => (await stack.rollup.dirty.backlog()).hours === 0 && (await stack.rollup.days.backlog()).hours === 0,
      { timeoutMs: 120_000 },
    );
    await dispatcher.close();
    const check = await rollupDiffs(db.name, INFLUX_URL, FROM, FROM + DAYS * 24 * HOUR);
    expect(check.diffs).toEqual([]);
    expect(check.hours).toBe(total);
    const days = await dayDiffs(db.name, INFLUX_URL, FROM - 8 * HOUR, FROM + DAYS * 24 * HOUR, 'Asia/Shanghai');
    expect(days.diffs).toEqual([]);
    expect(days.hours).toBe(DEVICES.length * LOCAL_DAYS);
    await kill9(second);
  });

  test('killed during daily rollups: every day equals the raw day after a restart', async () => {
    // every day again, plus 100 empty days per device (a day job each: the kill lands among them)
    const empty = Array.from({ length: 100 }, (_, i) => FROM - (2 * i + 2) * 24 * HOUR);
    const hoursOfDays = Array.from({ length: LOCAL_DAYS * 24 }, (_, i) => FROM - 8 * HOUR + i * HOUR);
    for (const d of DEVICES)
      await stack.rollup.days.touch(d, [
        ...stack.rollup.days.daysOf(hoursOfDays),
        ...empty.map((t) => stack.rollup.days.dayOf(t)),
      ]);
    const total = DEVICES.length * (LOCAL_DAYS + 100);
    expect((await stack.rollup.days.backlog()).hours).toBe(total);
    // a stale day rollup, as a crash after a late row could leave it: it must be recomputed
    await influxRows(db.name, `DELETE FROM "device_data_1d" WHERE "device_id" = 'k-2'`);

    const first = await startWorker(env);
    children.push(first);
    dispatcher = stack.rollup.startDispatcher({ everyMs: 100, hoursPerJob: 1 });
    await until('some days rolled up', async () => (await stack.rollup.days.backlog()).hours < total - 10, {
      intervalMs: 10,
    });
    await kill9(first);
    expect((await stack.rollup.days.backlog()).hours).toBeGreaterThan(0); // it really died mid-way

    const second = await startWorker(env);
    children.push(second);
    await until('the day backlog worked off', async () => (await stack.rollup.days.backlog()).hours === 0, {
      timeoutMs: 120_000,
    });
    await dispatcher.close();
    const days = await dayDiffs(
      db.name,
      INFLUX_URL,
      FROM - 210 * 24 * HOUR - 8 * HOUR,
      FROM + DAYS * 24 * HOUR,
      'Asia/Shanghai',
    );
    expect(days.diffs).toEqual([]);
    expect(days.hours).toBe(DEVICES.length * LOCAL_DAYS);
    await kill9(second);
    // 318 day jobs through two worker processes: the wait above bounds it, not the default 60 s
  }, 240_000);
});
