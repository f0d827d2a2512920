import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { pushRetryHandler } from '../../src/push/push-retry.js';
import { parseTime, PLATFORM_KEY, SECRET_KEY, simBackfillRunner, startStack, TZ, type Stack } from './push-stack.js';

const T0 = Date.UTC(2026, 10, 20, 0, 0, 0);
const HOUR = 3_600_000;
let s: Stack;

beforeAll(async () => {
  s = await startStack({
    sim: {
      devices: [
        { id: 'dev-a', key: 'key-a', cadenceSec: 60 },
        { id: 'dev-b', key: 'key-b', cadenceSec: 30 },
      ],
      from: T0,
      to: T0 + HOUR,
    },
  });
});

afterAll(async () => {
  await s?.close();
});

/** What InfluxDB returns for a sim row: every field column, null where the row is sparse. */
function expected(rows: Array<{ time: number; values: Record<string, unknown> }>, fields: string[]) {
  return rows.map((r) => ({
    time: r.time,
    device_id: expect.any(String),
    ...Object.fromEntries(fields.map((f) => [f, r.values[f] ?? null])),
  }));
}

describe('pushes from the simulator land in InfluxDB', () => {
  test('the handshake is answered with the nonce', async () => {
    const a = await s.sim!.handshake({ nonce: 'nonce-123' });
    expect(a).toEqual({ status: 200, body: 'nonce-123' });
  });

  test('msg_type 1 becomes device_status points with the raw code, source push; the device is registered', async () => {
    const before = Date.now();
    expect(await s.sim!.pushStatus('dev-a', 0)).toEqual({
      status: 200,
      body: '{"result_code":0,"result_message":"ok"}',
    });
    // distinct arrival milliseconds: the second push is sent once the first has landed
    await s.until(
      'the first status point',
      () => s.rows(`SELECT * FROM device_status WHERE device_id = 'dev-a'`),
      (r) => r.length === 1,
    );
    expect((await s.sim!.pushStatus('dev-a', 1)).status).toBe(200);
    const after = Date.now();
    const points = await s.until(
      'two status points',
      () => s.rows(`SELECT * FROM device_status WHERE device_id = 'dev-a'`),
      (r) => r.length === 2,
    );
    expect(
      points.map((p) => ({ online: p.online, raw_status: p.raw_status, source: p.source, device_id: p.device_id })),
    ).toEqual([
      { online: true, raw_status: 0, source: 'push', device_id: 'dev-a' },
      { online: false, raw_status: 1, source: 'push', device_id: 'dev-a' },
    ]);
    for (const p of points) {
      expect(p.time as number).toBeGreaterThanOrEqual(before);
      expect(p.time as number).toBeLessThanOrEqual(after);
    }
    const device = await s.registry.get('dev-a');
    expect(device).toMatchObject({ id: 'dev-a', key: 'key-a', origin: 'push' });
    // the status poll leaves out devices pushed within its interval: the arrival of the last push is kept
    const pushedAt = Number(await s.redis.hget(`${s.prefix}:status:pushed`, 'dev-a'));
    expect(pushedAt).toBe(Math.max(...points.map((p) => p.time as number)));
  });

  test('msg_type 2 rows land with exact values and times', async () => {
    const rows = s.sim!.rows('dev-b', T0, T0 + 20 * 60_000);
    expect(rows.length).toBe(40);
    // ten rows per push, like the vendor's
    for (let i = 0; i < rows.length; i += 10)
      expect((await s.sim!.pushData('dev-b', rows.slice(i, i + 10))).status).toBe(200);
    const fields = s.sim!.devices.find((d) => d.id === 'dev-b')!.fields;
    const stored = await s.until(
      '40 data points',
      () => s.rows(`SELECT * FROM device_data WHERE device_id = 'dev-b'`),
      (r) => r.length === 40,
    );
    expect(stored).toEqual(expected(rows, fields));
    expect(await s.registry.get('dev-b')).toMatchObject({ id: 'dev-b', key: 'key-b', origin: 'push' });
  });

  test('a push and a backfill of the same rows give one point each', async () => {
    const from = T0 + 30 * 60_000;
    const to = T0 + 40 * 60_000;
    const rows = s.sim!.rows('dev-a', from, to);
    expect(rows.length).toBe(10);
    expect((await s.sim!.pushData('dev-a', rows)).status).toBe(200);
    await s.until(
      'pushed rows',
      () => s.rows(`SELECT * FROM device_data WHERE device_id = 'dev-a'`),
      (r) => r.length === 10,
    );

    const { runner, close } = simBackfillRunner(s);
    // a wider window than the push: the backfill adds the rows around it
    const progress = await runner.run({
      deviceId: 'dev-a',
      from: from - 10 * 60_000,
      to: to + 10 * 60_000,
      reason: 'manual',
    });
    await close();
    expect(progress.points).toBe(30);
    const fields = s.sim!.devices.find((d) => d.id === 'dev-a')!.fields;
    const all = await s.rows(`SELECT * FROM device_data WHERE device_id = 'dev-a'`);
    expect(all).toEqual(expected(s.sim!.rows('dev-a', from - 10 * 60_000, to + 10 * 60_000), fields));
    const [count] = await s.rows(
      `SELECT count(${fields[0]}) FROM device_data WHERE device_id = 'dev-a' AND time >= ${from}ms AND time < ${to}ms`,
    );
    expect(count.count).toBe(rows.filter((r) => r.values[fields[0]] !== undefined).length);
  });

  test('msg_type 3 marks the pending command applied and records it with its settings', async () => {
    const sentAt = Date.now();
    await s.pending.add({
      messageId: 'msg-77',
      deviceId: 'dev-a',
      settings: { temp: 25, mode: 'eco' },
      sentAt,
      deadline: sentAt + 60_000,
    });
    const res = await fetch(s.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ msg_type: 3, message_id: 'msg-77', device_id: 'dev-a', set_result: '0' }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ result_code: 0, result_message: 'ok' });
    const points = await s.until(
      'setting point',
      () => s.rows(`SELECT * FROM device_setting WHERE device_id = 'dev-a'`),
      (r) => r.length === 1,
    );
    const cmd = await s.pending.get('msg-77');
    expect(cmd).toMatchObject({ state: 'applied', deviceId: 'dev-a', settings: { temp: 25, mode: 'eco' }, sentAt });
    expect(points).toEqual([
      {
        time: cmd!.resolvedAt,
        device_id: 'dev-a',
        message_id: 'msg-77',
        state: 'applied',
        settings: '{"temp":25,"mode":"eco"}',
      },
    ]);
  });

  test('with auto-registration on, a device already registered by an operator keeps its entry', async () => {
    await s.registry.upsert({ id: 'dev-op', key: 'operator-key', name: 'boiler' }, 'cli');
    const res = await fetch(s.url, {
      method: 'POST',
      body: JSON.stringify({ msg_type: '1', device_id: 'dev-op', device_key: 'pushed-key', device_status: 0 }),
    });
    expect(res.status).toBe(200);
    await s.until(
      'status point',
      () => s.rows(`SELECT * FROM device_status WHERE device_id = 'dev-op'`),
      (r) => r.length === 1,
    );
    expect(await s.registry.get('dev-op')).toMatchObject({ key: 'operator-key', name: 'boiler', origin: 'cli' });
  });

  test('a kept push is retried from the dead letters: still invalid stays, fixed lands at its original time', async () => {
    // refused for its signature: not authenticated, so nothing of it is kept (docs/security.md)
    const body = JSON.stringify({ msg_type: 1, device_id: 'dev-dl', device_key: 'key-dl', device_status: 1 });
    const refused = await fetch(
      `${s.url}?signature=${'0'.repeat(32)}&nonce=n&timestamp=${Math.floor(Date.now() / 1000)}`,
      { method: 'POST', body },
    );
    expect(refused.status).toBe(403);
    expect(await s.deadLetters.count()).toBe(0);
    // a letter whose body is good now (kept by an older version, or before a configuration fix)
    await s.deadLetters.add({
      kind: 'push',
      source: 'webhook',
      reason: 'kept before the fix',
      raw: body,
      deviceId: 'dev-dl',
    });
    const invalid = await fetch(s.url, { method: 'POST', body: '{"msg_type":2,"device_id":"dev-dl"}' });
    expect(invalid.status).toBe(400);
    const letters = await s.deadLetters.list();
    expect(letters.map((l) => l.raw).sort()).toEqual([body, '{"msg_type":2,"device_id":"dev-dl"}'].sort());
    const outcomes = await s.deadLetters.retry(undefined, {
      push: pushRetryHandler({ queue: s.queue.queue, parseTime }),
    });
    const byRaw = new Map(letters.map((l) => [l.id, l]));
    const ok = outcomes.filter((o) => o.ok).map((o) => byRaw.get(o.id)!);
    expect(ok.map((l) => l.raw)).toEqual([body]);
    expect(outcomes.find((o) => !o.ok)?.error).toBe('"data" must be an array of rows, got nothing (missing)');
    const points = await s.until(
      'retried status',
      () => s.rows(`SELECT * FROM device_status WHERE device_id = 'dev-dl'`),
      (r) => r.length === 1,
    );
    expect(points).toEqual([{ time: ok[0].at, device_id: 'dev-dl', online: false, raw_status: 1, source: 'push' }]);
    const left = await s.deadLetters.list();
    expect(left.map((l) => [l.raw, l.attempts])).toEqual([['{"msg_type":2,"device_id":"dev-dl"}', 1]]);
    await s.deadLetters.drop(left.map((l) => l.id));
  });

  test('no push was refused along the way', async () => {
    expect(s.sim!.stats.pushes.every((p) => p.status === 200)).toBe(true);
    expect(await s.deadLetters.count()).toBe(0);
  });
});
