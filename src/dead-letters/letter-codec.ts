// How a dead letter is kept as text in Redis: JSON, with the values JSON cannot carry tagged.
import type { DeadLetter } from '../influx/api.js';

// JSON cannot carry NaN, ±Infinity, undefined or bigint, and those are often the very reason a
// value was set aside: they are tagged on the way in and restored on the way out.
const TAG = '$expeed';

export function replacer(this: unknown, _key: string, value: unknown): unknown {
  if (typeof value === 'number' && !Number.isFinite(value)) return { [TAG]: 'number', value: String(value) };
  if (typeof value === 'bigint') return { [TAG]: 'bigint', value: value.toString() };
  if (value === undefined) return { [TAG]: 'undefined' };
  return value;
}

function reviver(_key: string, value: unknown): unknown {
  if (value !== null && typeof value === 'object' && TAG in value) {
    const v = value as { [TAG]: string; value?: string };
    if (v[TAG] === 'number') return Number(v.value);
    if (v[TAG] === 'bigint') return BigInt(v.value ?? '0');
    if (v[TAG] === 'undefined') return undefined;
  }
  return value;
}

export function encodeLetter(letter: DeadLetter): string {
  return JSON.stringify(letter, replacer);
}

export function decodeLetter(text: string): DeadLetter {
  return JSON.parse(text, reviver) as DeadLetter;
}
