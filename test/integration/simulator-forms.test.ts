/**
 * The simulator's timestamp forms and unordered pages, as served over HTTP: history rows,
 * currentDatapoints and data pushes carry the form `timestampForm` says (read back to the row's
 * millisecond by the client's own parser), and `history.order: 'unordered'` serves the rows a page
 * holds in an order that is neither oldest nor newest first. The push receiver is a tiny
 * node:http server; nothing is mocked.
 */
import { createServer } from 'node:http';
import { afterEach, describe, expect, test } from 'vitest';
import {
  startSimulator,
  TIMESTAMP_FORMS,
  type Simulator,
  type SimulatorOptions,
  type TimestampForm,
} from '../../src/simulator/index.js';
import { parsePlatformTime } from '../../src/platform/timestamp.js';
import { pageOrder } from '../../src/platform/page-order.js';
import { freePort } from '../helpers/services.js';

const PK = 'forms-platform-key';
const SK = 'forms-secret-key';
const HOUR = 3_600_000;
const FROM = Date.UTC(2026, 3, 1);
const TO = FROM + 6 * HOUR;

const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

async function sim(options: Partial<SimulatorOptions>): Promise<Simulator> {
  const s = await startSimulator({
    platformKey: PK,
    secretKey: SK,
    devices: 1,
    from: FROM,
    to: TO,
    seed: 9,
    ...options,
  });
  open.push(s);
  return s;
}

async function get(s: Simulator, path: string): Promise<Record<string, any>> {
  const tok = (await (await fetch(`${s.url}/v1/platform/token?platform_key=${PK}&secret_key=${SK}`)).json()) as {
    access_token: string;
  };
  const res = await fetch(`${s.url}${path}`, { headers: { access_token: tok.access_token, device_key: 'key-0001' } });
  return (await res.json()) as Record<string, any>;
}

/** A receiver that records the bodies pushed to it. */
async function receiver(): Promise<{ url: string; bodies: string[] }> {
  const bodies: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      bodies.push(body);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"result_code":0,"result_message":"ok"}');
    });
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  open.push({ close: () => new Promise<void>((r) => server.close(() => r())) });
  return { url: `http://127.0.0.1:${port}/webhook`, bodies };
}

const SHAPES: Record<TimestampForm, (t: unknown) => boolean> = {
  documented: (t) => typeof t === 'string' && /^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}$/.test(t),
  'epoch-ms': (t) => Number.isSafeInteger(t) && (t as number) > 1e12,
  'epoch-s': (t) => typeof t === 'number' && t > 1e9 && t < 1e11,
  'epoch-ms-string': (t) => typeof t === 'string' && /^\d{13}$/.test(t),
  'iso-z': (t) => typeof t === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(t),
  'iso-offset': (t) => typeof t === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00$/.test(t),
  'iso-local': (t) => typeof t === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$/.test(t),
};

describe('simulator timestamp forms', () => {
  test.each(TIMESTAMP_FORMS)(
    "%s: history rows, currentDatapoints and pushes carry it, each read back to the row's millisecond",
    async (form) => {
      const rx = await receiver();
      const s = await sim({ timestampForm: form, pushUrl: rx.url, now: () => TO + HOUR });
      const rows = s.rows('dev-0001');
      const page = await get(s, '/v1/devices/dev-0001/datapoints?first=1&limit=50');
      expect(page.result_code).toBe(0);
      expect(page.data).toHaveLength(50);
      expect(page.data.filter((r: { timestamp: unknown }) => !SHAPES[form](r.timestamp))).toEqual([]);
      expect(page.data.map((r: { timestamp: unknown }) => parsePlatformTime(r.timestamp, 'Asia/Shanghai'))).toEqual(
        rows.slice(0, 50).map((r) => r.time),
      );

      const current = await get(s, '/v1/devices/dev-0001/currentDatapoints?id=all');
      const ts = current.data.timestamp;
      expect(SHAPES[form](form === 'documented' ? ts.trim() : ts)).toBe(true);
      expect(parsePlatformTime(ts, 'Asia/Shanghai')).toBe(rows[rows.length - 1].time);

      expect((await s.pushData('dev-0001', rows.slice(0, 3))).status).toBe(200);
      const pushed = JSON.parse(rx.bodies[0]) as { data: Array<{ timestamp: unknown }> };
      expect(pushed.data.map((r) => SHAPES[form](r.timestamp))).toEqual([true, true, true]);
      expect(pushed.data.map((r) => parsePlatformTime(r.timestamp, 'Asia/Shanghai'))).toEqual(
        rows.slice(0, 3).map((r) => r.time),
      );
    },
  );

  test('an unknown form is refused, naming the choices', async () => {
    await expect(sim({ timestampForm: 'unix' as TimestampForm })).rejects.toThrow(
      'simulator: timestampForm must be one of documented, epoch-ms, epoch-s, epoch-ms-string, iso-z, iso-offset, iso-local, got "unix"',
    );
  });
});

describe('simulator history.order unordered', () => {
  test('each page holds the rows asked for, in no time order, the same way every time', async () => {
    const s = await sim({ history: { order: 'unordered' } });
    const rows = s.rows('dev-0001');
    const page = await get(s, '/v1/devices/dev-0001/datapoints?first=1&limit=40');
    const times = page.data.map((r: { timestamp: string }) => parsePlatformTime(r.timestamp, 'Asia/Shanghai'));
    // the oldest 40 rows, shuffled: sorted back they are exactly what the platform holds
    expect([...times].sort((a, b) => a - b)).toEqual(rows.slice(0, 40).map((r) => r.time));
    expect(pageOrder(times.map((time: number) => ({ time, values: {} })))).toBe('none');
    // the cursor still points at the next row not yet served
    expect(page.cursor).toBe(rows[40].time);
    const again = await get(s, '/v1/devices/dev-0001/datapoints?first=1&limit=40');
    expect(again.data).toEqual(page.data);
  });
});
