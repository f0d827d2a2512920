import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { computeSignature } from '../../src/push/signature.js';
import { formatPlatformTime } from '../../src/platform/time-format.js';
import { startStack, TZ, WEBHOOK_TOKEN, type Stack } from './push-stack.js';

let s: Stack;
let strict: Stack;
let windowless: Stack;
const logLines: string[] = [];

beforeAll(async () => {
  [s, strict, windowless] = await Promise.all([
    startStack({
      sim: { devices: [{ id: 'dev-h', key: 'key-h' }] },
      worker: false,
      logTo: { write: (line) => void logLines.push(line) },
    }),
    startStack({ webhook: { requirePostSignature: true, timestampWindowSec: 60 }, worker: false }),
    startStack({ webhook: { timestampWindowSec: 0 }, worker: false }),
  ]);
});

afterAll(async () => {
  await Promise.all([s?.close(), strict?.close(), windowless?.close()]);
});

const signedUrl = (base: string, nonce: string, timestamp: string) =>
  `${base}?${new URLSearchParams({ signature: computeSignature(WEBHOOK_TOKEN, nonce, timestamp), nonce, timestamp })}`;

const nowSec = () => String(Math.floor(Date.now() / 1000));
const get = async (base: string, params: Record<string, string>) => {
  const res = await fetch(Object.keys(params).length ? `${base}?${new URLSearchParams(params)}` : base);
  return { status: res.status, body: await res.text() };
};
const PUSH = JSON.stringify({ msg_type: 1, device_id: 'dev-h', device_status: 0 });

describe('GET handshake', () => {
  test('a good signature (sent by the simulator) is answered with the bare nonce', async () => {
    expect(await s.sim!.handshake({ nonce: 'n-good-1' })).toEqual({ status: 200, body: 'n-good-1' });
  });

  test('a timestamp in milliseconds is accepted', async () => {
    expect(await s.sim!.handshake({ nonce: 'n-ms', timestamp: Date.now() })).toEqual({ status: 200, body: 'n-ms' });
  });

  test('a signature made with another token gets 403 and no nonce', async () => {
    const a = await s.sim!.handshake({ token: 'not-the-token', nonce: 'n-wrong-77' });
    expect(a.status).toBe(403);
    expect(a.body).not.toContain('n-wrong-77');
    expect(JSON.parse(a.body)).toEqual({
      result_code: 4,
      result_message: 'signature refused: signature does not match',
    });
  });

  test('a missing signature gets 403 and no nonce', async () => {
    const a = await get(s.url, { nonce: 'n-missing-55', timestamp: nowSec() });
    expect(a.status).toBe(403);
    expect(a.body).not.toContain('n-missing-55');
    expect(JSON.parse(a.body).result_message).toContain('signature');
  });

  test('a replayed handshake with an old timestamp gets 403, though its signature is right', async () => {
    const old = Math.floor(Date.now() / 1000) - 3600;
    const a = await s.sim!.handshake({ nonce: 'n-replay-9', timestamp: old });
    expect(a.status).toBe(403);
    expect(a.body).not.toContain('n-replay-9');
    expect(JSON.parse(a.body).result_message).toMatch(/timestamp is \d+ s away from now \(allowed: 300 s\)/);
  });

  test("a timestamp in the platform's own form (platform-local time) is accepted", async () => {
    const ts = formatPlatformTime(Date.now(), TZ);
    expect(ts).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}$/);
    const a = await get(signedUrl(s.url, 'n-vendor', ts), {});
    expect(a).toEqual({ status: 200, body: 'n-vendor' });
  });

  test('with WEBHOOK_TIMESTAMP_WINDOW=0 an old timestamp is accepted; a wrong signature still is not', async () => {
    const old = String(Math.floor(Date.now() / 1000) - 30 * 86_400);
    expect(await get(signedUrl(windowless.url, 'n-old', old), {})).toEqual({ status: 200, body: 'n-old' });
    expect((await get(windowless.url, { nonce: 'n-old', timestamp: old, signature: 'f'.repeat(32) })).status).toBe(403);
  });

  test('a refused handshake logs why (skew, format, signature) without the token or the signature', async () => {
    // one line per reason and interval: this test's refusals are the first of their kind in a fresh stack
    const fresh = await startStack({ worker: false, logTo: { write: (line) => void logLines.push(line) } });
    try {
      const stale = String(Math.floor(Date.now() / 1000) - 3600);
      const staleSig = computeSignature(WEBHOOK_TOKEN, 'n-log', stale);
      logLines.length = 0;
      expect((await get(signedUrl(fresh.url, 'n-log', stale), {})).status).toBe(403);
      const line = logLines.map((l) => JSON.parse(l)).find((l) => l.msg === 'webhook handshake refused');
      expect(line).toMatchObject({ problem: 'stale', refusal: 'handshake' });
      expect(line.reason).toMatch(/timestamp is 3\d{3} s away from now \(allowed: 300 s\)/);
      expect(logLines.join('\n')).not.toContain(staleSig);
      expect(logLines.join('\n')).not.toContain(WEBHOOK_TOKEN);
    } finally {
      await fresh.close();
    }
  });

  test('the token never appears in an answer', async () => {
    const a = await get(s.url, { nonce: WEBHOOK_TOKEN, timestamp: nowSec(), signature: 'x' });
    expect(a.body).not.toContain(WEBHOOK_TOKEN);
  });
});

describe('signatures on POSTs', () => {
  test('when present they are verified: a wrong one is refused (403), counted, and nothing of the body kept', async () => {
    const ts = nowSec();
    const before = s.refused.signature ?? 0;
    const res = await fetch(
      `${s.url}?${new URLSearchParams({ signature: 'f'.repeat(32), nonce: 'n1', timestamp: ts })}`,
      { method: 'POST', body: PUSH },
    );
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ result_code: 4, result_message: 'signature refused: signature does not match' });
    expect(await s.deadLetters.count()).toBe(0);
    expect(s.refused.signature).toBe(before + 1);
  });

  test('when present and right the push is taken', async () => {
    const ts = nowSec();
    const signature = computeSignature(WEBHOOK_TOKEN, 'n2', ts);
    const res = await fetch(`${s.url}?${new URLSearchParams({ signature, nonce: 'n2', timestamp: ts })}`, {
      method: 'POST',
      body: PUSH,
    });
    expect(res.status).toBe(200);
    expect(await s.queue.queue.count()).toBe(1);
  });

  test('a signed URL carries one body: the same signature again is refused (403, counted) and not enqueued', async () => {
    const url = signedUrl(s.url, 'n-once', nowSec());
    const before = await s.queue.queue.count();
    expect((await fetch(url, { method: 'POST', body: PUSH })).status).toBe(200);
    const other = JSON.stringify({ msg_type: 1, device_id: 'dev-evil', device_status: 1 });
    for (const body of [other, PUSH]) {
      const res = await fetch(url, { method: 'POST', body });
      expect(res.status).toBe(403);
      expect((await res.json()).result_message).toContain('already received (a replay)');
    }
    expect(s.refused.replay).toBe(2);
    expect(await s.queue.queue.count()).toBe(before + 1);
    expect(await s.deadLetters.count()).toBe(0);
    // the nonce is remembered for the window (twice 300 s: both sides of now), in Redis
    const ttl = await s.redis.ttl(`${s.prefix}:webhook:nonce:${new URL(url).searchParams.get('signature')}`);
    expect(ttl).toBeGreaterThan(500);
    expect(ttl).toBeLessThanOrEqual(600);
  });

  test('with the window off a nonce is remembered for a day', async () => {
    const url = signedUrl(windowless.url, 'n-day', nowSec());
    expect((await fetch(url, { method: 'POST', body: PUSH })).status).toBe(200);
    expect((await fetch(url, { method: 'POST', body: PUSH })).status).toBe(403);
    const ttl = await windowless.redis.ttl(
      `${windowless.prefix}:webhook:nonce:${new URL(url).searchParams.get('signature')}`,
    );
    expect(ttl).toBeGreaterThan(86_000);
  });

  test('with WEBHOOK_REQUIRE_SIGNATURE a POST without one is refused', async () => {
    const res = await fetch(strict.url, { method: 'POST', body: PUSH });
    expect(res.status).toBe(403);
    expect((await res.json()).result_message).toContain(
      'missing or repeated query parameter: signature, nonce, timestamp',
    );
    expect(await strict.queue.queue.count()).toBe(0);
    const ts = nowSec();
    const ok = await fetch(
      `${strict.url}?${new URLSearchParams({ signature: computeSignature(WEBHOOK_TOKEN, 'n3', ts), nonce: 'n3', timestamp: ts })}`,
      { method: 'POST', body: PUSH },
    );
    expect(ok.status).toBe(200);
    expect(await strict.queue.queue.count()).toBe(1);
  });
});
