/**
 * The value of each field of a simulated device at a slot, as a pure function of (seed, device,
 * field, slot): a field's kind follows its name (temperature: two decimals on a daily wave,
 * humidity: whole numbers on a slower wave, switch: 0/1, mode: one of a few strings, voltage: one
 * decimal), any other name gets a kind from its hash.
 */
import { hashString, mix, unit } from './prng.js';
import type { SimValue } from './types.js';

/** The fields of a simulated device unless its own are given. */
export const DEFAULT_FIELDS = ['temp', 'humidity', 'switch', 'mode', 'voltage'];

const MODES = ['auto', 'manual', 'eco'];
const DAY_MS = 86_400_000;

type Kind = 'float2' | 'int' | 'switch' | 'string' | 'float1';

function kindOf(name: string): Kind {
  const n = name.toLowerCase();
  if (n.includes('temp')) return 'float2';
  if (n.includes('humid')) return 'int';
  if (n.includes('switch')) return 'switch';
  if (n.includes('mode')) return 'string';
  if (n.includes('volt')) return 'float1';
  return (['float2', 'int', 'switch', 'string'] as const)[hashString(name) % 4];
}

export interface FieldGen {
  name: string;
  value(k: number, slotTime: number): SimValue;
}

/** The generator of one field; `base` is the device's hash of seed and id. */
export function fieldGen(name: string, base: number): FieldGen {
  const fb = mix(base, hashString(name));
  const phase = unit(mix(fb, 1)) * 2 * Math.PI;
  switch (kindOf(name)) {
    case 'float2': {
      const center = 18 + (fb % 10);
      return {
        name,
        value: (k, t) =>
          Math.round((center + 5 * Math.sin((2 * Math.PI * t) / DAY_MS + phase) + unit(mix(fb, k)) - 0.5) * 100) / 100,
      };
    }
    case 'int':
      return {
        name,
        value: (k, t) =>
          50 +
          Math.round(15 * Math.sin((2 * Math.PI * t) / (3 * DAY_MS) + phase)) +
          (mix(fb, Math.floor(k / 7)) % 3) -
          1,
      };
    case 'switch':
      return { name, value: (k) => mix(fb, Math.floor(k / 37)) & 1 };
    case 'string':
      return { name, value: (k) => MODES[mix(fb, Math.floor(k / 113)) % MODES.length] };
    case 'float1':
      return { name, value: (k) => (2200 + (mix(fb, Math.floor(k / 3)) % 61) - 30) / 10 };
  }
}
