import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { MEASUREMENT, type DeadLetter, type SinkPoint } from '../../src/influx/api.js';
import { InfluxPointWriter } from '../../src/influx/point-writer.js';
import Fastify from 'fastify';
import {
  DeadLetterBudgetError,
  LETTER_OVERHEAD_BYTES,
  RedisDeadLetterStore,
  type RetryHandlers,
} from '../../src/dead-letters/store.js';
import { budgetCheck, describeBudget } from '../../src/dead-letters/budget-report.js';
import { opsRoutes } from '../../src/ops/ops-routes.js';
import { createMetrics } from '../../src/ops/metrics.js';
import { retryPoint } from '../../src/dead-letters/retry-point.js';
import { DirtyHours } from '../../src/rollup/dirty-hours.js';
import { deadLetters, type DeadLettersDeps } from '../../src/cli/commands/dead-letters.js';
import { SecretScrubber } from '../../src/base/secrets.js';
import {
  createTestDatabase,
  deleteRedisPrefix,
  influxQuery,
  influxRows,
  INFLUX_URL,
  REDIS_URL,
  testPrefix,
} from '../helpers/services.js';
import { runCli } from '../helpers/cli.js';
import { isRetryable } from '../../src/base/retry.js';

const T0 = Date.UTC(2024, 2, 1);
const data = (deviceId: string, time: number, fields: Record<string, unknown>): SinkPoint => ({
  measurement: MEASUREMENT.data,
  deviceId,
  time,
  fields,
});

let redis: Redis;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
const prefixes: string[] = [];
const writers: InfluxPointWriter[] = [];

function freshStore(now?: () => number, maxBytes?: number): { store: RedisDeadLetterStore; prefix: string } {
  const prefix = testPrefix('dead-letters');
  prefixes.push(prefix);
  return { store: new RedisDeadLetterStore(redis, prefix, maxBytes ? { now, maxBytes } : { now }), prefix };
}

/** What the kept letters really take by the store's measure: their JSON plus the per-letter overhead. */
async function actualBytes(prefix: string): Promise<number> {
  const values = await redis.hvals(`${prefix}:dead-letters`);
  return values.reduce((n, v) => n + Buffer.byteLength(v) + LETTER_OVERHEAD_BYTES, 0);
}

function cli(store: RedisDeadLetterStore, handlers: RetryHandlers = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const scrubber = new SecretScrubber(['push-device-key-123']);
  const deps: DeadLettersDeps = {
    store,
    handlers: async () => handlers,
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    scrubValue: (v) => scrubber.scrubValue(v),
  };
  return { run: (...argv: string[]) => deadLetters(argv, deps), out, err };
}

beforeAll(async () => {
  redis = new Redis(REDIS_URL);
  db = await createTestDatabase('dead_letters');
});

afterAll(async () => {
  for (const w of writers) await w.close();
  await db.drop();
  for (const p of prefixes) await deleteRedisPrefix(p);
  redis.disconnect();
});

describe('RedisDeadLetterStore', () => {
  test('keeps reason and raw content exactly (NaN, Infinity, undefined too), once per content', async () => {
    let clock = 1_000;
    const { store } = freshStore(() => clock++);
    const raw = data('d1', T0, { a: Number.NaN, b: Number.NEGATIVE_INFINITY, c: undefined, d: [1, { e: 'x' }] });
    const id = await store.add({
      kind: 'point',
      source: 'pull',
      reason: 'field "a": value NaN is not a finite number',
      deviceId: 'd1',
      raw,
    });
    expect(
      await store.add({
        kind: 'point',
        source: 'pull',
        reason: 'field "a": value NaN is not a finite number',
        deviceId: 'd1',
        raw,
      }),
    ).toBe(id);
    const id2 = await store.add({ kind: 'push', source: 'webhook', reason: 'body is not JSON', raw: 'not { json' });
    expect(id2).not.toBe(id);
    expect(await store.count()).toBe(2);
    expect(await store.get(id)).toEqual({
      id,
      kind: 'point',
      source: 'pull',
      reason: 'field "a": value NaN is not a finite number',
      deviceId: 'd1',
      raw,
      at: 1_000,
      attempts: 0,
    });
    expect((await store.list()).map((l) => l.id)).toEqual([id, id2]);
    expect((await store.list({ offset: 1, limit: 5 })).map((l) => l.id)).toEqual([id2]);
    expect(await store.list({ limit: 0 })).toEqual([]);
    expect(await store.drop([id, 'nope'])).toBe(1);
    expect(await store.get(id)).toBeUndefined();
    expect(await store.count()).toBe(1);
  });

  test('letters set aside in the same millisecond list in the order they were added', async () => {
    const { store } = freshStore(() => 1_000);
    const ids: string[] = [];
    for (let i = 0; i < 25; i++)
      ids.push(await store.add({ kind: 'row', source: 'pull', reason: `bad row ${i}`, raw: { i } }));
    await store.add({ kind: 'row', source: 'pull', reason: 'bad row 3', raw: { i: 3 } }); // the same letter again: kept once, in place
    expect((await store.list()).map((l) => l.id)).toEqual(ids);
    expect((await store.list({ offset: 5, limit: 3 })).map((l) => l.id)).toEqual(ids.slice(5, 8));
    expect(await store.count()).toBe(25);
  });

  test('retry: a point that now fits is written and removed; one still refused stays with attempts + 1', async () => {
    const { store } = freshStore();
    const writer = new InfluxPointWriter({ url: INFLUX_URL, api: 'v1', bucket: db.name, deadLetters: store });
    writers.push(writer);
    await writer.write([data('r1', T0, { level: 'high' })], { source: 'pull' });
    // `level` is a string in this database: the float is refused and set aside
    const result = await writer.write([data('r1', T0 + 1000, { level: 3, ok: 1 })], { source: 'pull' });
    expect(result).toMatchObject({ written: 1, deadLettered: 1 });
    const [letter] = await store.list();
    expect(letter.reason).toContain('field "level" refused by InfluxDB: HTTP 400');

    const pushed: DeadLetter[] = [];
    const handlers: RetryHandlers = {
      point: retryPoint(writer),
      push: async (l) => {
        pushed.push(l);
      },
    };
    const pushId = await store.add({
      kind: 'push',
      source: 'webhook',
      reason: 'redis was down',
      raw: { msg_type: 2, device_id: 'r1' },
    });
    const rowId = await store.add({
      kind: 'row',
      source: 'pull',
      reason: 'unparseable timestamp',
      deviceId: 'r1',
      raw: { timestamp: 'garbage' },
    });

    const first = await store.retry(undefined, handlers);
    expect(first).toEqual([
      { id: letter.id, ok: false, error: expect.stringContaining('field "level" refused by InfluxDB: HTTP 400') },
      { id: pushId, ok: true },
      { id: rowId, ok: false, error: 'no retry handler for kind "row"' },
    ]);
    expect(pushed.map((l) => l.raw)).toEqual([{ msg_type: 2, device_id: 'r1' }]);
    expect(await store.get(letter.id)).toMatchObject({
      attempts: 1,
      lastError: expect.stringContaining('field type conflict'),
    });
    expect(await store.get(rowId)).toMatchObject({ attempts: 0 });
    expect(await store.get(pushId)).toBeUndefined();

    // the operator resolves the conflict (the old string data goes), then retries that letter
    await influxQuery(db.name, 'DROP MEASUREMENT device_data');
    expect(await store.retry([letter.id], handlers)).toEqual([{ id: letter.id, ok: true }]);
    expect(await store.get(letter.id)).toBeUndefined();
    expect(await influxRows(db.name, `SELECT level, ok FROM device_data WHERE device_id = 'r1'`)).toEqual([
      { time: T0 + 1000, level: 3, ok: 1 },
    ]);
  });
});

describe('the dead-letter budget', () => {
  const letter = (i: number) => ({
    kind: 'push' as const,
    source: 'webhook',
    reason: `bad body ${i}`,
    raw: `${'x'.repeat(400)}${i}`,
  });

  test('bytes are accounted on add and given back by drop and retry; over budget a letter is counted, not kept, nothing evicted', async () => {
    const { store, prefix } = freshStore(() => 5_000, 2_500);
    const ids: string[] = [];
    let refused: unknown;
    for (let i = 0; i < 10 && !refused; i++) {
      try {
        ids.push(await store.add(letter(i)));
      } catch (err) {
        refused = err;
      }
    }
    expect(refused).toBeInstanceOf(DeadLetterBudgetError);
    expect(isRetryable(refused)).toBe(true);
    expect(ids.length).toBe(4); // ~600 bytes each against 2,500
    const used = (await store.budget()).usedBytes;
    expect(used).toBe(await actualBytes(prefix));
    expect(used).toBeLessThanOrEqual(2_500);
    // a second refusal is counted too; every letter kept before is still there
    await expect(store.add(letter(99))).rejects.toBeInstanceOf(DeadLetterBudgetError);
    expect(await store.budget()).toEqual({
      usedBytes: used,
      maxBytes: 2_500,
      fullSince: 5_000,
      notKept: { 'push/webhook': 2 },
    });
    expect((await store.list()).map((l) => l.id)).toEqual(ids);
    // the same letter again is no new letter: it is "kept" without new bytes
    expect(await store.add(letter(0))).toBe(ids[0]);
    expect(await budgetCheck(store).check()).toEqual({
      degraded: expect.stringContaining('FULL since 1970-01-01T00:00:05.000Z: 2 not kept (push/webhook 2)'),
    });

    // drop gives the bytes back and clears "full"
    expect(await store.drop([ids[0]])).toBe(1);
    const afterDrop = await store.budget();
    expect(afterDrop.usedBytes).toBe(await actualBytes(prefix));
    expect(afterDrop.usedBytes).toBeLessThan(used);
    expect(afterDrop.fullSince).toBeUndefined();
    expect(afterDrop.notKept).toEqual({ 'push/webhook': 2 }); // the count stays: those letters were never kept
    expect(await budgetCheck(store).check()).toBe(true);
    ids.push(await store.add(letter(10)));

    // a failed retry accounts the longer letter, a successful one gives its bytes back
    const failing: RetryHandlers = { push: async () => Promise.reject(new Error('still refused: ' + 'y'.repeat(50))) };
    await store.retry([ids[1]], failing);
    expect((await store.budget()).usedBytes).toBe(await actualBytes(prefix));
    await store.retry([ids[2]], { push: async () => undefined });
    expect(await store.get(ids[2])).toBeUndefined();
    expect((await store.budget()).usedBytes).toBe(await actualBytes(prefix));
    expect(describeBudget(await store.budget())).toMatch(/^0\.0 MiB of 0\.0 MiB \(EXPEED_DEAD_LETTER_MAX_BYTES\)$/);
  });

  test('letters kept by a version without the budget are counted on first use', async () => {
    const { store, prefix } = freshStore(undefined, 10_000);
    // as the previous version kept them: no byte count
    await redis.hset(
      `${prefix}:dead-letters`,
      'old1',
      JSON.stringify({
        id: 'old1',
        kind: 'push',
        source: 'webhook',
        reason: 'x',
        raw: 'y'.repeat(3000),
        at: 1,
        attempts: 0,
      }),
    );
    await redis.zadd(`${prefix}:dead-letters:order`, 1, 'old1');
    expect((await store.budget()).usedBytes).toBe(await actualBytes(prefix));
    expect((await store.budget()).usedBytes).toBeGreaterThan(3000);
    await redis.del(`${prefix}:dead-letters:bytes`);
    await store.add(letter(1));
    expect((await store.budget()).usedBytes).toBe(await actualBytes(prefix));
    await redis.del(`${prefix}:dead-letters:bytes`);
    await store.drop(['old1']);
    expect((await store.budget()).usedBytes).toBe(await actualBytes(prefix));
  });

  test('replicas share one budget: concurrent adds from two stores never pass it, and the account matches', async () => {
    const { store: a, prefix } = freshStore(undefined, 10_000);
    const b = new RedisDeadLetterStore(new Redis(REDIS_URL), prefix, { maxBytes: 10_000 });
    try {
      const outcomes = await Promise.allSettled(Array.from({ length: 60 }, (_, i) => (i % 2 ? a : b).add(letter(i))));
      const kept = outcomes.filter((o) => o.status === 'fulfilled').length;
      expect(kept).toBeGreaterThan(10);
      expect(kept).toBeLessThan(60);
      expect(
        outcomes
          .filter((o) => o.status === 'rejected')
          .every((o) => (o as PromiseRejectedResult).reason instanceof DeadLetterBudgetError),
      ).toBe(true);
      const budget = await a.budget();
      expect(budget.usedBytes).toBe(await actualBytes(prefix));
      expect(budget.usedBytes).toBeLessThanOrEqual(10_000);
      expect(await a.count()).toBe(kept);
      expect(budget.notKept).toEqual({ 'push/webhook': 60 - kept });
    } finally {
      (b as unknown as { redis: Redis }).redis.disconnect();
    }
  });

  test('a point InfluxDB refuses while the budget is spent is not lost: the write fails retryably and is counted', async () => {
    const { store } = freshStore(undefined, 200);
    const writer = new InfluxPointWriter({ url: INFLUX_URL, api: 'v1', bucket: db.name, deadLetters: store });
    writers.push(writer);
    await writer.write([data('b1', T0, { mode: 'auto' })], { source: 'pull' });
    const err = await writer.write([data('b1', T0 + 1000, { mode: 5 })], { source: 'pull' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeadLetterBudgetError);
    expect(isRetryable(err)).toBe(true);
    expect(await store.count()).toBe(0);
    expect((await store.budget()).notKept).toEqual({ 'point/pull': 1 });
  });

  test('/readyz says degraded (200), not failed, while letters are not kept', async () => {
    const { store } = freshStore(undefined, 300);
    const app = Fastify();
    await app.register(
      opsRoutes({
        metrics: createMetrics({ defaultMetrics: false }),
        collect: async () => undefined,
        readiness: [budgetCheck(store)],
        queues: [],
      }),
    );
    try {
      expect((await app.inject({ url: '/readyz' })).json()).toEqual({
        status: 'ready',
        checks: { 'dead-letters': 'ok' },
      });
      await expect(store.add(letter(1))).rejects.toBeInstanceOf(DeadLetterBudgetError);
      const res = await app.inject({ url: '/readyz' });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({
        status: 'degraded',
        checks: {
          'dead-letters': expect.stringMatching(/^degraded: .* FULL since .*: 1 not kept \(push\/webhook 1\)/),
        },
      });
    } finally {
      await app.close();
    }
  });
});

describe('dead-letters command', () => {
  test('list shows id, time, source, device, reason and truncated raw, secrets hidden; --json is complete', async () => {
    const { store } = freshStore(() => T0);
    const long = 'x'.repeat(500);
    const id = await store.add({
      kind: 'push',
      source: 'webhook',
      reason: 'body is not valid JSON',
      deviceId: 'dev-9',
      raw: { device_key: 'push-device-key-123', note: long },
    });
    const c = cli(store);
    expect(await c.run('list')).toBe(0);
    expect(c.out[0]).toBe('1 dead letter(s); showing 1-1 (oldest first)');
    expect(c.out[1]).toBe(`${id}  ${new Date(T0).toISOString()}  push  webhook  dev-9  attempts=0`);
    expect(c.out[2]).toBe('  reason: body is not valid JSON');
    expect(c.out[3]).toBe(`  raw: ${`{"device_key":"[REDACTED]","note":"${long}`.slice(0, 79)}…`);
    expect(c.out.join('\n')).not.toContain('push-device-key-123');

    const j = cli(store);
    expect(await j.run('list', '--json')).toBe(0);
    const parsed = JSON.parse(j.out.join('\n')) as { total: number; letters: DeadLetter[] };
    expect(parsed.total).toBe(1);
    expect(parsed.letters[0]).toEqual({
      id,
      kind: 'push',
      source: 'webhook',
      reason: 'body is not valid JSON',
      deviceId: 'dev-9',
      raw: { device_key: '[REDACTED]', note: long },
      at: T0,
      attempts: 0,
    });
  });

  test('list of NaN raw shows NaN; retry and drop report per id and exit non-zero on failures', async () => {
    let clock = T0;
    const { store } = freshStore(() => clock++);
    const a = await store.add({
      kind: 'point',
      source: 'pull',
      reason: 'field "v": value NaN is not a finite number',
      deviceId: 'n',
      raw: { v: Number.NaN, w: Number.NEGATIVE_INFINITY },
    });
    const b = await store.add({ kind: 'row', source: 'pull', reason: 'bad timestamp', raw: { timestamp: '??' } });
    const c = cli(store, { point: async () => undefined });
    expect(await c.run('list')).toBe(0);
    expect(c.out[3]).toBe('  raw: {"v":NaN,"w":-Infinity}');

    const r = cli(store, { point: async () => undefined });
    expect(await r.run('retry')).toBe(1);
    expect(r.out).toEqual([
      `${a}: written, removed`,
      `${b}: still failing: no retry handler for kind "row"`,
      'retried 2: 1 written, 1 still dead letters',
    ]);

    const d = cli(store);
    expect(await d.run('drop', b, 'missing-id')).toBe(1);
    expect(d.out).toEqual(['dropped 1 of 2']);
    expect(d.err).toEqual(['expeed-sync dead-letters: 1 id(s) were not dead letters']);
    expect(await store.count()).toBe(0);

    const e = cli(store);
    expect(await e.run('list')).toBe(0);
    expect(e.out).toEqual(['no dead letters']);
    await expect(e.run('drop')).rejects.toThrow('dead-letters drop ID... (see dead-letters list for the ids)');
    await expect(e.run('purge')).rejects.toThrow('unknown subcommand "purge"');
    await expect(e.run('list', '--limit', 'ten')).rejects.toThrow('--limit expects a whole number, got "ten"');
  });

  test('the expeed-sync executable lists, retries (through InfluxDB) and drops', async () => {
    const { store, prefix } = freshStore();
    const env = { EXPEED_PREFIX: prefix, REDIS_URL, INFLUX_URL, INFLUX_API: 'v1', INFLUX_BUCKET: db.name };
    const pointId = await store.add({
      kind: 'point',
      source: 'pull',
      reason: 'InfluxDB was refusing',
      deviceId: 'cli-dev',
      raw: data('cli-dev', T0 + 5, { v: 42 }),
    });
    const otherId = await store.add({ kind: 'row', source: 'pull', reason: 'bad timestamp', raw: { timestamp: '??' } });

    const listed = await runCli(['dead-letters', 'list', '--json'], env);
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as { letters: DeadLetter[] }).letters.map((l) => l.id)).toEqual([
      pointId,
      otherId,
    ]);

    const retried = await runCli(['dead-letters', 'retry', pointId], env);
    expect({ code: retried.code, stdout: retried.stdout }).toEqual({
      code: 0,
      stdout: `${pointId}: written, removed\nretried 1: 1 written, 0 still dead letters\n`,
    });
    expect(await influxRows(db.name, `SELECT v FROM device_data WHERE device_id = 'cli-dev'`)).toEqual([
      { time: T0 + 5, v: 42 },
    ]);
    // through the one write path: the retried point's hour is marked for its rollup, no other hour
    const dirty = new DirtyHours({ redis, prefix, settleMs: 0 });
    expect(await dirty.count('cli-dev', [T0 + 5])).toBe(1);
    expect(await dirty.count('cli-dev', [T0 + 5 - 3_600_000, T0 + 5 + 3_600_000])).toBe(0);

    const dropped = await runCli(['dead-letters', 'drop', otherId], env);
    expect({ code: dropped.code, stdout: dropped.stdout }).toEqual({ code: 0, stdout: 'dropped 1 of 1\n' });
    const bad = await runCli(['dead-letters', 'drop'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe(
      'expeed-sync dead-letters: usage: dead-letters drop ID... (see dead-letters list for the ids)\n',
    );
    expect(await store.count()).toBe(0);
  });
});
