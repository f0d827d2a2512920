import { describe, expect, test } from 'vitest';
import { parsePlatformTime } from '../../src/platform/timestamp.js';
import { NotPlaintextError, PushValidationError, readPushBody, validatePush } from '../../src/push/push-schema.js';
import { errorToHttp, RESULT_CODE } from '../../src/push/errors-to-http.js';
import type { DataPush } from '../../src/base/jobs.js';
import { SignatureError } from '../../src/push/signature.js';
import { EnqueueError } from '../../src/push/ingest-producer.js';
import { UnknownDeviceError } from '../../src/base/failure.js';

const opts = { parseTime: (raw: string | number) => parsePlatformTime(raw, 'Asia/Shanghai') };
const TS = '2017-02-13T12-00-00-000';

function refusal(value: unknown): string {
  try {
    validatePush(value, opts);
  } catch (err) {
    expect(err).toBeInstanceOf(PushValidationError);
    return (err as Error).message;
  }
  throw new Error('accepted');
}

describe('validatePush accepts the vendor shapes', () => {
  test.each([
    [
      { msg_type: '1', device_id: 'd1', device_key: 'k1', device_sn: 'sn1', device_status: 0 },
      { msgType: 1, body: { device_id: 'd1', device_key: 'k1', device_sn: 'sn1', device_status: 0 } },
    ],
    [
      { msg_type: 1, device_id: 'd1', device_status: '1' },
      { msgType: 1, body: { device_id: 'd1', device_status: 1 } },
    ],
    [
      { msg_type: '2', device_id: 'd1', device_key: 'k1', data: [{ timestamp: TS, value1: 1.5, s: 'x', b: true }] },
      {
        msgType: 2,
        body: { device_id: 'd1', device_key: 'k1', data: [{ timestamp: TS, value1: 1.5, s: 'x', b: true }] },
      },
    ],
    [
      { msg_type: 2, device_id: 12345, data: [] },
      { msgType: 2, body: { device_id: '12345', data: [] } },
    ],
    [
      { msg_type: 2, device_id: 'd1', data: [{ timestamp: ` ${TS}`, a: 1 }] },
      { msgType: 2, body: { device_id: 'd1', data: [{ timestamp: ` ${TS}`, a: 1 }] } },
    ],
    [
      { msg_type: 3, message_id: 'm-1', device_id: 'd1', set_result: 0 },
      { msgType: 3, body: { message_id: 'm-1', device_id: 'd1', set_result: 0 } },
    ],
    [
      { msg_type: '3', message_id: 77, device_id: 'd1', set_result: '1' },
      { msgType: 3, body: { message_id: '77', device_id: 'd1', set_result: 1 } },
    ],
  ])('%j', (input, expected) => {
    expect(validatePush(input, opts)).toEqual(expected);
  });
});

describe('validatePush names what is wrong', () => {
  test.each([
    [null, '"body" must be a JSON object, got null'],
    [[1, 2], '"body" must be a JSON object, got an array'],
    [{ device_id: 'd1' }, '"msg_type" must be one of 1, 2, 3 (number or string), got nothing (missing)'],
    [{ msg_type: 4, device_id: 'd1' }, '"msg_type" must be one of 1, 2, 3 (number or string), got the number 4'],
    [
      { msg_type: 'two', device_id: 'd1' },
      '"msg_type" must be one of 1, 2, 3 (number or string), got the string "two"',
    ],
    [{ msg_type: 1, device_status: 0 }, '"device_id" must be a non-empty string, got nothing (missing)'],
    [
      { msg_type: 1, device_id: 'd1', device_status: 2 },
      '"device_status" must be one of 0, 1 (number or string), got the number 2',
    ],
    [
      { msg_type: 1, device_id: 'd1', device_status: 0, device_key: {} },
      '"device_key" must be a string, got an object',
    ],
    [{ msg_type: 2, device_id: 'd1' }, '"data" must be an array of rows, got nothing (missing)'],
    [{ msg_type: 2, device_id: 'd1', data: {} }, '"data" must be an array of rows, got an object'],
    [
      { msg_type: 2, device_id: 'd1', data: [{ a: 1 }] },
      '"data[0].timestamp" must be a string such as "2017-02-13T12-00-00-000" or epoch milliseconds, got nothing (missing)',
    ],
    // every row unreadable: nothing of the push can be stored
    [{ msg_type: 2, device_id: 'd1', data: [5] }, '"data[0]" must be an object, got the number 5'],
    [
      { msg_type: 2, device_id: 'd1', data: [{ timestamp: '2017-02-30T00-00-00-000', a: 2 }] },
      '"data[0].timestamp" "2017-02-30T00-00-00-000" cannot be read',
    ],
    [
      { msg_type: 2, device_id: 'd1', data: [null, { timestamp: TS, a: '\ud800' }] },
      'no row can be read: "data[0]" must be an object, got null (and 1 more)',
    ],
    [{ msg_type: 2, device_id: '\udc00', data: [] }, '"device_id" "\\udc00" is not well-formed Unicode'],
    [{ msg_type: 1, device_id: 'a\ud800b', device_status: 0 }, '"device_id" "a\\ud800b" is not well-formed Unicode'],
    [
      { msg_type: 2, device_id: 'd1', data: [{ timestamp: true, a: 1 }] },
      '"data[0].timestamp" must be a string such as "2017-02-13T12-00-00-000" or epoch milliseconds, got',
    ],
    [{ msg_type: 2, device_id: 'd1', data: [{ timestamp: 1486958400000.5, a: 1 }] }, 'not whole milliseconds'],
    [{ msg_type: 3, device_id: 'd1', set_result: 0 }, '"message_id" must be a non-empty string, got nothing (missing)'],
    [
      { msg_type: 3, device_id: 'd1', message_id: 'm', set_result: 'ok' },
      '"set_result" must be one of 0, 1 (number or string), got the string "ok"',
    ],
  ])('%j', (input, message) => {
    expect(refusal(input)).toContain(message);
  });

  test.each(['d\n1', 'd\t1', 'd\u00001', 'ends\\', 'x'.repeat(129), '', 'lone \ud800'])(
    'device id %j is refused',
    (id) => {
      expect(refusal({ msg_type: 1, device_id: id, device_status: 0 })).toMatch(/device_id/);
    },
  );

  test.each(['d 1', 'd,1', 'd"1', "d'1", 'd=1', 'd\\1', 'a\\ b', ' d1', '温度计 一号', 'emoji 😀'])(
    'device id %j is accepted as it is (the writer escapes it)',
    (id) => {
      expect(validatePush({ msg_type: 1, device_id: id, device_status: 0 }, opts).body.device_id).toBe(id);
    },
  );
});

describe('validatePush is as liberal as the pull path', () => {
  test('null, objects, arrays and any name are accepted: the writer leaves out, stores as JSON or sets aside', () => {
    const row = {
      timestamp: TS,
      a: null,
      o: { x: 1 },
      l: [1, 'b'],
      time: 1,
      'a b,c="d"\\': 2,
      温度: 3,
      constructor: 4,
    };
    // as JSON.parse reads it: "__proto__" becomes an own property
    const input = JSON.parse(
      JSON.stringify({ msg_type: 2, device_id: 'd1', data: [row] }).replace('"constructor"', '"__proto__"'),
    );
    expect(Object.keys(input.data[0])).toContain('__proto__');
    const push = validatePush(input, opts);
    expect(push.msgType).toBe(2);
    expect(push.body).toEqual({ device_id: 'd1', data: input.data });
    expect('unreadable' in push.body).toBe(false);
  });

  test('unreadable rows are set aside with their reason and raw content; the readable ones are kept in order', () => {
    const rows = [
      { timestamp: TS, a: 1 },
      7,
      { timestamp: '2017-02-30T00-00-00-000', a: 2 },
      { timestamp: TS, a: 3 },
      { a: 4 },
      { timestamp: TS, s: 'x\udfffy' },
      { timestamp: TS, ['n\ud800']: 5 },
      { timestamp: TS, a: 6 },
    ];
    const push = validatePush({ msg_type: 2, device_id: 'd1', data: rows }, opts);
    expect(push.msgType).toBe(2);
    const body = push.body as DataPush;
    expect(body.data).toEqual([rows[0], rows[3], rows[7]]);
    expect(body.unreadable).toEqual([
      { reason: '"data[1]" must be an object, got the number 7', raw: 7 },
      { reason: expect.stringContaining('"data[2].timestamp" "2017-02-30T00-00-00-000" cannot be read'), raw: rows[2] },
      {
        reason:
          '"data[4].timestamp" must be a string such as "2017-02-13T12-00-00-000" or epoch milliseconds, got nothing (missing)',
        raw: rows[4],
      },
      { reason: '"data[5].s" "x\\udfffy" is not well-formed Unicode (a lone UTF-16 surrogate)', raw: rows[5] },
      {
        reason: 'data[6]: datapoint name "n\\ud800" is not well-formed Unicode (a lone UTF-16 surrogate)',
        raw: rows[6],
      },
    ]);
  });

  test('a number too large for a double (1e400) is set aside as not a finite number, not as null', () => {
    const text =
      '{"msg_type":2,"device_id":"d1","data":[{"timestamp":"2017-02-13T12-00-00-000","a":1e400},{"timestamp":"2017-02-13T12-00-00-000","a":1}]}';
    const body = validatePush(readPushBody(Buffer.from(text)), opts).body as DataPush;
    expect(body.data).toEqual([{ timestamp: TS, a: 1 }]);
    expect(body.unreadable?.map((u) => u.reason)).toEqual([
      '"data[0].a" is not a finite number (Infinity: too large for a double, such as 1e400)',
    ]);
    expect(refusal(JSON.parse(text.replace(',{"timestamp":"2017-02-13T12-00-00-000","a":1}', '')))).toBe(
      '"data[0].a" is not a finite number (Infinity: too large for a double, such as 1e400)',
    );
  });

  test('a lone surrogate as sent in JSON (an escape) is refused; a well-formed pair is not', () => {
    const text =
      '{"msg_type":2,"device_id":"d1","data":[{"timestamp":"2017-02-13T12-00-00-000","a":"\\ud83d\\ude00","b":"\\ud83d"}]}';
    expect(() => validatePush(readPushBody(Buffer.from(text)), opts)).toThrow(
      '"data[0].b" "\\ud83d" is not well-formed Unicode',
    );
    const ok = validatePush(readPushBody(Buffer.from(text.replace(',"b":"\\ud83d"', ''))), opts);
    expect((ok.body as DataPush).data[0].a).toBe('😀');
  });

  test('names found well-formed once are remembered; ill-formed ones are caught every time', () => {
    const push = (row: Record<string, unknown>) => ({
      msg_type: 2,
      device_id: 'd1',
      data: [
        { timestamp: TS, temp: 1 },
        { timestamp: TS, temp: 1, ...row },
      ],
    });
    for (let i = 0; i < 2; i++) {
      expect((validatePush(push({ hum: i }), opts).body as DataPush).unreadable).toBeUndefined();
      expect((validatePush(push({ ['x\udc00']: i }), opts).body as DataPush).unreadable).toHaveLength(1);
    }
  });
});

describe('readPushBody', () => {
  test('plain JSON is parsed', () => {
    expect(readPushBody(Buffer.from('{"msg_type":"1"}'))).toEqual({ msg_type: '1' });
  });

  test.each([
    [undefined, PushValidationError, 'empty body'],
    [Buffer.alloc(0), PushValidationError, 'empty body'],
    [Buffer.from('{"msg_type": 1,'), PushValidationError, 'invalid JSON'],
    [Buffer.from('U2FsdGVkX1+abcdefghijklmnopqrstuvwxyz=='), NotPlaintextError, 'base64 ciphertext'],
    [Buffer.from([0xc3, 0x28, 0xa0, 0xa1]), NotPlaintextError, 'not UTF-8'],
    [Buffer.from('{"encrypt":"AbCdEf=="}'), NotPlaintextError, '"encrypt"'],
  ])('%s is refused', (body, type, message) => {
    expect(() => readPushBody(body)).toThrow(type);
    expect(() => readPushBody(body)).toThrow(message);
  });
});

describe('errorToHttp', () => {
  test.each([
    [new PushValidationError('x'), 400, RESULT_CODE.badBody],
    [new NotPlaintextError('x'), 415, RESULT_CODE.badBody],
    [new SignatureError('mismatch', 'x'), 403, RESULT_CODE.badSignature],
    [new SignatureError('no-token', 'x'), 503, RESULT_CODE.unavailable],
    [
      Object.assign(new Error('too big'), { code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413 }),
      413,
      RESULT_CODE.badBody,
    ],
    [new EnqueueError('redis down'), 503, RESULT_CODE.unavailable],
    [
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' }),
      503,
      RESULT_CODE.unavailable,
    ],
    [new UnknownDeviceError('d1'), 500, RESULT_CODE.internal],
    [new Error('bug'), 500, RESULT_CODE.internal],
  ])('%s -> %i', (err, status, code) => {
    const a = errorToHttp(err);
    expect(a.status).toBe(status);
    expect(a.resultCode).toBe(code);
    expect(a.resultCode).not.toBe(0);
  });

  test("a 503 carries our own message, never a library's (addresses, internals)", () => {
    expect(errorToHttp(new EnqueueError('the push could not be stored')).message).toBe(
      'temporarily unavailable, send again: the push could not be stored',
    );
    const lib = errorToHttp(Object.assign(new Error('connect ECONNREFUSED 10.0.0.7:6379'), { code: 'ECONNREFUSED' }));
    expect(lib.message).toBe('temporarily unavailable, send again');
  });
});
