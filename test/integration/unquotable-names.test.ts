/**
 * A datapoint name InfluxQL cannot quote (a NUL) never reaches InfluxDB, on pull and on push: the
 * value becomes a dead letter with its reason and raw content, the rest of its row lands, and the
 * rollups of every device, that one included, still run (one such name used to fail every
 * rollup query of every device).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { App } from '../../src/app/app.js';
import { RollupDispatcher } from '../../src/rollup/dispatcher.js';
import { formatPlatformTime } from '../../src/platform/time-format.js';
import { INFLUX_URL, influxRows } from '../helpers/services.js';
import { drained, silentLogger, startPullEnv, type PullEnv } from '../fixtures/pull-env.js';
import { rollupDiffs } from '../fixtures/rollup-check.js';

const HOUR = 3_600_000;
const FROM = Date.UTC(2026, 2, 3);
const TO = FROM + 3 * HOUR;
const NUL_NAME = 'a\u0000b';
const DEVICES = [
  { id: 'nul-pull', key: 'key-np', cadenceSec: 600, fields: ['temp', NUL_NAME] },
  { id: 'plain', key: 'key-pl', cadenceSec: 600, fields: ['temp', 'humidity'] },
];

describe('names InfluxQL cannot quote', () => {
  let env: PullEnv;
  let stack: App;

  beforeAll(async () => {
    env = await startPullEnv({
      name: 'nul',
      sim: { devices: DEVICES, from: FROM - HOUR, to: TO + HOUR, seed: 5 },
      env: { EXPEED_ROLLUP_SETTLE: '1ms' },
    });
    stack = env.app;
  });

  afterAll(async () => {
    await env?.close();
  });

  test('a NUL name on pull and on push becomes a dead letter; every device is still rolled up', async () => {
    for (const d of DEVICES) await stack.backfills.enqueue({ deviceId: d.id, from: FROM, to: TO, reason: 'manual' });
    stack.startBackfillWorker();
    expect((await drained(stack.backfillQueue)).failed).toBe(0);

    const ingest = await stack.ingestQueue();
    stack.startIngestWorker();
    const pushed = {
      timestamp: formatPlatformTime(FROM + 30 * 60_000 + 1, 'Asia/Shanghai'),
      temp: 21.5,
      [NUL_NAME]: 7,
    };
    await ingest.queue.add('push', {
      pushes: [{ msgType: 2, receivedAt: Date.now(), body: { device_id: 'nul-push', data: [pushed] } }],
    });
    expect((await drained(ingest.queue)).failed).toBe(0);

    // InfluxDB holds no field with a NUL: every query of the fields still parses
    const keys = await influxRows(env.db.name, 'SHOW FIELD KEYS FROM "device_data"');
    expect(keys.map((k) => k.fieldKey).sort()).toEqual(['humidity', 'temp']);
    const pushedRow = await influxRows(env.db.name, `SELECT "temp" FROM "device_data" WHERE "device_id" = 'nul-push'`);
    expect(pushedRow.map((r) => r.temp)).toEqual([21.5]);

    const letters = await stack.deadLetters.list();
    const nul = letters.filter((l) => l.reason.includes('contains a NUL character, which no InfluxQL query can quote'));
    expect(new Set(nul.map((l) => l.source))).toEqual(new Set(['pull', 'push']));
    expect(new Set(nul.map((l) => l.deviceId))).toEqual(new Set(['nul-pull', 'nul-push']));
    const fromPush = nul.find((l) => l.source === 'push')!;
    expect(fromPush.raw).toMatchObject({ deviceId: 'nul-push', fields: { [NUL_NAME]: 7 } });
    expect(letters.length).toBe(nul.length);

    stack.startRollupWorker();
    const dispatcher = new RollupDispatcher({
      dirty: stack.rollup.dirty,
      queue: stack.rollup.queue,
      settleMs: 1,
      logger: silentLogger(),
    });
    for (let i = 0; i < 20 && (await dispatcher.tick()) > 0; i++)
      expect((await drained(stack.rollup.queue)).failed).toBe(0);
    expect((await stack.rollup.dirty.backlog()).hours).toBe(0);
    const check = await rollupDiffs(env.db.name, INFLUX_URL, FROM - HOUR, TO + HOUR);
    expect(check.diffs).toEqual([]);
    const rolled = await influxRows(env.db.name, 'SELECT "temp_count" FROM "device_data_1h" GROUP BY "device_id"');
    expect(new Set(rolled.map((r) => r.device_id))).toEqual(new Set(['nul-pull', 'plain', 'nul-push']));
  });
});
