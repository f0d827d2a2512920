import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { bodyOfLetter } from '../../src/push/raw-body.js';
import { deviceIdOf } from '../../src/push/push-schema.js';
import { startStack, type Stack } from './push-stack.js';
import { mulberry32 } from '../../src/simulator/prng.js';

/**
 * A flood of malformed pushes: every one must be answered 4xx with a non-zero result_code, kept
 * as a dead letter (raw, exactly as sent), and none may reach InfluxDB — in particular no point
 * under a device id or field name that would need mangling. Valid pushes in between still land.
 */

let s: Stack;
beforeAll(async () => {
  // the raw cap is raised so that every body here is kept whole (the cap has its own test in webhook-abuse)
  s = await startStack({ webhook: { bodyLimit: 5 * 1024 * 1024 }, server: { maxRawBytes: 2 * 1024 * 1024 } });
});
afterAll(async () => {
  await s?.close();
});

/** a deterministic stream, so a failure can be reproduced */
const prng = mulberry32;

const TS = '2017-02-13T12-00-00-000';
// ids nothing can store (`#` becomes the body's number); spaces, commas, quotes and the like are accepted
const BAD_IDS = [
  'dev\n#',
  'dev\r\n#',
  'dev\t#',
  'd'.repeat(200) + '#',
  'x\u0000y#',
  'dev#\\',
  'lone\ud800#',
  '#\udfff',
];
const BAD_TIMES = [
  '2017-13-01T00-00-00-000',
  '2017-02-30T12-00-00-000',
  '2017-02-13 25:00:00',
  '2017-02-13T25-00-00-000',
  '',
  'now',
  '2017-02-13T12-00-00',
  '13/02/2017',
  '2017-02-13T12-00-00-000Z',
  '+2017-02-13T12-00-00-000',
];
const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];

function goodRow(r: () => number, i: number) {
  return { timestamp: TS, temp: Math.round(r() * 1000) / 10, n: i };
}

/** One malformed body (as text or bytes) of a random kind; `i` makes every body unique. */
function malformed(r: () => number, i: number): string | Buffer {
  const kind = i % 12;
  switch (kind) {
    case 0: {
      // invalid JSON: truncated, single quotes, trailing commas, garbage
      const good = JSON.stringify({ msg_type: 2, device_id: `dev-${i}`, data: [goodRow(r, i)] });
      return pick(r, [
        good.slice(0, 5 + Math.floor(r() * (good.length - 6))),
        `{'msg_type': 1, 'i': ${i}}`,
        `{"msg_type":1,"i":${i},}`,
        `garbage ${i} ${r()}`,
        `{"msg_type":1 "i":${i}}`,
      ]);
    }
    case 1:
      // JSON that is not an object
      return JSON.stringify(
        pick(
          r,
          [i + 0.5, `string ${i}`, [i, 'a'], true, null].map((v) => (v === null || v === true ? [v, i] : v)),
        ),
      );
    case 2:
      return JSON.stringify({
        msg_type: pick(r, [0, 4, 9, -1, 1.5, 'x', 'one', null, [], {}, '2 ', true]),
        device_id: `dev-${i}`,
        device_status: 0,
      });
    case 3: {
      // a required field missing
      const bodies = [
        { msg_type: 1, device_status: 0, i },
        { msg_type: '1', device_id: `dev-${i}` },
        { msg_type: 2, device_id: `dev-${i}` },
        { msg_type: 2, data: [goodRow(r, i)] },
        { msg_type: 3, device_id: `dev-${i}`, set_result: 0 },
        { msg_type: 3, message_id: `m${i}`, set_result: 0 },
        { msg_type: 3, message_id: `m${i}`, device_id: `dev-${i}` },
        { device_id: `dev-${i}`, data: [goodRow(r, i)] },
      ];
      return JSON.stringify(pick(r, bodies));
    }
    case 4: {
      // wrong types
      const bodies = [
        { msg_type: 1, device_id: `dev-${i}`, device_status: pick(r, ['online', 2, -1, true, null, 0.5]) },
        { msg_type: 2, device_id: `dev-${i}`, data: pick(r, ['rows', 5, { timestamp: TS }, null]) },
        { msg_type: 2, device_id: { id: i }, data: [] },
        { msg_type: 2, device_id: [`dev-${i}`], data: [] },
        { msg_type: 2, device_id: i + 0.25, data: [] },
        // no row can be read (a push with one readable row is taken, its bad rows kept as dead letters)
        { msg_type: 2, device_id: `dev-${i}`, data: [pick(r, [7, 'row', null, [TS]]), { temp: i }] },
        { msg_type: 3, message_id: { m: i }, device_id: `dev-${i}`, set_result: 0 },
        { msg_type: 3, message_id: `m${i}`, device_id: `dev-${i}`, set_result: pick(r, [2, 'ok', null, true]) },
        { msg_type: 1, device_id: `dev-${i}`, device_status: 0, device_key: pick(r, [{ k: 1 }, [1], 0.5, true]) },
      ];
      return JSON.stringify(pick(r, bodies));
    }
    case 5: {
      // a bad timestamp on every row
      const data = Array.from({ length: 1 + Math.floor(r() * 10) }, (_, k) => ({
        ...goodRow(r, i * 100 + k),
        timestamp: pick(r, BAD_TIMES),
      }));
      return JSON.stringify({ msg_type: pick(r, [2, '2']), device_id: `dev-${i}`, data });
    }
    case 6:
    case 7: {
      // device ids that would need escaping (or cannot be carried) in a series key
      const id = r() < 0.05 ? '' : pick(r, BAD_IDS).replace('#', String(i));
      const body = pick(r, [
        { msg_type: 2, device_id: id, device_key: 'k', data: [goodRow(r, i)] },
        { msg_type: 1, device_id: id, device_key: 'k', device_status: 0 },
        { msg_type: 3, device_id: id, message_id: `m${i}`, set_result: 0 },
      ]);
      return JSON.stringify(body);
    }
    case 8: {
      // text that is not well-formed Unicode (a lone surrogate, as JSON escapes it) in every row
      const lone = pick(r, ['\ud800', '\udbff', '\udc00', 'a\udfffb']);
      const row = r() < 0.5 ? { ...goodRow(r, i), [`n${lone}`]: 1 } : { ...goodRow(r, i), s: `${lone}${i}` };
      return JSON.stringify({ msg_type: 2, device_id: `dev-${i}`, data: [row] });
    }
    case 9: {
      // "ciphertext": base64, binary, an encrypted envelope
      const bytes = Buffer.from(Array.from({ length: 24 + (i % 40) }, () => Math.floor(r() * 256)));
      const choice = Math.floor(r() * 3);
      if (choice === 0) return `${bytes.toString('base64')}${i.toString(36).replace(/[^A-Za-z0-9]/g, 'A')}`;
      if (choice === 1) return Buffer.concat([Buffer.from([0xff, 0xfe]), bytes, Buffer.from(String(i))]);
      return JSON.stringify({ encrypt: bytes.toString('base64'), i });
    }
    case 10: {
      // huge arrays of unreadable rows (kept: they are below the body limit)
      if (i % 48 !== 10)
        return JSON.stringify({
          msg_type: 2,
          device_id: `dev-${i}`,
          data: [{ timestamp: `${TS}Z`, temp: 'x', bad: [i] }],
        });
      const n = 5000 + Math.floor(r() * 20_000);
      const data = Array.from({ length: n }, (_, k) => ({ timestamp: k % 2 ? '' : true, v: k }));
      return JSON.stringify({ msg_type: 2, device_id: `dev-${i}`, data });
    }
    default:
      // empty and whitespace bodies, and bodies of only a BOM
      return pick(r, ['', ' ', '\n', '\t\r\n']) + (r() < 0.5 ? '' : `\ufeff{"msg_type":2,"i":${i}}`);
  }
}

async function post(
  url: string,
  body: string | Buffer,
): Promise<{ status: number; json: { result_code?: number; result_message?: string } }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : new Uint8Array(body),
  });
  const text = await res.text();
  let json = {};
  try {
    json = JSON.parse(text);
  } catch {
    json = { result_message: text };
  }
  return { status: res.status, json };
}

describe('malformed pushes', () => {
  test('1,200 malformed bodies: all answered 4xx, all kept, nothing written; valid pushes in between land', async () => {
    const r = prng(20261126);
    const bodies: Array<string | Buffer> = [];
    const seen = new Set<string>();
    for (let i = 0; bodies.length < 1200; i++) {
      const b = malformed(r, i);
      const key = Buffer.isBuffer(b) ? `b:${b.toString('base64')}` : `s:${b}`;
      if (seen.has(key)) continue;
      seen.add(key);
      bodies.push(b);
    }
    const answers: Array<{ status: number; json: { result_code?: number; result_message?: string } }> = new Array(
      bodies.length,
    );
    const valid: string[] = [];
    let next = 0;
    const lane = async () => {
      for (;;) {
        const i = next++;
        if (i >= bodies.length) return;
        answers[i] = await post(s.url, bodies[i]);
        if (i % 100 === 0) {
          const id = `valid-${i}`;
          valid.push(id);
          const ok = await post(
            s.url,
            JSON.stringify({ msg_type: 2, device_id: id, data: [{ timestamp: TS, temp: i }] }),
          );
          expect(ok).toEqual({ status: 200, json: { result_code: 0, result_message: 'ok' } });
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, lane));

    const wrong = answers
      .map((a, i) => ({ i, body: String(bodies[i]).slice(0, 300), ...a }))
      .filter((a) => a.status < 400 || a.status >= 500 || !a.json.result_code);
    expect(wrong).toEqual([]);
    // every answer names a problem
    expect(answers.every((a) => typeof a.json.result_message === 'string' && a.json.result_message.length > 5)).toBe(
      true,
    );

    // every body kept exactly as sent
    const letters = await s.deadLetters.list();
    expect(letters.length).toBe(bodies.length);
    const kept = new Set(letters.map((l) => bodyOfLetter(l.raw).toString('base64')));
    const sent = new Set(bodies.map((b) => (Buffer.isBuffer(b) ? b : Buffer.from(b, 'utf8')).toString('base64')));
    expect(kept).toEqual(sent);
    expect(letters.every((l) => l.kind === 'push' && l.source === 'webhook' && l.reason.length > 5)).toBe(true);
    // a device id kept with a letter is never a mangled one
    for (const l of letters) if (l.deviceId !== undefined) expect(deviceIdOf(l.deviceId)).toBe(l.deviceId);

    // only the valid pushes reached InfluxDB, under their exact ids
    const points = await s.until(
      'valid points',
      () => s.rows('SELECT * FROM device_data'),
      (rows) => rows.length === valid.length,
    );
    expect(points.map((p) => p.device_id).sort()).toEqual([...valid].sort());
    expect(points.every((p) => p.temp === Number(String(p.device_id).slice(6)))).toBe(true);
    const series = await s.rows('SHOW SERIES');
    expect(series.map((x) => x.key).sort()).toEqual(valid.map((id) => `device_data,device_id=${id}`).sort());
    const measurements = await s.rows('SHOW MEASUREMENTS');
    expect(measurements.map((m) => m.name)).toEqual(['device_data']);
  });

  test('a body over the size limit gets 413, and the server keeps serving', async () => {
    const big = JSON.stringify({
      msg_type: 2,
      device_id: 'dev-big',
      data: Array.from({ length: 400_000 }, (_, k) => ({ timestamp: TS, v: k })),
    });
    expect(big.length).toBeGreaterThan(5 * 1024 * 1024);
    const a = await post(s.url, big);
    expect(a.status).toBe(413);
    expect(a.json.result_code).toBe(5);
    const ok = await post(s.url, JSON.stringify({ msg_type: 1, device_id: 'dev-after', device_status: 1 }));
    expect(ok.status).toBe(200);
    const rows = await s.until(
      'status point',
      () => s.rows(`SELECT * FROM device_status WHERE device_id = 'dev-after'`),
      (x) => x.length === 1,
    );
    expect(rows[0]).toMatchObject({ online: false, raw_status: 1, source: 'push' });
  });
});
