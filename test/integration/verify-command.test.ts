/**
 * `expeed-sync verify` as the real executable over a synced copy: each kind of difference (a point
 * deleted from InfluxDB, a value changed, an extra point, late rows at the platform) is found in
 * its hour, `--repair` fixes them (rollup hours re-marked), and a second `verify` exits 0.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { drained, startPullEnv, type PullEnv } from '../fixtures/pull-env.js';
import { influxRows, INFLUX_URL } from '../helpers/services.js';
import { runCli } from '../helpers/cli.js';

const HOUR = 3_600_000;
const TO = Math.floor(Date.now() / HOUR) * HOUR - 2 * HOUR;
const FROM = TO - 12 * HOUR;
const DEVICE = 'dev-0001';
const range = ['--from', new Date(FROM).toISOString(), '--to', new Date(TO).toISOString()];

async function write(db: string, line: string): Promise<void> {
  const res = await fetch(`${INFLUX_URL}/write?db=${db}&precision=ms`, { method: 'POST', body: line });
  expect(res.status).toBe(204);
}

interface VerifyJson {
  equal: boolean;
  totals: { equal: number; missing: number; extra: number; differing: number; repaired: number };
  devices: Array<{
    deviceId: string;
    written: number;
    removed: number;
    hours: Array<{
      hour: number;
      result: string;
      missing: number;
      extra: number;
      differing: number;
      examples: string[];
      repaired?: boolean;
    }>;
  }>;
}

describe('expeed-sync verify', () => {
  let env: PullEnv;
  const changed: Record<string, number> = {};

  beforeAll(async () => {
    env = await startPullEnv({
      name: 'verify',
      sim: {
        devices: [{ id: DEVICE, key: 'key-0001', cadenceSec: 300 }],
        from: FROM - HOUR,
        to: TO + HOUR,
        gapRate: 0,
      },
    });
    const worker = env.app.startBackfillWorker();
    await env.app.backfills.enqueue({ deviceId: DEVICE, from: FROM, to: TO, reason: 'manual' });
    await drained(env.app.backfillQueue);
    await worker.close();
  }, 120_000);

  afterAll(async () => {
    await env?.close();
  });

  test('a synced copy is equal: exit 0, every hour equal', async () => {
    const r = await runCli(['verify', ...range, '--json'], env.env, { timeoutMs: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as VerifyJson;
    expect(out.equal).toBe(true);
    expect(out.totals).toEqual({ equal: 12, missing: 0, extra: 0, differing: 0, repaired: 0 });
  }, 120_000);

  test('finds a deleted point, a changed value, an extra point and late rows, each in its hour; exit 1', async () => {
    const rows = env.sim.rows(DEVICE, FROM, TO);
    const numeric = (t: number) =>
      Object.entries(rows.find((r) => r.time >= t)!.values).find(([, v]) => typeof v === 'number')!;
    // hour 1: a point deleted from InfluxDB
    const deleted = rows.find((r) => r.time >= FROM + HOUR)!.time;
    await influxRows(env.db.name, `DELETE FROM device_data WHERE device_id = '${DEVICE}' AND time = ${deleted}ms`);
    // hour 3: a value changed
    const changedRow = rows.find((r) => r.time >= FROM + 3 * HOUR)!;
    const [field] = numeric(FROM + 3 * HOUR);
    await write(env.db.name, `device_data,device_id=${DEVICE} ${field}=-999 ${changedRow.time}`);
    // hour 5: an extra point the platform does not hold
    const extraAt = FROM + 5 * HOUR + 7_777;
    await write(env.db.name, `device_data,device_id=${DEVICE} ${field}=1 ${extraAt}`);
    // hour 8: rows the platform received late, between rows already held
    const late = [FROM + 8 * HOUR + 1_000, FROM + 8 * HOUR + 61_000];
    env.sim.addRows(
      DEVICE,
      late.map((time) => ({ time, values: { [field]: 42.5 } })),
    );
    Object.assign(changed, { deleted, changed: changedRow.time, extraAt });

    const r = await runCli(['verify', ...range, '--json'], env.env, { timeoutMs: 120_000 });
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as VerifyJson;
    expect(out.equal).toBe(false);
    expect(out.totals).toEqual({ equal: 8, missing: 2, extra: 1, differing: 1, repaired: 0 });
    const byHour = new Map(out.devices[0].hours.map((h) => [h.hour, h]));
    expect(byHour.get(FROM + HOUR)).toMatchObject({ result: 'missing', missing: 1 });
    expect(byHour.get(FROM + 3 * HOUR)).toMatchObject({ result: 'differing', differing: 1 });
    expect(byHour.get(FROM + 3 * HOUR)!.examples[0]).toContain(`${field}: platform`);
    expect(byHour.get(FROM + 3 * HOUR)!.examples[0]).toContain('InfluxDB -999');
    expect(byHour.get(FROM + 5 * HOUR)).toMatchObject({ result: 'extra', extra: 1 });
    expect(byHour.get(FROM + 8 * HOUR)).toMatchObject({ result: 'missing', missing: 2 });
    // nothing was changed without --repair: the extra point is still there
    expect(await influxRows(env.db.name, `SELECT * FROM device_data WHERE time = ${extraAt}ms`)).toHaveLength(1);
  }, 120_000);

  test('--repair writes what is missing or different, removes the extra point, says so; a second verify exits 0', async () => {
    // the backfill marked every hour: start from none marked, to see which the repair marks
    await env.app.redis.del(`${env.prefix}:rollup:dirty`);
    const r = await runCli(['verify', ...range, '--repair'], env.env, { timeoutMs: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('repair: wrote 4 point(s) from the platform; removed 1 point(s)');
    expect(r.stdout).toContain('equal: 12 hour(s) equal, 4 of them repaired');
    expect(await influxRows(env.db.name, `SELECT * FROM device_data WHERE time = ${changed.extraAt}ms`)).toEqual([]);
    expect(await influxRows(env.db.name, `SELECT * FROM device_data WHERE time = ${changed.deleted}ms`)).toHaveLength(
      1,
    );
    // the repaired hours are marked for their rollups
    const dirty = await env.app.rollup.dirty.count(DEVICE, [
      FROM + HOUR,
      FROM + 3 * HOUR,
      FROM + 5 * HOUR,
      FROM + 8 * HOUR,
      FROM + 10 * HOUR,
    ]);
    expect(dirty).toBe(4);

    const again = await runCli(['verify', ...range], env.env, { timeoutMs: 120_000 });
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('equal: 12 hour(s) equal');
    const status = await runCli(['status'], env.env, { timeoutMs: 60_000 });
    expect(status.stdout).toMatch(/last verified .*\(1 device\(s\), .*\): 12 hours equal, 0 repaired\n/);
  }, 120_000);
});
