/**
 * The platform simulator against SPEC: token budget per platform day, header and parameter
 * checks, cursor paging that covers exactly `rows()`, encoded device ids, the push handshake
 * (signature checked independently here) and fault switches. The receiver is a tiny node:http
 * server; nothing is mocked.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { startSimulator, type Simulator, type SimulatorOptions } from '../../src/simulator/index.js';
import { VendorClock } from '../../src/simulator/vendor-time.js';
import { freePort, until } from '../helpers/services.js';

const PK = 'test-platform-key';
const SK = 'test-secret-key';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** 2024-03-01 00:00 in Asia/Shanghai */
const FROM = Date.UTC(2024, 1, 29, 16);
const clock = new VendorClock('Asia/Shanghai');

const open: Simulator[] = [];
async function sim(options: Partial<SimulatorOptions> = {}): Promise<Simulator> {
  const s = await startSimulator({
    platformKey: PK,
    secretKey: SK,
    devices: 3,
    from: FROM,
    to: FROM + 2 * DAY,
    ...options,
  });
  open.push(s);
  return s;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

async function getJson(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, any> }> {
  const res = await fetch(url, { headers });
  const text = await res.text();
  return { status: res.status, json: res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : { text } };
}

async function token(s: Simulator): Promise<string> {
  const { json } = await getJson(`${s.url}/v1/platform/token?platform_key=${PK}&secret_key=${SK}`);
  expect(json.result_code).toBe(0);
  return json.access_token as string;
}

function auth(tok: string, key: string): Record<string, string> {
  return { access_token: tok, device_key: key };
}

/** Rows of a history answer back to the shape of `rows()`. */
function fromAnswer(data: Array<Record<string, unknown>>): Array<{ time: number; values: Record<string, unknown> }> {
  return data.map(({ timestamp, ...values }) => ({ time: clock.parse(String(timestamp)) as number, values }));
}

/** Walks every page with the returned cursor; returns the pages. */
async function walk(
  s: Simulator,
  tok: string,
  path: string,
  query: Record<string, string>,
  key = 'key-0001',
): Promise<Array<Array<{ time: number; values: Record<string, unknown> }>>> {
  const pages = [];
  let cursor: number | undefined;
  for (let i = 0; i < 1000; i++) {
    const q = new URLSearchParams({ ...query, ...(cursor !== undefined ? { cursor: String(cursor) } : {}) });
    const { json } = await getJson(`${s.url}${path}?${q}`, auth(tok, key));
    expect(json.result_code).toBe(0);
    pages.push(fromAnswer(json.data));
    if (json.cursor === undefined) return pages;
    expect(json.cursor).not.toBe(cursor);
    cursor = json.cursor;
  }
  throw new Error('paging did not end');
}

describe('token endpoint', () => {
  test('the daily limit counts calls per platform day and resets at midnight Asia/Shanghai', async () => {
    let now = Date.UTC(2024, 2, 1, 15, 0); // 23:00 in Shanghai, 2024-03-01
    const s = await sim({ now: () => now, tokenDailyLimit: 200 });
    const url = `${s.url}/v1/platform/token?platform_key=${PK}&secret_key=${SK}`;
    const tokens = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const { json } = await getJson(url);
      expect(json).toMatchObject({ result_code: 0, expires_in: 7200, result_message: 'ok' });
      tokens.add(json.access_token);
    }
    expect(tokens.size).toBe(200);
    const over = await getJson(url);
    expect(over.json).toEqual({ result_code: 6, result_message: '超过每日调用次数限制' });
    // 23:59:59.999 Shanghai is still the same platform day
    now = Date.UTC(2024, 2, 1, 15, 59, 59, 999);
    expect((await getJson(url)).json.result_code).toBe(6);
    // midnight in Shanghai (16:00 UTC), long before the UTC day changes
    now = Date.UTC(2024, 2, 1, 16, 0, 0, 0);
    expect((await getJson(url)).json.result_code).toBe(0);
    expect(s.stats.tokenCalls).toBe(203);
    expect(s.stats.tokenCallsByDay).toEqual({ '2024-03-01': 202, '2024-03-02': 1 });
    expect(s.stats.requests.token).toBe(203);
  });

  test('wrong credentials answer code 1 and still count; a missing parameter is a violation', async () => {
    const s = await sim();
    const wrong = await getJson(`${s.url}/v1/platform/token?platform_key=${PK}&secret_key=nope`);
    expect(wrong.json).toEqual({ result_code: 1, result_message: '验证失败' });
    const missing = await getJson(`${s.url}/v1/platform/token?platform_key=${PK}`);
    expect(missing.json).toEqual({ result_code: 4, result_message: 'URL参数非法' });
    expect(s.stats.tokenCalls).toBe(2);
    expect(s.stats.violations).toEqual(['token: missing query parameter secret_key']);
  });

  test('tokens expire after the ttl; earlier tokens stay valid when a new one is issued', async () => {
    let now = FROM;
    const s = await sim({ now: () => now, tokenTtlSec: 60 });
    const first = await token(s);
    const second = await token(s);
    expect(first).not.toBe(second);
    const status = `${s.url}/v1/devices/device_status/dev-0001`;
    expect((await getJson(status, auth(first, 'key-0001'))).json).toEqual({
      result_code: 0,
      device_status: 1,
      result_message: 'ok',
    });
    now += 59_999;
    expect((await getJson(status, auth(first, 'key-0001'))).json.result_code).toBe(0);
    now += 1;
    expect((await getJson(status, auth(second, 'key-0001'))).json).toEqual({
      result_code: 1,
      result_message: 'token过期',
    });
  });
});

describe('device call checks', () => {
  test('headers, unknown devices and wrong keys', async () => {
    const s = await sim({
      devices: [
        { id: 'a', key: 'key-a' },
        { id: 'b', key: 'key-b', online: false },
      ],
    });
    const tok = await token(s);
    const url = (id: string) => `${s.url}/v1/devices/device_status/${id}`;
    expect((await getJson(url('a'), { device_key: 'key-a' })).json).toEqual({
      result_code: 1,
      result_message: 'token过期',
    });
    expect((await getJson(url('a'), { access_token: tok })).json).toEqual({
      result_code: 3,
      result_message: 'device_key不存在',
    });
    expect((await getJson(url('a'), auth(tok, 'key-b'))).json).toEqual({
      result_code: 3,
      result_message: 'device_key不存在',
    });
    expect((await getJson(url('zzz'), auth(tok, 'key-a'))).json).toEqual({
      result_code: 2,
      result_message: '设备不存在',
    });
    expect((await getJson(url('a'), auth('not-a-token', 'key-a'))).json.result_code).toBe(1);
    expect((await getJson(url('b'), auth(tok, 'key-b'))).json.device_status).toBe(0);
    s.setOnline('b', true);
    expect((await getJson(url('b'), auth(tok, 'key-b'))).json.device_status).toBe(1);
    expect(s.stats.violations).toEqual([
      'device_status: missing header access_token',
      'device_status: missing header device_key',
    ]);
    expect(s.stats.requests.device_status).toBe(7);
  });

  test('device ids with Chinese characters, spaces and "/" are decoded from the raw path', async () => {
    const ids = ['温度计 一号', 'floor/2 room 7', 'a%b+c'];
    const s = await sim({ devices: ids.map((id, i) => ({ id, key: `k-${i}` })) });
    const tok = await token(s);
    for (const [i, id] of ids.entries()) {
      const enc = encodeURIComponent(id);
      const st = await getJson(`${s.url}/v1/devices/device_status/${enc}`, auth(tok, `k-${i}`));
      expect(st.json).toEqual({ result_code: 0, device_status: 1, result_message: 'ok' });
      const h = await getJson(`${s.url}/v1/devices/${enc}/datapoints?first=1&limit=5`, auth(tok, `k-${i}`));
      expect(fromAnswer(h.json.data)).toEqual(s.rows(id).slice(0, 5));
    }
    // an unencoded "/" splits the path: no such endpoint
    const raw = await getJson(`${s.url}/v1/devices/floor/2%20room%207/datapoints`, auth(tok, 'k-1'));
    expect(raw.status).toBe(404);
    expect(s.stats.violations).toEqual(['unknown: no such endpoint: GET /v1/devices/floor/2%20room%207/datapoints']);
  });
});

describe('history', () => {
  test('pages cover exactly rows() without overlap, oldest first and newest first', async () => {
    const s = await sim();
    const tok = await token(s);
    const start = FROM + 3 * HOUR + 123;
    const end = FROM + 30 * HOUR;
    const expected = s.rows('dev-0001', start, end);
    expect(expected.length).toBeGreaterThan(1500);
    expect(expected.every((r, i) => i === 0 || r.time > expected[i - 1].time)).toBe(true);
    const q = { start: clock.format(start), end: clock.format(end), limit: '400' };
    const asc = await walk(s, tok, '/v1/devices/dev-0001/datapoints', { ...q, first: '1' });
    expect(asc.length).toBe(Math.ceil(expected.length / 400));
    expect(asc.flat()).toEqual(expected);
    const desc = await walk(s, tok, '/v1/devices/dev-0001/datapoints', { ...q, first: '0' });
    expect(desc.flat()).toEqual([...expected].reverse());
    // the default order is newest first, 100 rows
    const dflt = await getJson(`${s.url}/v1/devices/dev-0001/datapoints`, auth(tok, 'key-0001'));
    expect(fromAnswer(dflt.json.data)).toEqual(s.rows('dev-0001').reverse().slice(0, 100));
    expect(s.stats.largestLimit).toBe(400);
    expect(s.stats.violations).toEqual([]);
  });

  test('boundaryRepeat repeats exactly the last row of each page on the next', async () => {
    const s = await sim({ boundaryRepeat: true });
    const tok = await token(s);
    const expected = s.rows('dev-0001');
    const pages = await walk(s, tok, '/v1/devices/dev-0001/datapoints', { first: '1', limit: '1000' });
    expect(pages.length).toBeGreaterThan(2);
    for (let i = 1; i < pages.length; i++) expect(pages[i][0]).toEqual(pages[i - 1][pages[i - 1].length - 1]);
    const deduped = new Map(pages.flat().map((r) => [r.time, r]));
    expect([...deduped.values()]).toEqual(expected);
    expect(pages.flat().length).toBe(expected.length + pages.length - 1);
  });

  test('rows are sparse, deterministic per seed, and filtered by id', async () => {
    const a = await sim({ seed: 7 });
    const b = await sim({ seed: 7 });
    const c = await sim({ seed: 8 });
    const rows = a.rows('dev-0002');
    expect(b.rows('dev-0002')).toEqual(rows);
    expect(c.rows('dev-0002')).not.toEqual(rows);
    expect(rows.length).toBeGreaterThan(2700); // 2 days at 60 s, minus ~1% gaps
    expect(rows.length).toBeLessThan(2880);
    expect(rows.some((r) => Object.keys(r.values).length < 5)).toBe(true);
    expect(rows.some((r) => Object.keys(r.values).length === 5)).toBe(true);
    const types = new Set(rows.flatMap((r) => Object.values(r.values).map((v) => typeof v)));
    expect(types).toEqual(new Set(['number', 'string']));
    expect(new Set(rows.filter((r) => 'switch' in r.values).map((r) => r.values.switch))).toEqual(new Set([0, 1]));
    expect(rows.some((r) => typeof r.values.temp === 'number' && !Number.isInteger(r.values.temp))).toBe(true);
    // a sub-range is exactly the matching slice of the whole
    const mid = rows[1000].time;
    expect(a.rows('dev-0002', mid, mid + HOUR)).toEqual(rows.filter((r) => r.time >= mid && r.time < mid + HOUR));
    const tok = await token(a);
    const h = await getJson(
      `${a.url}/v1/devices/dev-0002/datapoints?id=mode,switch&first=1&limit=6000`,
      auth(tok, 'key-0002'),
    );
    const want = rows
      .filter((r) => 'mode' in r.values || 'switch' in r.values)
      .map((r) => ({
        time: r.time,
        values: Object.fromEntries(Object.entries(r.values).filter(([k]) => k === 'mode' || k === 'switch')),
      }));
    expect(fromAnswer(h.json.data)).toEqual(want);
    expect(h.json.cursor).toBeUndefined();
  });

  test('offline windows have no rows; added rows and a longer range are served', async () => {
    const off: [number, number] = [FROM + 5 * HOUR, FROM + 9 * HOUR];
    const s = await sim({ devices: [{ id: 'd', key: 'k', offline: [off], cadenceSec: 30 }] });
    const rows = s.rows('d');
    expect(rows.filter((r) => r.time >= off[0] && r.time < off[1])).toEqual([]);
    expect(rows.filter((r) => r.time >= off[0] - HOUR && r.time < off[0]).length).toBeGreaterThan(100);
    const pushed = { time: off[0] + 1234, values: { temp: 99.5, mode: 'service' } };
    s.addRows('d', [pushed]);
    expect(s.rows('d', off[0], off[1])).toEqual([pushed]);
    const before = s.rows('d').length;
    s.setRange(FROM, FROM + 3 * DAY);
    expect(s.rows('d').length).toBeGreaterThan(before + 2500);
    const tok = await token(s);
    const h = await getJson(
      `${s.url}/v1/devices/d/datapoints?first=1&start=${clock.format(off[0])}&end=${clock.format(off[1])}`,
      auth(tok, 'k'),
    );
    expect(h.json).toEqual({
      result_code: 0,
      result_message: 'ok',
      data: [{ timestamp: clock.format(pushed.time), temp: 99.5, mode: 'service' }],
    });
  });

  test.each([
    ['limit=0', 'limit must be a whole number 1-6000, got "0"'],
    ['limit=6001', 'limit must be a whole number 1-6000, got "6001"'],
    ['limit=abc', 'limit must be a whole number 1-6000, got "abc"'],
    ['first=2', 'first must be 0 or 1, got "2"'],
    ['start=2024-03-01T00-00-00-000', 'start and end must be given together, got only start'],
    ['end=2024-03-01T00-00-00-000', 'start and end must be given together, got only end'],
    [
      'start=2024-03-01T00:00:00.000&end=2024-03-02T00-00-00-000',
      'start is not a vendor timestamp YYYY-MM-DDTHH-mm-ss-SSS: "2024-03-01T00:00:00.000"',
    ],
    [
      'start=2024-03-02T00-00-00-000&end=2024-03-01T00-00-00-000',
      'start 2024-03-02T00-00-00-000 is after end 2024-03-01T00-00-00-000',
    ],
    ['cursor=12.5', 'cursor must be epoch milliseconds (a long), got "12.5"'],
  ])('%s is rejected with code 3 and recorded', async (query, why) => {
    const s = await sim();
    const tok = await token(s);
    const { json } = await getJson(`${s.url}/v1/devices/dev-0001/datapoints?${query}`, auth(tok, 'key-0001'));
    expect(json).toEqual({ result_code: 3, result_message: '查询参数非法' });
    expect(s.stats.violations).toEqual([`history: ${why}`]);
    expect(s.stats.historyRowsServed).toBe(0);
    if (query === 'limit=6001') expect(s.stats.largestLimit).toBe(6001);
  });

  test('limit 6000 serves 6000 rows; the last page has no cursor', async () => {
    const s = await sim({ to: FROM + 5 * DAY });
    const tok = await token(s);
    const expected = s.rows('dev-0003');
    const pages = await walk(s, tok, '/v1/devices/dev-0003/datapoints', { first: '1', limit: '6000' }, 'key-0003');
    expect(pages.map((p) => p.length)).toEqual([6000, expected.length - 6000]);
    expect(s.stats.historyRowsServed).toBe(expected.length);
  });

  test('currentDatapoints answers the latest value of each datapoint', async () => {
    const now = FROM + 20 * HOUR;
    const s = await sim({ now: () => now });
    const tok = await token(s);
    const rows = s.rows('dev-0001', FROM, now + 1);
    const latest: Record<string, unknown> = {};
    for (const r of rows) Object.assign(latest, r.values);
    const all = await getJson(`${s.url}/v1/devices/dev-0001/currentDatapoints?id=all`, auth(tok, 'key-0001'));
    const { timestamp, ...values } = all.json.data;
    expect(timestamp).toBe(` ${clock.format(rows[rows.length - 1].time)}`);
    expect(values).toEqual(latest);
    const some = await getJson(
      `${s.url}/v1/devices/dev-0001/currentDatapoints?id=mode,humidity`,
      auth(tok, 'key-0001'),
    );
    expect(some.json.data.mode).toBe(latest.mode);
    expect(some.json.data.humidity).toBe(latest.humidity);
    expect(Object.keys(some.json.data).sort()).toEqual(['humidity', 'mode', 'timestamp']);
    const none = await getJson(`${s.url}/v1/devices/dev-0001/currentDatapoints`, auth(tok, 'key-0001'));
    expect(none.json).toEqual({ result_code: 4, result_message: 'URL参数非法' });
    expect(s.stats.violations).toEqual(['current: missing query parameter id (a list of datapoints, or "all")']);
  });
});

/** A webhook receiver that verifies the handshake independently and records every request. */
function receiver(webhookToken: string) {
  const got: Array<{ method: string; url: string; body: string }> = [];
  let server: Server;
  let url = '';
  return {
    got,
    get url() {
      return url;
    },
    async start() {
      const port = await freePort();
      server = createServer((req, res) => {
        let body = '';
        req.on('data', (c) => (body += c));
        req.on('end', () => {
          got.push({ method: req.method ?? '', url: req.url ?? '', body });
          if (req.method === 'GET') {
            const q = new URL(req.url ?? '/', 'http://x').searchParams;
            const sha1 = createHash('sha1')
              .update(`${webhookToken}${q.get('nonce')}${q.get('timestamp')}`)
              .digest('hex');
            const expected = createHash('md5').update(sha1).digest('hex');
            if (q.get('signature') !== expected) return res.writeHead(403).end('bad signature');
            return res.writeHead(200, { 'content-type': 'text/plain' }).end(q.get('nonce'));
          }
          res.writeHead(200, { 'content-type': 'application/json' }).end('{"result_code":0,"result_message":"ok"}');
        });
      });
      await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
      url = `http://127.0.0.1:${port}/webhook`;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('pushes', () => {
  const rx = receiver('shared-webhook-token');
  beforeAll(() => rx.start());
  afterAll(() => rx.close());

  test('handshake signature is md5(sha1(token+nonce+timestamp)); a wrong token is refused', async () => {
    const s = await sim({ pushUrl: rx.url, webhookToken: 'shared-webhook-token' });
    expect(await s.handshake({ nonce: 'abc123', timestamp: 1700000000 })).toEqual({ status: 200, body: 'abc123' });
    const bad = await s.handshake({ token: 'other', nonce: 'n2' });
    expect(bad.status).toBe(403);
    const first = new URL(rx.got.find((g) => g.url.includes('abc123'))!.url, 'http://x').searchParams;
    expect(first.get('timestamp')).toBe('1700000000');
    expect(first.get('signature')).toMatch(/^[0-9a-f]{32}$/);
  });

  test('data and status pushes follow a handshake; msg_type alternates string and number', async () => {
    rx.got.length = 0;
    const s = await sim({ pushUrl: rx.url, webhookToken: 'shared-webhook-token' });
    const rows = s.rows('dev-0001').slice(0, 3);
    expect(await s.pushData('dev-0001', rows)).toEqual({
      status: 200,
      body: '{"result_code":0,"result_message":"ok"}',
    });
    expect((await s.pushStatus('dev-0002', 1)).status).toBe(200);
    expect(rx.got.map((g) => g.method)).toEqual(['GET', 'POST', 'POST']);
    const data = JSON.parse(rx.got[1].body);
    expect(data).toEqual({
      msg_type: '2',
      device_id: 'dev-0001',
      device_key: 'key-0001',
      data: rows.map((r) => ({ timestamp: clock.format(r.time), ...r.values })),
    });
    const status = JSON.parse(rx.got[2].body);
    expect(status).toMatchObject({ msg_type: 1, device_id: 'dev-0002', device_key: 'key-0002', device_status: 1 });
    expect(status.device_sn).toMatch(/^SN[0-9A-F]{8}$/);
    expect(s.stats.pushes.map((p) => [p.msgType, p.status])).toEqual([
      [2, 200],
      [1, 200],
    ]);
  });

  test('no push without a successful handshake', async () => {
    rx.got.length = 0;
    const s = await sim({ pushUrl: rx.url, webhookToken: 'wrong-token' });
    await expect(s.pushStatus('dev-0001', 0)).rejects.toThrow(/handshake .* failed \(HTTP 403/);
    expect(rx.got.map((g) => g.method)).toEqual(['GET']);
    expect(s.stats.pushes).toEqual([]);
  });

  test('device_setting answers a message_id and pushes the result with it', async () => {
    rx.got.length = 0;
    const results: Record<string, 0 | 1 | 'never'> = { 'dev-0001': 0, 'dev-0002': 1, 'dev-0003': 'never' };
    const s = await sim({
      pushUrl: rx.url,
      webhookToken: 'shared-webhook-token',
      settingDelayMs: 20,
      settingResult: (id) => results[id],
    });
    const tok = await token(s);
    const ids: string[] = [];
    for (const n of ['1', '2', '3']) {
      const res = await fetch(`${s.url}/v1/devices/dev-000${n}/device_setting`, {
        method: 'POST',
        headers: { ...auth(tok, `key-000${n}`), 'content-type': 'application/json' },
        body: JSON.stringify({ temp: 25, switch: 1 }),
      });
      const json = await res.json();
      expect(json).toMatchObject({ result_code: 0, result_message: 'ok' });
      expect(json.message_id).toMatch(/^[0-9a-f]{16}$/);
      ids.push(json.message_id);
    }
    await until('two setting results pushed', async () => s.stats.pushes.length >= 2, {
      timeoutMs: 5_000,
      intervalMs: 25,
    });
    const bodies = rx.got.filter((g) => g.method === 'POST').map((g) => JSON.parse(g.body));
    const byId = Object.fromEntries(bodies.map((b) => [b.message_id, b]));
    expect(Number(byId[ids[0]].msg_type)).toBe(3);
    expect(byId[ids[0]]).toMatchObject({ device_id: 'dev-0001' });
    expect(Number(byId[ids[0]].set_result)).toBe(0);
    expect(Number(byId[ids[1]].set_result)).toBe(1);
    expect(byId[ids[2]]).toBeUndefined();
    expect(s.stats.settings.map((x) => [x.deviceId, x.messageId, x.settings])).toEqual([
      ['dev-0001', ids[0], { temp: 25, switch: 1 }],
      ['dev-0002', ids[1], { temp: 25, switch: 1 }],
      ['dev-0003', ids[2], { temp: 25, switch: 1 }],
    ]);
  });

  test('livePushMs pushes newly generated rows as the clock moves, exactly as history serves them', async () => {
    rx.got.length = 0;
    let now = FROM + DAY;
    const s = await sim({
      devices: [{ id: 'live', key: 'lk', cadenceSec: 10 }],
      to: now,
      now: () => now,
      followClock: true,
      livePushMs: 10,
      pushUrl: rx.url,
      webhookToken: 'shared-webhook-token',
    });
    const start = now;
    now += 10 * 60_000;
    await until('a data push', async () => s.stats.pushes.length > 0, { timeoutMs: 4_000, intervalMs: 10 });
    const posted = rx.got.filter((g) => g.method === 'POST').map((g) => JSON.parse(g.body));
    expect(posted.length).toBe(1);
    expect(Number(posted[0].msg_type)).toBe(2);
    expect(posted[0].device_id).toBe('live');
    const want = s.rows('live', start, now);
    expect(want.length).toBeGreaterThan(50);
    expect(fromAnswer(posted[0].data)).toEqual(want);
    // history now reaches the moved clock too
    expect(s.rows('live').at(-1)).toEqual(want.at(-1));
  });

  test('setting an offline device is code 3; a body that is not JSON is code 5', async () => {
    const s = await sim({
      devices: [
        { id: 'on', key: 'k1' },
        { id: 'off', key: 'k2', online: false },
      ],
    });
    const tok = await token(s);
    const post = (id: string, key: string, body: string) =>
      fetch(`${s.url}/v1/devices/${id}/device_setting`, { method: 'POST', headers: auth(tok, key), body }).then((r) =>
        r.json(),
      );
    expect(await post('off', 'k2', '{"temp":1}')).toEqual({ result_code: 3, result_message: '设备不在线' });
    expect(await post('on', 'k1', '{temp:1')).toEqual({ result_code: 5, result_message: 'BODY参数非法' });
    expect(await post('on', 'k1', '[]')).toEqual({ result_code: 5, result_message: 'BODY参数非法' });
    expect(s.stats.violations).toEqual([
      'setting: body is not JSON: "{temp:1"',
      'setting: body must be a non-empty JSON object of settings',
    ]);
    expect(s.stats.settings).toEqual([]);
  });
});

describe('faults', () => {
  test('revokeTokens makes every issued token answer code 1; a new one works', async () => {
    const s = await sim();
    const tok = await token(s);
    const url = `${s.url}/v1/devices/device_status/dev-0001`;
    expect((await getJson(url, auth(tok, 'key-0001'))).json.result_code).toBe(0);
    s.faults.revokeTokens();
    expect((await getJson(url, auth(tok, 'key-0001'))).json).toEqual({ result_code: 1, result_message: 'token过期' });
    const fresh = await token(s);
    expect((await getJson(url, auth(fresh, 'key-0001'))).json.result_code).toBe(0);
  });

  test('expireTokensEarly shortens tokens issued afterwards', async () => {
    let now = FROM;
    const s = await sim({ now: () => now });
    s.faults.expireTokensEarly(1000);
    const tok = await token(s);
    const url = `${s.url}/v1/devices/device_status/dev-0001`;
    now += 999;
    expect((await getJson(url, auth(tok, 'key-0001'))).json.result_code).toBe(0);
    now += 1;
    expect((await getJson(url, auth(tok, 'key-0001'))).json.result_code).toBe(1);
    s.faults.reset();
    const normal = await token(s);
    now += 7_000_000;
    expect((await getJson(url, auth(normal, 'key-0001'))).json.result_code).toBe(0);
  });

  test('http5xxRate 1 answers 503 to everything; 0.5 to about half, reproducibly', async () => {
    const s = await sim();
    const tok = await token(s);
    s.faults.http5xxRate = 1;
    const answers = await Promise.all([
      fetch(`${s.url}/v1/platform/token?platform_key=${PK}&secret_key=${SK}`),
      fetch(`${s.url}/v1/devices/device_status/dev-0001`, { headers: auth(tok, 'key-0001') }),
      fetch(`${s.url}/v1/devices/dev-0001/datapoints`, { headers: auth(tok, 'key-0001') }),
    ]);
    expect(answers.map((a) => a.status)).toEqual([503, 503, 503]);
    await Promise.all(answers.map((a) => a.text()));
    expect(s.stats.tokenCalls).toBe(2); // a 503'd token call still counts
    const pattern = async (x: Simulator) => {
      x.faults.http5xxRate = 0.5;
      const out: number[] = [];
      for (let i = 0; i < 40; i++) out.push((await fetch(`${x.url}/v1/devices/device_status/dev-0001`)).status);
      return out;
    };
    const p1 = await pattern(await sim({ seed: 3 }));
    const p2 = await pattern(await sim({ seed: 3 }));
    expect(p1).toEqual(p2);
    expect(p1.filter((c) => c === 503).length).toBeGreaterThan(8);
    expect(p1.filter((c) => c === 503).length).toBeLessThan(32);
  });

  test('codeStorm answers the code to the next requests of an endpoint, then recovers', async () => {
    const s = await sim();
    const tok = await token(s);
    s.faults.codeStorm(4, 2, 'history');
    const hist = `${s.url}/v1/devices/dev-0001/datapoints?limit=1`;
    const status = `${s.url}/v1/devices/device_status/dev-0001`;
    expect((await getJson(status, auth(tok, 'key-0001'))).json.result_code).toBe(0);
    expect((await getJson(hist, auth(tok, 'key-0001'))).json).toEqual({
      result_code: 4,
      result_message: 'URL参数非法',
    });
    expect((await getJson(hist, auth(tok, 'key-0001'))).json.result_code).toBe(4);
    const ok = await getJson(hist, auth(tok, 'key-0001'));
    expect(ok.json.result_code).toBe(0);
    expect(ok.json.data.length).toBe(1);
    s.faults.codeStorm(1, 1);
    expect((await getJson(status, auth(tok, 'key-0001'))).json).toEqual({
      result_code: 1,
      result_message: 'token过期',
    });
    expect((await getJson(status, auth(tok, 'key-0001'))).json.result_code).toBe(0);
    expect(() => s.faults.codeStorm(1, 1, 'nope')).toThrow(/unknown endpoint "nope"/);
  });
});
