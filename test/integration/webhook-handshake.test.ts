import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { computeSignature } from '../../src/webhook/signature.js';
import { startStack, WEBHOOK_TOKEN, type Stack } from './webhook-stack.js';

let s: Stack;
let strict: Stack;

beforeAll(async () => {
  [s, strict] = await Promise.all([
    startStack({ sim: { devices: [{ id: 'dev-h', key: 'key-h' }] }, worker: false }),
    startStack({ webhook: { requirePostSignature: true, timestampWindowSec: 60 }, worker: false }),
  ]);
});

afterAll(async () => {
  await Promise.all([s?.close(), strict?.close()]);
});

const nowSec = () => String(Math.floor(Date.now() / 1000));
const get = async (base: string, params: Record<string, string>) => {
  const res = await fetch(`${base}?${new URLSearchParams(params)}`);
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
    expect(JSON.parse(a.body)).toEqual({ result_code: 4, result_message: 'signature refused: signature does not match' });
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

  test('the token never appears in an answer', async () => {
    const a = await get(s.url, { nonce: WEBHOOK_TOKEN, timestamp: nowSec(), signature: 'x' });
    expect(a.body).not.toContain(WEBHOOK_TOKEN);
  });
});

describe('signatures on POSTs', () => {
  test('when present they are verified: a wrong one is refused (403) and the body kept', async () => {
    const ts = nowSec();
    const res = await fetch(`${s.url}?${new URLSearchParams({ signature: 'f'.repeat(32), nonce: 'n1', timestamp: ts })}`, { method: 'POST', body: PUSH });
    expect(res.status).toBe(403);
    expect((await res.json()).result_code).toBe(4);
    const letters = await s.deadLetters.list();
    expect(letters.map((l) => ({ kind: l.kind, source: l.source, raw: l.raw, deviceId: l.deviceId }))).toEqual([{ kind: 'push', source: 'webhook', raw: PUSH, deviceId: 'dev-h' }]);
    expect(letters[0].reason).toContain('signature does not match');
  });

  test('when present and right the push is taken', async () => {
    const ts = nowSec();
    const signature = computeSignature(WEBHOOK_TOKEN, 'n2', ts);
    const res = await fetch(`${s.url}?${new URLSearchParams({ signature, nonce: 'n2', timestamp: ts })}`, { method: 'POST', body: PUSH });
    expect(res.status).toBe(200);
    expect(await s.queue.queue.count()).toBe(1);
  });

  test('with WEBHOOK_REQUIRE_SIGNATURE a POST without one is refused', async () => {
    const res = await fetch(strict.url, { method: 'POST', body: PUSH });
    expect(res.status).toBe(403);
    expect((await res.json()).result_message).toContain('missing or repeated query parameter: signature, nonce, timestamp');
    expect(await strict.queue.queue.count()).toBe(0);
    const ts = nowSec();
    const ok = await fetch(`${strict.url}?${new URLSearchParams({ signature: computeSignature(WEBHOOK_TOKEN, 'n3', ts), nonce: 'n3', timestamp: ts })}`, { method: 'POST', body: PUSH });
    expect(ok.status).toBe(200);
    expect(await strict.queue.queue.count()).toBe(1);
  });
});
