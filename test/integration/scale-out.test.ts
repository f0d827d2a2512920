/**
 * Replicas on a real 3-master Redis Cluster, all at once: three `run --role worker` processes share
 * a backfill of 200 devices, two `run --role webhook` processes take pushes, two `run --role scheduler`
 * processes run the nightly sync, the status poll and the gap check on per-second cron schedules;
 * one worker and one webhook are killed with SIGKILL mid-run.
 *
 * Checked: every row the simulator holds lands in InfluxDB exactly once (count and sum per device
 * and field), every acknowledged push lands exactly once, at most 2 token calls, and each schedule
 * slot makes one set of jobs: one scheduler claimed and ran it (its log line and its claim key agree),
 * and BullMQ's own event streams show exactly one add attempt per job of the slot (an add that
 * BullMQ refused as duplicated or deduplicated counts as an attempt too, so a second scheduler
 * enqueuing the same slot fails the test even when BullMQ kept one job).
 *
 * Size: 200 devices × 6 h of history at a 5–8 min cadence (≈ 12k rows, 1–2 twelve-hour windows a
 * device), 20 ms simulated round trip; nightly every 20 s, status every 5 s, gaps every 15 s.
 * Measured on 2 shared cores: 88 s at a moderate load, 156–186 s at a load average of ~22 (seven node
 * processes start through tsx; the killed worker's locks take ~30–60 s to lapse).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Cluster } from 'ioredis';
import type { Config } from '../../src/base/config.js';
import { loadConfig } from '../../src/base/load-config.js';
import { startSimulator, type Simulator } from '../../src/simulator/index.js';
import { createApp, type App } from '../../src/app/app.js';
import { createRedis, isCluster } from '../../src/base/redis.js';
import { BIN } from '../helpers/cli.js';
import {
  clusterNodes,
  createTestDatabase,
  deleteRedisPrefix,
  freePort,
  hasRedisCluster,
  INFLUX_URL,
  influxRows,
  TEST_CLUSTER_NODES,
  testPrefix,
  until,
} from '../helpers/services.js';
import {
  drained,
  expectedTotals,
  PLATFORM_KEY,
  SECRET_KEY,
  scrubber,
  silentLogger,
  testEnv,
  type FieldTotals,
} from '../fixtures/pull-env.js';
import { addAttempts, claimedSlots, slotLog, type AddAttempts } from '../fixtures/slot-ledger.js';

const clusterUp = await hasRedisCluster();
if (!clusterUp && process.env.CI) {
  throw new Error(
    `no Redis Cluster answers at ${TEST_CLUSTER_NODES}: scripts/setup.sh with WITH_TEST_TOOLS=1 should have started it`,
  );
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
// history up to the test's start: nightly slots then fetch the seconds after it (no rows), and the
// gap check (which leaves out the newest 10 minutes) never looks past it
const TO = Math.floor(Date.now() / MINUTE) * MINUTE;
const FROM = TO - 6 * HOUR;
const DEVICES = Array.from({ length: 200 }, (_, i) => ({
  id: `rp-${i}`,
  key: `key-rp-${i}`,
  cadenceSec: 300 + 60 * (i % 4),
}));
const SCHEDULES = {
  EXPEED_SCHEDULE_NIGHTLY: '*/20 * * * * *',
  EXPEED_SCHEDULE_STATUS: '*/5 * * * * *',
  EXPEED_SCHEDULE_GAPS: '*/15 * * * * *',
  EXPEED_LOOKBACK: '0',
};
const TOKEN = 'wh-scale-out-token';

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once('exit', (code) => r(code)));
}

async function kill9(child: ChildProcess): Promise<void> {
  const done = exited(child);
  child.kill('SIGKILL');
  await done;
}

/** Count and sum per device and field of device_data, two queries for the whole fleet. */
async function landedTotals(db: string, numeric: string[]): Promise<Map<string, FieldTotals>> {
  const out = new Map<string, FieldTotals>();
  const sums = numeric.map((f) => `sum("${f}") AS "sum_${f}"`).join(', ');
  for (const row of await influxRows(db, 'SELECT count(*) FROM "device_data" GROUP BY "device_id"')) {
    const t: FieldTotals = {};
    for (const [k, v] of Object.entries(row))
      if (k.startsWith('count_') && Number(v) > 0) t[k.slice(6)] = { count: Number(v), sum: 0 };
    out.set(String(row.device_id), t);
  }
  for (const row of await influxRows(db, `SELECT ${sums} FROM "device_data" GROUP BY "device_id"`)) {
    const t = out.get(String(row.device_id)) ?? {};
    for (const f of numeric) if (t[f]) t[f].sum = Math.round(Number(row[`sum_${f}`] ?? 0) * 1000) / 1000;
  }
  return out;
}

describe.skipIf(!clusterUp)('replicas on a Redis Cluster: 3 workers, 2 webhooks, 2 schedulers, 200 devices', () => {
  let sim: Simulator;
  const pushSims: Simulator[] = [];
  let stack: App;
  let config: Config;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let env: Record<string, string>;
  let attempts: AddAttempts | undefined;
  const children: ChildProcess[] = [];
  const prefix = testPrefix('so');

  const spawnRun = (role: string, extra: Record<string, string> = {}) => {
    const child = spawn(process.execPath, [BIN, 'run', '--role', role, '--ops-port', '0', '--shutdown-grace', '2s'], {
      env: { PATH: process.env.PATH ?? '', ...env, ...extra },
      stdio: ['ignore', 'ignore', role === 'scheduler' ? 'pipe' : 'inherit'],
    });
    children.push(child);
    return child;
  };

  beforeAll(async () => {
    sim = await startSimulator({
      platformKey: PLATFORM_KEY,
      secretKey: SECRET_KEY,
      devices: DEVICES,
      from: FROM,
      to: TO,
      seed: 5,
    });
    sim.faults.latencyMs = 20; // slow pages, so that the kill lands mid-walk
    db = await createTestDatabase('so');
    env = testEnv({
      simUrl: sim.url,
      prefix,
      db: db.name,
      influxUrl: INFLUX_URL,
      env: {
        REDIS_CLUSTER_NODES: TEST_CLUSTER_NODES,
        EXPEED_PAGE_LIMIT: '200',
        EXPEED_BACKFILL_WINDOW: '12h',
        EXPEED_BACKFILL_START: new Date(FROM).toISOString(),
        WORKER_CONCURRENCY: '2',
        EXPEED_WEBHOOK_TOKEN: TOKEN,
        EXPEED_SCHEDULE_NIGHTLY: '',
        EXPEED_SCHEDULE_STATUS: '',
        EXPEED_SCHEDULE_GAPS: '',
        LOG_LEVEL: 'warn',
      },
    });
    config = loadConfig(env);
    stack = createApp(config, { logger: silentLogger(), scrubber: scrubber() });
    for (const d of DEVICES) await stack.registry.upsert(d, 'cli');
  });

  afterAll(async () => {
    for (const c of children) await kill9(c);
    await attempts?.close();
    for (const s of pushSims) await s.close();
    await stack?.close();
    await sim?.close();
    await db?.drop();
    await deleteRedisPrefix(`{${prefix}}`, clusterNodes());
  });

  test('every row and every acknowledged push lands once; one set of jobs per schedule slot; ≤ 2 token calls', async () => {
    expect(isCluster(stack.redis)).toBe(true);
    const cluster = stack.redis as Cluster;
    // every add on the backfill and status queues from here on, read from BullMQ's event streams
    attempts = await addAttempts(createRedis(config) as Cluster, config.prefix, ['backfill', 'status']);
    let manual = 0;
    for (const d of DEVICES)
      manual += (await stack.backfills.enqueue({ deviceId: d.id, from: FROM, to: TO, reason: 'manual' })).length;
    expect(manual).toBeGreaterThanOrEqual(DEVICES.length);

    const workers = [spawnRun('worker'), spawnRun('worker'), spawnRun('worker')];
    const schedulers = [
      spawnRun('scheduler', { ...SCHEDULES, LOG_LEVEL: 'info' }),
      spawnRun('scheduler', { ...SCHEDULES, LOG_LEVEL: 'info' }),
    ];
    const logs = schedulers.map((s) => slotLog(s));
    const ports = [await freePort(), await freePort()];
    const hooks = ports.map((port) => spawnRun('webhook', { WEBHOOK_HOST: '127.0.0.1', WEBHOOK_PORT: String(port) }));
    for (const [i, port] of ports.entries()) {
      // any answer means it listens (the root path is a plain 404, not a refused handshake)
      await until(`webhook ${i} listening`, () => fetch(`http://127.0.0.1:${port}/`).then(() => true), {
        timeoutMs: 120_000,
      });
      pushSims.push(
        await startSimulator({
          platformKey: PLATFORM_KEY,
          secretKey: SECRET_KEY,
          devices: [{ id: `push-${i}`, key: `key-push-${i}`, cadenceSec: 60 }],
          from: 0,
          to: 0,
          gapRate: 0,
          pushUrl: `http://127.0.0.1:${port}/webhook`,
          webhookToken: TOKEN,
        }),
      );
    }

    // pushes to both webhooks; the second is killed half-way (between pushes: what it acknowledged is all it got)
    const acked = [0, 0];
    for (let batch = 0; batch < 8; batch++) {
      if (batch === 4) await kill9(hooks[1]);
      for (const i of [0, 1]) {
        const rows = Array.from({ length: 10 }, (_, r) => ({
          time: FROM + (batch * 10 + r) * MINUTE,
          values: { level: batch * 10 + r },
        }));
        const answer = await pushSims[i].pushData(`push-${i}`, rows).catch(() => undefined);
        if (answer?.status === 200 && JSON.parse(answer.body).result_code === 0) acked[i] += 10;
      }
    }
    expect(acked).toEqual([80, 40]);

    // one worker dies mid-walk: its jobs are recovered by the others once their locks lapse
    await until(
      '50 backfill jobs done',
      async () => (await stack.backfillQueue.getJobCounts('completed')).completed >= 50,
      { timeoutMs: 120_000, intervalMs: 50 },
    );
    await kill9(workers[0]);
    expect((await stack.backfillQueue.getJobCounts('active')).active).toBeGreaterThan(0); // it died mid-run

    // both schedulers run their slots side by side for a while, then stop (a graceful stop finishes a running slot)
    // (a status slot is skipped while the previous one's poll still runs, e.g. a job the killed worker held)
    await until(
      'two nightly, two status (with jobs) and two gap-check slots',
      async () => {
        const [n, g] = await Promise.all(['nightly', 'gaps'].map((name) => claimedSlots(cluster, config.prefix, name)));
        const polled = new Set(attempts!.ids('status').map((id) => id.split('|')[1]));
        return n.size >= 2 && polled.size >= 2 && g.size >= 2;
      },
      { timeoutMs: 150_000, intervalMs: 500 },
    );
    for (const s of schedulers) s.kill('SIGTERM');
    expect(await Promise.all(schedulers.map(exited))).toEqual([0, 0]);

    expect((await drained(stack.backfillQueue, 170_000)).failed).toBe(0);
    expect((await drained(stack.statusQueue, 60_000)).failed).toBe(0);
    await attempts.catchUp();

    // --- every row the simulator holds, exactly once
    const expected = new Map(DEVICES.map((d) => [d.id, expectedTotals(sim, d.id, FROM, TO)]));
    const numeric = [
      ...new Set(
        DEVICES.flatMap((d) =>
          sim
            .rows(d.id, FROM, TO)
            .slice(0, 50)
            .flatMap((r) => Object.keys(r.values).filter((k) => typeof r.values[k] === 'number')),
        ),
      ),
    ];
    const landed = await landedTotals(db.name, numeric);
    const rows = [...expected.values()].reduce((n, t) => n + Math.max(...Object.values(t).map((f) => f.count)), 0);
    expect(rows).toBeGreaterThan(8000);
    for (const d of DEVICES)
      expect({ device: d.id, totals: landed.get(d.id) }).toEqual({ device: d.id, totals: expected.get(d.id) });

    // --- every acknowledged push, exactly once
    for (const i of [0, 1]) {
      const q = `SELECT count("level") AS n FROM "device_data" WHERE "device_id" = 'push-${i}'`;
      const got = await until(
        `push-${i} landed`,
        async () => {
          const n = Number((await influxRows(db.name, q))[0]?.n ?? 0);
          return n >= acked[i] && n;
        },
        { timeoutMs: 60_000 },
      );
      expect(got).toBe(acked[i]);
    }

    // --- one token for all processes, counted on the cluster
    expect(sim.stats.tokenCalls).toBeLessThanOrEqual(2);
    expect((await stack.tokens.usage()).calls).toBe(sim.stats.tokenCalls);
    expect(sim.stats.violations).toEqual([]);

    // --- each schedule slot: claimed once, run once, by a scheduler that was there
    const pids = new Set(schedulers.map((s) => s.pid));
    const ran = logs.flatMap((l) => l.ran);
    expect.soft(logs.flatMap((l) => l.failed)).toEqual([]);
    for (const name of ['nightly', 'status', 'gaps'] as const) {
      const claims = await claimedSlots(cluster, config.prefix, name);
      const runs = ran.filter((r) => r.schedule === name);
      expect.soft(runs.map((r) => r.slot).sort((a, b) => a - b)).toEqual([...claims.keys()].sort((a, b) => a - b)); // each slot once, none lost
      for (const r of runs)
        expect.soft({ slot: r.slot, by: Number(claims.get(r.slot)) }).toEqual({ slot: r.slot, by: r.pid });
      for (const pid of claims.values()) expect.soft(pids).toContain(Number(pid));
    }

    // status: each slot's chunk jobs `status|<slot>|<i>` added once, none again; all 200 devices in 2 chunks
    const statusIds = attempts.ids('status');
    const statusRuns = ran.filter((r) => r.schedule === 'status');
    for (const r of statusRuns) {
      const ids = statusIds.filter((id) => id.startsWith(`status|${r.slot}|`));
      expect
        .soft({ slot: r.slot, ids: ids.sort() })
        .toEqual({ slot: r.slot, ids: Array.from({ length: r.jobs }, (_, i) => `status|${r.slot}|${i}`).sort() });
      expect.soft([0, 2]).toContain(r.jobs); // 0: skipped, the previous slot's poll still ran
    }
    expect.soft(statusRuns.filter((r) => r.jobs === 2).length).toBeGreaterThanOrEqual(2);
    expect.soft(statusIds.length).toBe(statusRuns.reduce((n, r) => n + r.jobs, 0)); // no status job from anywhere else

    // nightly: per slot, every device's window ending at the slot was asked for exactly once
    const windows = attempts.windows();
    const nightlyRuns = ran.filter((r) => r.schedule === 'nightly');
    expect.soft(nightlyRuns.length).toBeGreaterThanOrEqual(2);
    for (const r of nightlyRuns) {
      const perDevice = new Map<string, number>();
      for (const w of windows) if (w.to === r.slot) perDevice.set(w.deviceId, (perDevice.get(w.deviceId) ?? 0) + 1);
      expect
        .soft({ slot: r.slot, devices: perDevice.size, most: Math.max(...perDevice.values()) })
        .toEqual({ slot: r.slot, devices: DEVICES.length, most: 1 });
      expect.soft(r.jobs).toBeGreaterThanOrEqual(DEVICES.length);
    }
  }, 420_000);
});
