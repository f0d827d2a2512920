import { describe, expect, test } from 'vitest';
import { checkJsonBounds, DEFAULT_JSON_BOUNDS } from '../../src/push/json-bounds.js';
import { PushValidationError } from '../../src/push/push-schema.js';
import { Refusals } from '../../src/push/request-refusals.js';

const bounds = { maxDepth: 4, maxItems: 20, scanFromBytes: 0 };
const check = (text: string, b = bounds) => {
  try {
    checkJsonBounds(Buffer.from(text), b);
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(PushValidationError);
    return (err as Error).message;
  }
};

describe('checkJsonBounds', () => {
  test('depth and values are bounded', () => {
    expect(check('{"a":[[1]]}')).toBe('ok');
    expect(check('{"a":[[[1]]]}')).toBe('ok');
    expect(check('{"a":[[[[1]]]]}')).toBe('JSON nested deeper than 4 levels');
    expect(check(`[${Array(20).fill(1).join(',')}]`)).toBe('ok');
    expect(check(`[${Array(21).fill(1).join(',')}]`)).toBe('JSON holds more than 20 values');
    expect(check(`[${Array(11).fill('[]').join(',')}]`)).toBe('JSON holds more than 20 values');
  });

  test('brackets, commas and escaped quotes inside strings do not count', () => {
    expect(check(`{"a":"[[[[[[,,,,,,,,,,,,,,,,,,,,,,,,,{{{{"}`)).toBe('ok');
    expect(check(`{"a":"x\\\\\\"[[[[[[[["}`)).toBe('ok');
    // an escaped backslash before the quote ends the string: what follows counts again
    expect(check(`{"a":"x\\\\","b":[[[[1]]]]}`)).toBe('JSON nested deeper than 4 levels');
    // unterminated: left to JSON.parse
    expect(check(`{"a":"[[[[[[`)).toBe('ok');
  });

  test('small bodies are not scanned: the common push pays nothing', () => {
    const deep = '['.repeat(100) + ']'.repeat(100);
    expect(check(deep, { ...bounds, scanFromBytes: 200 })).toBe('ok');
    expect(check(deep, { ...bounds, scanFromBytes: 199 })).toBe('JSON nested deeper than 4 levels');
    expect(DEFAULT_JSON_BOUNDS).toEqual({ maxDepth: 16, maxItems: 200_000, scanFromBytes: 2048 });
  });
});

describe('Refusals', () => {
  test('every refusal is counted; one log line per reason per interval, naming how many were not logged', () => {
    let now = 0;
    const lines: Array<Record<string, unknown>> = [];
    const counted: string[] = [];
    const r = new Refusals(
      { warn: ((fields: Record<string, unknown>, msg: string) => void lines.push({ ...fields, msg })) as never },
      { everyMs: 1000, now: () => now, onRefused: (x) => void counted.push(x) },
    );
    for (let i = 0; i < 5; i++) r.note('signature', { i }, 'refused');
    r.note('replay', {}, 'replayed');
    now = 999;
    r.note('signature', { i: 5 }, 'refused');
    now = 1000;
    r.note('signature', { i: 6 }, 'refused');
    expect(counted).toEqual([
      'signature',
      'signature',
      'signature',
      'signature',
      'signature',
      'replay',
      'signature',
      'signature',
    ]);
    expect(lines).toEqual([
      { i: 0, refusal: 'signature', notLoggedBefore: 0, msg: 'refused' },
      { refusal: 'replay', notLoggedBefore: 0, msg: 'replayed' },
      { i: 6, refusal: 'signature', notLoggedBefore: 5, msg: 'refused' },
    ]);
  });
});
