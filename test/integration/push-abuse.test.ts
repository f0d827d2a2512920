import { connect, type Socket } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Redis } from 'ioredis';
import { startRedisServer, until, type ChildServer } from '../helpers/services.js';
import { budgetCheck } from '../../src/dead-letters/budget-report.js';
import { RedisDeadLetterStore } from '../../src/dead-letters/store.js';
import { opsRoutes } from '../../src/ops/ops-routes.js';
import { createMetrics } from '../../src/ops/metrics.js';
import { startStack, type Stack } from './push-stack.js';

/**
 * The attack classes of issue 13 replayed at a bounded rate against a Redis with `maxmemory`:
 * oversized, garbage, forged-signature, deeply nested and slow bodies. Real pushes must keep being
 * acknowledged and landing, the dead letters stay within their budget, and nothing stalls.
 */

const TS = '2017-02-13T12-00-00-000';
const BUDGET = 2 * 1024 * 1024;
const MB = 1024 * 1024;

let redisServer: ChildServer;
let s: Stack;
let redis: Redis;

beforeAll(async () => {
  // noeviction: a full Redis refuses writes, which is what made real pushes fail with 503
  redisServer = await startRedisServer({ args: ['--maxmemory', '48mb', '--maxmemory-policy', 'noeviction'] });
  redis = new Redis(redisServer.url);
  // /healthz and /readyz on the webhook's port, as `run` serves them
  let prefix = '';
  const ops = opsRoutes({
    metrics: createMetrics({ defaultMetrics: false }),
    collect: async () => undefined,
    readiness: [
      {
        name: 'dead-letters',
        check: () => budgetCheck(new RedisDeadLetterStore(redis, prefix, { maxBytes: BUDGET })).check(),
      },
    ],
    queues: [],
  });
  s = await startStack({
    redisUrl: redisServer.url,
    deadLetterMaxBytes: BUDGET,
    webhook: { requestTimeoutMs: 2000, idleTimeoutMs: 1500, maxConnections: 300 },
    server: { plugins: [ops] },
  });
  prefix = s.prefix;
}, 60_000);

afterAll(async () => {
  redis?.disconnect();
  await s?.close();
  await redisServer?.close();
});

const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);

async function post(url: string, body: string | Buffer): Promise<number> {
  const res = await fetch(url, { method: 'POST', body: typeof body === 'string' ? body : new Uint8Array(body) });
  await res.arrayBuffer();
  return res.status;
}

/** Sends headers promising `length` bytes, then a few bytes now and then; resolves when the server closes it. */
function slowBody(url: string, length: number): { closed: Promise<void>; socket: Socket } {
  const u = new URL(url);
  const socket = connect(Number(u.port), u.hostname);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => undefined);
  socket.write(`POST ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nContent-Length: ${length}\r\n\r\n{"msg_type":2,`);
  const drip = setInterval(() => (socket.writable ? socket.write('[') : clearInterval(drip)), 300);
  socket.once('close', () => clearInterval(drip));
  return { closed, socket };
}

describe('webhook under abuse', () => {
  test('10 s of oversized, garbage, forged, nested and slow bodies: real pushes land, Redis stays within the budget, /healthz answers', async () => {
    const baseline = await usedMemory();
    const origin = new URL(s.url).origin;
    const statuses: Record<string, number[]> = {
      oversized: [],
      garbage: [],
      forged: [],
      nested: [],
      real: [],
      probe: [],
    };
    const slow: Array<Promise<void>> = [];
    const realIds: string[] = [];
    const end = Date.now() + 10_000;
    let round = 0;
    while (Date.now() < end) {
      round++;
      const oversized = `{"msg_type":2,"pad":"${'x'.repeat(MB)}","round":${round}}`; // no device_id: refused, kept (its head only)
      const garbage = randomBytes(200 * 1024);
      const nested = `${'['.repeat(MB / 2)}${round}${']'.repeat(MB / 2)}`;
      const forgedQuery = new URLSearchParams({
        signature: 'f'.repeat(32),
        nonce: `n${round}`,
        timestamp: String(Math.floor(Date.now() / 1000)),
      });
      const id = `real-${round}`;
      realIds.push(id);
      if (round % 5 === 1) slow.push(slowBody(s.url, 50_000).closed);
      const results = await Promise.all([
        post(s.url, oversized).then((st) => statuses.oversized.push(st)),
        post(s.url, garbage).then((st) => statuses.garbage.push(st)),
        post(`${s.url}?${forgedQuery}`, randomBytes(MB)).then((st) => statuses.forged.push(st)),
        post(s.url, nested).then((st) => statuses.nested.push(st)),
        post(s.url, JSON.stringify({ msg_type: 2, device_id: id, data: [{ timestamp: TS, n: round }] })).then((st) =>
          statuses.real.push(st),
        ),
        fetch(`${origin}/healthz`).then(async (r) => (await r.arrayBuffer(), statuses.probe.push(r.status))),
      ]);
      expect(results.length).toBe(6);
      // paces the rounds over the 10 s (not a wait for anything)
      await new Promise((r) => setTimeout(r, 100));
    }

    expect(round).toBeGreaterThan(5);
    // every real push acknowledged, every probe answered, every attack refused
    expect(statuses.real).toEqual(realIds.map(() => 200));
    expect(statuses.probe).toEqual(realIds.map(() => 200));
    expect(new Set(statuses.oversized)).toEqual(new Set([400]));
    // random bytes: not UTF-8 (415), or refused by the nesting pre-scan first (400)
    expect(statuses.garbage.every((st) => st === 415 || st === 400)).toBe(true);
    expect(new Set(statuses.forged)).toEqual(new Set([403]));
    expect(new Set(statuses.nested)).toEqual(new Set([400]));
    // slow bodies are cut off by the request timeout
    await Promise.all(slow);

    // ... and landing in InfluxDB
    const rows = await s.until(
      'real pushes in InfluxDB',
      () => s.rows('SELECT n, device_id FROM device_data'),
      (r) => r.length === realIds.length,
    );
    expect(rows.map((r) => r.device_id).sort()).toEqual([...realIds].sort());

    // forged bodies were counted, not kept; the budget filled and then letters were counted, not kept
    expect(s.refused.signature).toBe(round);
    const budget = await s.deadLetters.budget();
    expect(budget.usedBytes).toBeLessThanOrEqual(BUDGET);
    expect(budget.fullSince).toBeDefined();
    expect(budget.notKept['push/webhook']).toBeGreaterThan(0);
    expect(s.refused.budget).toBe(budget.notKept['push/webhook']);
    const ready = await fetch(`${origin}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({
      status: 'degraded',
      checks: { 'dead-letters': expect.stringContaining('not kept') },
    });
    // a kept oversized body is its head, length and digest
    const first = (await s.deadLetters.list()).find((l) =>
      String((l.raw as { head?: string }).head).startsWith('{"msg_type":2,"pad"'),
    )!;
    const sent = `{"msg_type":2,"pad":"${'x'.repeat(MB)}","round":1}`;
    expect(first.raw).toEqual({
      truncated: true,
      bytes: sent.length,
      encoding: 'utf8',
      sha256: createHash('sha256').update(sent).digest('hex'),
      head: expect.any(String),
    });
    expect((first.raw as { head: string }).head).toBe(`{"msg_type":2,"pad":"${'x'.repeat(64 * 1024 - 21)}`);
    expect(first.reason).toContain('device_id');
    // Redis grew by the budget and the real pushes' jobs at most, far from the ~10 MB per round sent
    expect(await usedMemory()).toBeLessThan(baseline + BUDGET + 8 * MB);
  }, 120_000);
});

describe('connection bounds', () => {
  let bounded: Stack;
  beforeAll(async () => {
    bounded = await startStack({
      worker: false,
      webhook: { requestTimeoutMs: 1000, idleTimeoutMs: 30_000, maxConnections: 5 },
    });
  });
  afterAll(async () => {
    await bounded?.close();
  });

  const open = (url: string) => {
    const u = new URL(url);
    const socket = connect(Number(u.port), u.hostname);
    socket.on('error', () => undefined);
    let closed = false;
    socket.once('close', () => (closed = true));
    return { socket, isClosed: () => closed, connected: new Promise<void>((r) => socket.once('connect', () => r())) };
  };

  test('a body that trickles in is cut off after WEBHOOK_REQUEST_TIMEOUT, though bytes keep coming', async () => {
    const { closed } = slowBody(bounded.url, 10_000);
    await until(
      'the slow request to be closed',
      async () => Promise.race([closed.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 200))]),
      { timeoutMs: 15_000 },
    );
  });

  test('a silent connection is closed after WEBHOOK_IDLE_TIMEOUT', async () => {
    const idle = await startStack({ worker: false, webhook: { idleTimeoutMs: 500 } });
    try {
      const c = open(idle.url);
      await c.connected;
      await until('the idle connection to be closed', async () => c.isClosed(), { timeoutMs: 15_000 });
    } finally {
      await idle.close();
    }
  });

  test('connections beyond WEBHOOK_MAX_CONNECTIONS are closed at once; the others are served', async () => {
    const held = Array.from({ length: 5 }, () => open(bounded.url));
    await Promise.all(held.map((h) => h.connected));
    // the server has accepted them all before the sixth arrives
    const connections = () =>
      new Promise<number>((resolve, reject) =>
        bounded.server.app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
      );
    await until('the server to hold the five connections', async () => (await connections()) === 5, {
      timeoutMs: 10_000,
      intervalMs: 20,
    });
    const extra = open(bounded.url);
    await until('the sixth connection to be closed', async () => extra.isClosed(), { timeoutMs: 10_000 });
    expect(held.some((h) => h.isClosed())).toBe(false);
    // a held connection still gets an answer
    held[0].socket.write(`GET /webhook HTTP/1.1\r\nHost: x\r\n\r\n`);
    const answer = await new Promise<string>((r) => held[0].socket.once('data', (d) => r(d.toString())));
    expect(answer).toMatch(/^HTTP\/1\.1 403/);
    for (const h of held) h.socket.destroy();
  });
});
