/**
 * Numbers the platform sends as JSON strings (`"21.5"`): EXPEED_NUMERIC_STRINGS decides whether a
 * datapoint string that is a plain decimal number is written as a float (`number`, the default)
 * or kept as the string it came as (`string`). It applies to `device_data` only, the datapoints of
 * pulls and pushes alike; the schema's own string fields (a setting's `message_id`) stay strings.
 *
 * A plain decimal number is: an optional sign, digits, an optional fraction (a dot and digits), an
 * optional exponent, nothing else (no spaces, no hex, no `Infinity`, not ""), and finite as a double.
 * Leading zeros are read as decimal ("007" is 7): a field such as a code sent as "01" ... "12" stays
 * one type, where refusing leading zeros would write "10" as a float and then "07" as a string
 * into the same field, which InfluxDB refuses.
 *
 * A field that InfluxDB already holds as a string (written by an older version, or a string
 * earlier in the same batch) stays a string: on InfluxDB's field type conflict for a converted
 * value the writer calls keep(), writes those values as strings again, and every later value of
 * that field in this process is written as a string.
 */
import type { NumericStringsMode } from '../base/config.js';
import type { Logger } from '../base/log.js';
import { MEASUREMENT } from './api.js';

const DECIMAL = /^[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/** The number a plain decimal string spells, or undefined for any other string. */
export function decimalValue(s: string): number | undefined {
  if (!DECIMAL.test(s)) return undefined;
  const n = Number(s);
  return Number.isFinite(n) ? n : undefined;
}

/** The rule for string values of one writer, and the fields it keeps as strings. */
export class NumericStrings {
  private readonly kept = new Set<string>();

  constructor(
    readonly mode: NumericStringsMode,
    private readonly logger?: Logger,
  ) {}

  /** The stored form of a string value of `field`: its number, or the string itself. */
  read(measurement: string, field: string, value: string): string | number {
    if (this.mode === 'string' || measurement !== MEASUREMENT.data) return value;
    const n = decimalValue(value);
    return n === undefined || (this.kept.size > 0 && this.kept.has(field)) ? value : n;
  }

  /** Whether a raw value of `field` would be converted to a number if the field were not kept. */
  converts(measurement: string, value: unknown): boolean {
    return (
      this.mode === 'number' &&
      measurement === MEASUREMENT.data &&
      typeof value === 'string' &&
      decimalValue(value) !== undefined
    );
  }

  /** From now on, values of `field` are written as strings (InfluxDB holds it as one); logged once per field. */
  keep(measurement: string, field: string): void {
    if (measurement !== MEASUREMENT.data || this.kept.has(field)) return;
    this.kept.add(field);
    this.logger?.warn(
      { measurement, field },
      'InfluxDB holds this field as a string: its numeric strings are written as strings',
    );
  }

  /** The fields kept as strings so far. */
  keptFields(): string[] {
    return [...this.kept];
  }
}
