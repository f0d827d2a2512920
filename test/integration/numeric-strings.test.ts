/**
 * Numbers the platform sends as JSON strings ("21.5"), through `expeed-sync backfill --all --wait`
 * and the webhook, against the real InfluxDB 1.6.7: with EXPEED_NUMERIC_STRINGS=number (the
 * default) every numeric datapoint lands as a float, counts and sums exact, and the rollups have
 * means; a field InfluxDB already holds as a string (an installation upgraded from the old
 * behaviour) stays a string without a single dead letter; `string` keeps them as they came.
 */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, test } from 'vitest';
import { RedisDeadLetterStore } from '../../src/dead-letters/store.js';
import { InfluxPointWriter } from '../../src/influx/point-writer.js';
import type { HistoryReading, Simulator } from '../../src/simulator/index.js';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, INFLUX_URL, influxQuery, influxRows, REDIS_URL } from '../helpers/services.js';
import {
  expectedTotals,
  influxTotals,
  numericFields,
  PLATFORM_KEY,
  SECRET_KEY,
  startCliEnv,
} from '../fixtures/pull-env.js';
import { startStack } from './push-stack.js';

const HOUR = 3_600_000;
// Thursday 12:00 UTC: the whole range lies in one of InfluxDB's 7-day shard groups (they start on Thursdays)
const FROM = Date.UTC(2026, 3, 2, 12);
const TO = FROM + 36 * HOUR;
const FIELD_TYPES = { humidity: 'float', mode: 'string', switch: 'float', temp: 'float', voltage: 'float' };

const devicesOf = (name: string) => [
  { id: `${name}-a`, key: `key-${name}-a`, cadenceSec: 90 },
  { id: `${name}-b`, key: `key-${name}-b`, cadenceSec: 150, fields: ['temp', 'humidity', 'switch'] },
];

/** SHOW FIELD KEYS of device_data as {field: type}. */
async function fieldTypes(db: string): Promise<Record<string, string>> {
  const [series] = await influxQuery(db, 'SHOW FIELD KEYS FROM device_data');
  return Object.fromEntries((series?.values ?? []).map(([k, t]) => [String(k), String(t)]));
}

describe('numbers sent as JSON strings', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  const redis = new Redis(REDIS_URL);
  afterAll(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
    redis.disconnect();
  });

  async function setUp(name: string, history: Partial<HistoryReading>, env: Record<string, string> = {}) {
    const simOptions = {
      platformKey: PLATFORM_KEY,
      secretKey: SECRET_KEY,
      devices: devicesOf(name),
      from: FROM - 2 * HOUR,
      to: TO + 2 * HOUR,
      seed: 18,
      history,
      sameMsRate: 0.1,
      numericStrings: true,
    };
    const cli = await startCliEnv('numstr', simOptions, { EXPEED_PAGE_LIMIT: '200', LOG_LEVEL: 'warn', ...env });
    cleanups.push(() => cli.close());
    return cli;
  }

  const backfill = (env: Record<string, string>) =>
    runCli(
      ['backfill', '--all', '--from', new Date(FROM).toISOString(), '--to', new Date(TO).toISOString(), '--wait'],
      env,
      { timeoutMs: 120_000 },
    );

  /**
   * Per device and field: what landed differs from what the platform holds (count, and sum of the
   * numeric ones; `stringField` is held as a string, only its count compares).
   */
  async function differences(sim: Simulator, db: string, name: string, stringField?: string): Promise<string[]> {
    const out: string[] = [];
    for (const d of devicesOf(name)) {
      const expected = expectedTotals(sim, d.id, FROM, TO);
      const numeric = numericFields(sim, d.id, FROM, TO).filter((f) => f !== stringField);
      const landed = await influxTotals(db, INFLUX_URL, d.id, Object.keys(expected), numeric);
      for (const f of Object.keys(expected)) {
        if (landed[f].count !== expected[f].count || (numeric.includes(f) && landed[f].sum !== expected[f].sum))
          out.push(`${d.id} ${f}: landed ${JSON.stringify(landed[f])}, platform ${JSON.stringify(expected[f])}`);
      }
    }
    return out;
  }

  test('backfill --all --wait: numeric strings land as floats, counts and sums exact, rollups with means', async () => {
    const { sim, db, env } = await setUp('nums', {
      cursor: 'next',
      limit: 'datapoints',
      order: 'newest-first',
      pageCap: 150,
    });
    const run = await backfill(env);
    expect(run.code, run.stderr).toBe(0);
    expect(await differences(sim, db, 'nums')).toEqual([]);
    expect(await fieldTypes(db)).toEqual(FIELD_TYPES);
    expect(sim.stats.tokenCalls).toBe(1);
    // the platform really sent strings
    const token = await (
      await fetch(`${sim.url}/v1/platform/token?platform_key=${PLATFORM_KEY}&secret_key=${SECRET_KEY}`)
    ).json();
    const answer = await (
      await fetch(`${sim.url}/v1/devices/nums-a/datapoints?first=1&limit=3`, {
        headers: { access_token: token.access_token, device_key: 'key-nums-a' },
      })
    ).json();
    expect(new Set(answer.data.flatMap((r: Record<string, unknown>) => Object.values(r).map((v) => typeof v)))).toEqual(
      new Set(['string']),
    );

    const rolled = await runCli(
      ['rollup', '--from', new Date(FROM).toISOString(), '--to', new Date(TO).toISOString()],
      env,
      { timeoutMs: 120_000 },
    );
    expect(rolled.code, rolled.stderr).toBe(0);
    for (const d of devicesOf('nums')) {
      const expected = expectedTotals(sim, d.id, FROM, TO);
      const [r] = await influxRows(
        db,
        `SELECT sum(temp_sum) AS s, sum(temp_count) AS c, count(temp_mean) AS hours FROM device_data_1h WHERE device_id = '${d.id}'`,
      );
      expect([Math.round(Number(r.s) * 1000) / 1000, r.c, r.hours]).toEqual([
        expected.temp.sum,
        expected.temp.count,
        36,
      ]);
    }
  }, 150_000);

  test('a field InfluxDB already holds as a string stays a string: no dead letter, nothing lost', async () => {
    const { sim, db, prefix, env } = await setUp('upgraded', { cursor: 'last-inclusive' });
    // an installation upgraded from the old behaviour: temp of one device was written as strings
    const [row] = sim.rows('upgraded-a', FROM, TO).filter((r) => 'temp' in r.values);
    const old = await fetch(`${INFLUX_URL}/write?db=${db}&precision=ms`, {
      method: 'POST',
      body: `device_data,device_id=upgraded-a temp="${row.values.temp}" ${row.time}`,
    });
    expect(old.status).toBe(204);
    const run = await backfill(env);
    expect(run.code, run.stderr).toBe(0);
    expect(await new RedisDeadLetterStore(redis, prefix).count()).toBe(0);
    // temp stays a string (its counts are exact); every other numeric field is a float
    expect(await fieldTypes(db)).toEqual({ ...FIELD_TYPES, temp: 'string' });
    expect(await differences(sim, db, 'upgraded', 'temp')).toEqual([]);
    const [kept] = await influxRows(
      db,
      `SELECT temp FROM device_data WHERE device_id = 'upgraded-a' AND time = ${row.time}ms`,
    );
    expect(kept.temp).toBe(String(row.values.temp));
  }, 150_000);

  test('EXPEED_NUMERIC_STRINGS=string keeps them as they came', async () => {
    const db = await createTestDatabase('numstr');
    cleanups.push(() => db.drop());
    const writer = new InfluxPointWriter({
      url: INFLUX_URL,
      api: 'v1',
      bucket: db.name,
      numericStrings: 'string',
      deadLetters: { add: async () => 'x' },
    });
    cleanups.push(() => writer.close());
    const result = await writer.write(
      [{ measurement: 'device_data', deviceId: 'd', time: FROM, fields: { temp: '21.5', code: '007', n: 3 } }],
      { source: 'test' },
    );
    expect(result).toMatchObject({ written: 1, deadLettered: 0 });
    expect(await fieldTypes(db.name)).toEqual({ code: 'string', n: 'float', temp: 'string' });
    expect(await influxRows(db.name, 'SELECT temp, code, n FROM device_data')).toEqual([
      { time: FROM, temp: '21.5', code: '007', n: 3 },
    ]);
  });

  test('pushes: numeric strings of msg_type 2 land as floats', async () => {
    const s = await startStack({
      sim: {
        devices: [{ id: 'push-a', key: 'key-push-a', cadenceSec: 60 }],
        from: FROM,
        to: FROM + HOUR,
        numericStrings: true,
      },
    });
    cleanups.push(() => s.close());
    const rows = s.sim!.rows('push-a', FROM, FROM + 20 * 60_000);
    expect(rows).toHaveLength(20);
    expect((await s.sim!.pushData('push-a', rows)).status).toBe(200);
    const stored = await s.until(
      '20 data points',
      () => s.rows(`SELECT * FROM device_data WHERE device_id = 'push-a'`),
      (r) => r.length === 20,
    );
    expect(stored.map((r) => [r.time, r.temp, r.humidity, r.mode])).toEqual(
      rows.map((r) => [r.time, r.values.temp ?? null, r.values.humidity ?? null, r.values.mode ?? null]),
    );
    expect(await fieldTypes(s.db.name)).toEqual(FIELD_TYPES);
    expect(JSON.parse(s.sim!.stats.pushes[0].sent).data[0].temp).toBeTypeOf('string');
  }, 60_000);
});
