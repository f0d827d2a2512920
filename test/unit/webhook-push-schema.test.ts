import { describe, expect, test } from 'vitest';
import { parsePlatformTime } from '../../src/platform/timestamp.js';
import { NotPlaintextError, PushValidationError, readPushBody, validatePush } from '../../src/webhook/push-schema.js';
import { errorToHttp, RESULT_CODE } from '../../src/webhook/errors-to-http.js';
import { SignatureError } from '../../src/webhook/signature.js';

const opts = { parseTime: (raw: string) => parsePlatformTime(raw, 'Asia/Shanghai') };
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
    [{ msg_type: '1', device_id: 'd1', device_key: 'k1', device_sn: 'sn1', device_status: 0 }, { msgType: 1, body: { device_id: 'd1', device_key: 'k1', device_sn: 'sn1', device_status: 0 } }],
    [{ msg_type: 1, device_id: 'd1', device_status: '1' }, { msgType: 1, body: { device_id: 'd1', device_status: 1 } }],
    [{ msg_type: '2', device_id: 'd1', device_key: 'k1', data: [{ timestamp: TS, value1: 1.5, s: 'x', b: true }] }, { msgType: 2, body: { device_id: 'd1', device_key: 'k1', data: [{ timestamp: TS, value1: 1.5, s: 'x', b: true }] } }],
    [{ msg_type: 2, device_id: 12345, data: [] }, { msgType: 2, body: { device_id: '12345', data: [] } }],
    [{ msg_type: 2, device_id: 'd1', data: [{ timestamp: ` ${TS}`, a: 1 }] }, { msgType: 2, body: { device_id: 'd1', data: [{ timestamp: ` ${TS}`, a: 1 }] } }],
    [{ msg_type: 3, message_id: 'm-1', device_id: 'd1', set_result: 0 }, { msgType: 3, body: { message_id: 'm-1', device_id: 'd1', set_result: 0 } }],
    [{ msg_type: '3', message_id: 77, device_id: 'd1', set_result: '1' }, { msgType: 3, body: { message_id: '77', device_id: 'd1', set_result: 1 } }],
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
    [{ msg_type: 'two', device_id: 'd1' }, '"msg_type" must be one of 1, 2, 3 (number or string), got the string "two"'],
    [{ msg_type: 1, device_status: 0 }, '"device_id" must be a non-empty string, got nothing (missing)'],
    [{ msg_type: 1, device_id: 'd1', device_status: 2 }, '"device_status" must be one of 0, 1 (number or string), got the number 2'],
    [{ msg_type: 1, device_id: 'd1', device_status: 0, device_key: {} }, '"device_key" must be a string, got an object'],
    [{ msg_type: 2, device_id: 'd1' }, '"data" must be an array of rows, got nothing (missing)'],
    [{ msg_type: 2, device_id: 'd1', data: {} }, '"data" must be an array of rows, got an object'],
    [{ msg_type: 2, device_id: 'd1', data: [5] }, '"data[0]" must be an object, got the number 5'],
    [{ msg_type: 2, device_id: 'd1', data: [{ a: 1 }] }, '"data[0].timestamp" must be a string such as "2017-02-13T12-00-00-000", got nothing (missing)'],
    [{ msg_type: 2, device_id: 'd1', data: [{ timestamp: TS, a: 1 }, { timestamp: '2017-02-30T00-00-00-000', a: 2 }] }, '"data[1].timestamp" "2017-02-30T00-00-00-000" cannot be read'],
    [{ msg_type: 2, device_id: 'd1', data: [{ timestamp: 1486958400000, a: 1 }] }, '"data[0].timestamp" must be a string'],
    [{ msg_type: 2, device_id: 'd1', data: [{ timestamp: TS, a: { x: 1 } }] }, '"data[0].a" must be a number, a boolean or a string, got an object'],
    [{ msg_type: 2, device_id: 'd1', data: [{ timestamp: TS, a: null }] }, '"data[0].a" must be a number, a boolean or a string, got null'],
    [{ msg_type: 2, device_id: 'd1', data: [{ timestamp: TS, time: 1 }] }, 'datapoint name "time" is reserved'],
    [{ msg_type: 2, device_id: 'd1', data: [{ timestamp: TS, 'a\nb': 1 }] }, 'data[0]: datapoint name "a\\nb" is empty'],
    [{ msg_type: 3, device_id: 'd1', set_result: 0 }, '"message_id" must be a non-empty string, got nothing (missing)'],
    [{ msg_type: 3, device_id: 'd1', message_id: 'm', set_result: 'ok' }, '"set_result" must be one of 0, 1 (number or string), got the string "ok"'],
  ])('%j', (input, message) => {
    expect(refusal(input)).toContain(message);
  });

  test.each(['d 1', 'd,1', 'd"1', "d'1", 'd=1', 'd\n1', 'd\t1', 'd\\1', ' d1', 'x'.repeat(129), ''])('device id %j is refused', (id) => {
    expect(refusal({ msg_type: 1, device_id: id, device_status: 0 })).toMatch(/device_id/);
  });
});

describe('validatePush checks datapoint names on every push', () => {
  test('names found valid once are remembered; bad names are refused every time, even among good ones', () => {
    const push = (row: Record<string, unknown>) => ({ msg_type: 2, device_id: 'd1', data: [{ timestamp: TS, temp: 1, ...row }] });
    for (let i = 0; i < 3; i++) expect(validatePush(push({ hum: i }), opts).msgType).toBe(2);
    for (let i = 0; i < 2; i++) {
      expect(() => validatePush(push({ time: 5 }), opts)).toThrow('data[0]: datapoint name "time" is reserved in InfluxDB');
      expect(() => validatePush(push({ 'a\\b': 5 }), opts)).toThrow(/datapoint name "a\\\\b" is empty, longer than 256 or contains a control character or backslash/);
      expect(() => validatePush(push({ hum: null }), opts)).toThrow('"data[0].hum" must be a number, a boolean or a string, got null');
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
    [Object.assign(new Error('too big'), { code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413 }), 413, RESULT_CODE.badBody],
    [Object.assign(new Error('redis down'), { canRetry: () => true }), 503, RESULT_CODE.unavailable],
    [new Error('bug'), 500, RESULT_CODE.internal],
  ])('%s -> %i', (err, status, code) => {
    const a = errorToHttp(err);
    expect(a.status).toBe(status);
    expect(a.resultCode).toBe(code);
    expect(a.resultCode).not.toBe(0);
  });
});
