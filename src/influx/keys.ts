/// <reference lib="es2024.string" />
/**
 * Names in line protocol: how measurements, device ids and field names are escaped, which cannot
 * be carried, and caches of them (the same names repeat on every row). See docs/influxdb.md, "Names".
 */
import { escape } from '@influxdata/influxdb-client';

const measurementCache = new Map<string, string>();

/** A measurement escaped by the client library's helper (the schema's few names, cached). */
export function escapedMeasurement(name: string): string {
  let e = measurementCache.get(name);
  if (e === undefined) {
    e = escape.measurement(name);
    measurementCache.set(name, e);
  }
  return e;
}

/**
 * Field names InfluxDB would confuse with the point's own parts: `time` (refused by 1.x), the tag
 * `device_id` (a field of that name makes every query of the tag ambiguous) and the names 2.x+
 * reserves for its own columns. A value under one of them becomes a dead letter.
 */
export const RESERVED_FIELD_NAMES: ReadonlySet<string> = new Set([
  'time',
  'device_id',
  '_measurement',
  '_field',
  '_value',
  '_time',
  '_start',
  '_stop',
]);

/**
 * Why a key cannot be written, whatever its role, or undefined: empty, a line break, a NUL, or a lone
 * UTF-16 surrogate (it would be sent as U+FFFD, merging distinct names into one).
 */
export function keyProblem(key: string, what: string): string | undefined {
  if (key.length === 0) return `${what} is empty`;
  if (/[\n\r]/.test(key)) return `${what} contains a line break, which line protocol cannot carry`;
  // InfluxQL 1.x reads a NUL as the end of the query: no quoting carries it, so every query naming it fails
  if (key.includes('\u0000')) return `${what} contains a NUL character, which no InfluxQL query can quote`;
  if (!key.isWellFormed()) return `${what} is not well-formed Unicode (it holds a lone UTF-16 surrogate)`;
  return undefined;
}

/*
 * Backslashes, as InfluxDB 1.x parses line protocol (tested against 1.6.7; 2.x OSS shares the
 * parser). A tag value ends at the first space or comma whose preceding character is not a
 * backslash, and only `\,` `\ ` `\=` are unescaped: every other backslash is kept as it is. The
 * field set is scanned in pairs (a backslash and the character after it), a field key then ends at
 * the first `=` not preceded by a backslash, and only `\,` `\ ` `\=` `\"` are unescaped. So
 * backslashes are written as they are and the special characters (and a quote) after them escaped, which
 * carries every name except:
 * - a device id or field name ending in a backslash (it would escape the separator after it);
 * - a field name with an odd run of backslashes before a space, comma or `=`.
 */
const TRAILING_BACKSLASH = /\\$/;
const ODD_BACKSLASHES_BEFORE_SEPARATOR = /(?:^|[^\\])(?:\\\\)*\\[ ,=]/;

/**
 * Escapes a tag value (the device id): `a\,b` is written `a\\,b` (see above). Not the library's
 * `escape.tag`: that one turns a tab into the two characters `\t`, which InfluxDB keeps as they are.
 */
export function escapeTagValue(key: string): string {
  return /[ ,=]/.test(key) ? key.replace(/[ ,=]/g, '\\$&') : key;
}

/**
 * Escapes a field key: as a tag value, and a `"` that follows a backslash, because InfluxDB
 * unescapes `\"` in field keys. Other quotes stay as they are (every reader keeps them).
 */
export function escapeFieldKey(key: string): string {
  return /[ ,=]|\\"/.test(key) ? key.replace(/[ ,=]|(?<=\\)"/g, '\\$&') : key;
}

export type KeyRole = 'device id' | 'field name';

/** Why a device id or a field name cannot be written, or undefined. */
export function nameProblem(key: string, what: KeyRole): string | undefined {
  if (what === 'device id') {
    return (
      keyProblem(key, what) ??
      (TRAILING_BACKSLASH.test(key)
        ? "device id ends with a backslash, which InfluxDB's line protocol cannot carry"
        : undefined)
    );
  }
  const label = `field name ${JSON.stringify(key)}`;
  const problem = keyProblem(key, label);
  if (problem !== undefined) return problem;
  if (key.includes('\\')) {
    if (TRAILING_BACKSLASH.test(key))
      return `${label} ends with a backslash, which InfluxDB's line protocol cannot carry`;
    if (ODD_BACKSLASHES_BEFORE_SEPARATOR.test(key))
      return `${label} has an odd number of backslashes before a space, comma or "=", which InfluxDB's line protocol cannot carry`;
  }
  return RESERVED_FIELD_NAMES.has(key) ? `${label} is reserved in InfluxDB` : undefined;
}

/** Escaped keys, cached per role: the same device ids and field names repeat on every row. */
export class KeyCache {
  private readonly ids = new Map<string, string | { problem: string }>();
  private readonly fields = new Map<string, string | { problem: string }>();

  constructor(private readonly maxEntries = 50_000) {}

  /** The escaped key, or `{problem}` when it cannot be written; `what` says which kind of key it is. */
  get(key: string, what: KeyRole): string | { problem: string } {
    const map = what === 'device id' ? this.ids : this.fields;
    const hit = map.get(key);
    if (hit !== undefined) return hit;
    const problem = nameProblem(key, what);
    const value = problem ? { problem } : what === 'device id' ? escapeTagValue(key) : escapeFieldKey(key);
    if (map.size >= this.maxEntries) map.clear(); // bounded: ids from pushes are open-ended
    map.set(key, value);
    return value;
  }
}
