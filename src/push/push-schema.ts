/// <reference lib="es2024.string" />
import { isUtf8 } from 'node:buffer';
import type { DataPush, SettingResultPush, StatusPush } from '../base/jobs.js';
import { ExpeedError } from '../base/retry.js';

/**
 * Hand-written validators of the platform's push bodies (SPEC section 5). Every refusal names
 * the field and what is wrong with it, so the dead letter explains itself.
 *
 * As liberal as the pull path: a push is refused only when nothing of it can be stored (not JSON,
 * no usable device id, no readable row). Values are not judged here — `null` leaves the field out,
 * objects and arrays are stored as JSON text, names are escaped by the writer, and a name or value
 * InfluxDB cannot take becomes a dead letter there. A row that cannot be read (not an object, an
 * unreadable timestamp, text that is not well-formed Unicode) is set aside with its reason while
 * the other rows of the push land.
 */

/** A push body that can never be accepted as it is: retrying the same body cannot help. */
export class PushValidationError extends ExpeedError {
  constructor(message: string) {
    super(message, { retryable: false });
  }
}

/** A body that is not plaintext JSON: most likely the vendor's (unspecified) ciphertext mode. */
export class NotPlaintextError extends PushValidationError {}

export interface PushSchemaOptions {
  /** parses a vendor timestamp (`YYYY-MM-DDTHH-mm-ss-SSS`, ISO 8601 or epoch ms/s) to epoch ms; throws when it cannot */
  parseTime: (raw: string | number) => number;
}

export type ValidatedPush =
  { msgType: 1; body: StatusPush } | { msgType: 2; body: DataPush } | { msgType: 3; body: SettingResultPush };

/** The longest device id accepted; the vendor's ids are short serial-like strings. */
const MAX_DEVICE_ID_LENGTH = 128;

// A device id is a tag value: line breaks cannot be carried, a trailing backslash would escape the
// separator after it (docs/influxdb.md), and other control characters are no id the vendor issues.
const BAD_ID_CHARS = /[\u0000-\u001f\u007f]|\\$/;
const CIPHER_FIELDS = ['encrypt', 'Encrypt', 'encrypted', 'ciphertext', 'cipher_text', 'encrypt_data'];

/** Text of a body for messages: short, one line, with control characters shown as escapes. */
function preview(value: string, max = 60): string {
  const s = JSON.stringify(value.length > max ? `${value.slice(0, max)}…` : value);
  return s;
}

/**
 * Reads a request body as plaintext JSON. A body that is empty, not UTF-8, not JSON, or a
 * JSON envelope around ciphertext is refused with an error that says which.
 */
export function readPushBody(raw: Buffer | undefined): unknown {
  if (!raw || raw.length === 0) throw new PushValidationError('empty body: expected a JSON object');
  if (!isUtf8(raw)) {
    throw new NotPlaintextError(
      'body is not UTF-8 text: ciphertext mode is not supported, choose plaintext in the vendor console',
    );
  }
  const text = raw.toString('utf8');
  const trimmed = text.trim();
  if (!trimmed.startsWith('{') && !trimmed.startsWith('[') && /^[A-Za-z0-9+/=_-]{16,}$/.test(trimmed)) {
    throw new NotPlaintextError(
      'body looks like base64 ciphertext, not JSON: ciphertext mode is not supported, choose plaintext in the vendor console',
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new PushValidationError(`invalid JSON: ${(err as Error).message}`);
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && !('msg_type' in value)) {
    const cipher = CIPHER_FIELDS.find((k) => typeof (value as Record<string, unknown>)[k] === 'string');
    if (cipher) {
      throw new NotPlaintextError(
        `body carries "${cipher}" instead of a plaintext push: ciphertext mode is not supported, choose plaintext in the vendor console`,
      );
    }
  }
  return value;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${preview(v)}`;
  if (typeof v === 'number') return `the number ${v}`;
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

function fail(field: string, expected: string, got: unknown): never {
  throw new PushValidationError(
    `"${field}" must be ${expected}, got ${got === undefined ? 'nothing (missing)' : describe(got)}`,
  );
}

/** A device id: a string (or a whole number, which the vendor examples leave unquoted). */
export function deviceIdOf(v: unknown, field = 'device_id'): string {
  const id = typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? String(v) : v;
  if (typeof id !== 'string' || id.length === 0) fail(field, 'a non-empty string', v);
  if (id.length > MAX_DEVICE_ID_LENGTH)
    throw new PushValidationError(`"${field}" is longer than ${MAX_DEVICE_ID_LENGTH} characters`);
  if (BAD_ID_CHARS.test(id)) {
    throw new PushValidationError(
      `"${field}" ${preview(id)} contains a control character or ends with a backslash, which InfluxDB cannot store in a tag`,
    );
  }
  if (!id.isWellFormed())
    throw new PushValidationError(`"${field}" ${preview(id)} is not well-formed Unicode (a lone UTF-16 surrogate)`);
  return id;
}

function optionalString(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v);
  if (typeof v !== 'string') fail(field, 'a string', v);
  return v.length > 0 ? v : undefined;
}

/** A small code sent as a number or a numeric string (`0`, `"1"`), limited to `allowed`. */
function codeOf(v: unknown, field: string, allowed: readonly number[]): number {
  const n = typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !allowed.includes(n)) fail(field, `one of ${allowed.join(', ')} (number or string)`, v);
  return n;
}

function messageIdOf(v: unknown): string {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v);
  if (typeof v !== 'string' || v.trim().length === 0) fail('message_id', 'a non-empty string', v);
  if (v.length > 256 || /[\u0000-\u001f\u007f]/.test(v)) {
    throw new PushValidationError(
      `"message_id" ${preview(v)} is longer than 256 characters or contains a control character`,
    );
  }
  if (!v.isWellFormed())
    throw new PushValidationError(`"message_id" ${preview(v)} is not well-formed Unicode (a lone UTF-16 surrogate)`);
  return v;
}

type Row = DataPush['data'][number];

/** Why a row of a push cannot be read, or undefined when it can (checked once per row, cheaply). */
function rowProblem(row: unknown, i: number, options: PushSchemaOptions): string | undefined {
  const where = `data[${i}]`;
  if (row === null || typeof row !== 'object' || Array.isArray(row))
    return `"${where}" must be an object, got ${describe(row)}`;
  const r = row as Record<string, unknown>;
  if (typeof r.timestamp !== 'string' && typeof r.timestamp !== 'number')
    return `"${where}.timestamp" must be a string such as "2017-02-13T12-00-00-000" or epoch milliseconds, got ${r.timestamp === undefined ? 'nothing (missing)' : describe(r.timestamp)}`;
  try {
    const t = options.parseTime(r.timestamp);
    if (!Number.isFinite(t)) throw new Error('not a finite time');
  } catch (err) {
    return `"${where}.timestamp" ${typeof r.timestamp === 'string' ? preview(r.timestamp) : r.timestamp} cannot be read: ${(err as Error).message}`;
  }
  for (const name in r) {
    if (!GOOD_FIELD_NAMES.has(name)) {
      if (!name.isWellFormed())
        return `${where}: datapoint name ${preview(name)} is not well-formed Unicode (a lone UTF-16 surrogate)`;
      rememberName(name);
    }
    const value = r[name];
    // JSON.parse reads 1e400 as Infinity, which the ingest queue's JSON would turn into null
    if (typeof value === 'number' && !Number.isFinite(value))
      return `"${where}.${name}" is not a finite number (${value}: too large for a double, such as 1e400)`;
    // a lone surrogate would be stored as U+FFFD: two different values would become one
    if (typeof value === 'string' && !value.isWellFormed())
      return `"${where}.${name}" ${preview(value)} is not well-formed Unicode (a lone UTF-16 surrogate)`;
  }
  return undefined;
}

/**
 * Datapoint names already found well-formed: the same few names come in every row of every push,
 * so each is checked once (bounded: names in pushes are open-ended).
 */
const GOOD_FIELD_NAMES = new Set<string>();

function rememberName(name: string): void {
  if (GOOD_FIELD_NAMES.size >= 10_000) GOOD_FIELD_NAMES.clear();
  GOOD_FIELD_NAMES.add(name);
}

/** The readable rows of `data`, and the others with their reasons; throws when no row is readable. */
function rowsOf(data: unknown[], options: PushSchemaOptions): Pick<DataPush, 'data' | 'unreadable'> {
  let unreadable: DataPush['unreadable'];
  let good: Row[] | undefined;
  for (let i = 0; i < data.length; i++) {
    const reason = rowProblem(data[i], i, options);
    if (reason === undefined) {
      good?.push(data[i] as Row);
      continue;
    }
    // the common case (every row readable) returns `data` itself without copying
    good ??= data.slice(0, i) as Row[];
    (unreadable ??= []).push({ reason, raw: data[i] });
  }
  if (unreadable === undefined) return { data: data as Row[] };
  if (good!.length === 0) {
    throw new PushValidationError(
      unreadable.length === 1
        ? unreadable[0].reason
        : `no row can be read: ${unreadable[0].reason} (and ${unreadable.length - 1} more)`,
    );
  }
  return { data: good!, unreadable };
}

/**
 * Validates a parsed push body and returns it normalised (msg_type as a number, ids as strings,
 * codes as numbers). The result holds only the fields named here: other top-level fields of the
 * push are dropped, not stored (a row keeps every datapoint it carries).
 */
export function validatePush(value: unknown, options: PushSchemaOptions): ValidatedPush {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail('body', 'a JSON object', value);
  const b = value as Record<string, unknown>;
  const msgType = codeOf(b.msg_type, 'msg_type', [1, 2, 3]) as 1 | 2 | 3;
  if (msgType === 1) {
    const body: StatusPush = {
      device_id: deviceIdOf(b.device_id),
      device_status: codeOf(b.device_status, 'device_status', [0, 1]),
    };
    const key = optionalString(b.device_key, 'device_key');
    const sn = optionalString(b.device_sn, 'device_sn');
    if (key !== undefined) body.device_key = key;
    if (sn !== undefined) body.device_sn = sn;
    return { msgType, body };
  }
  if (msgType === 2) {
    const deviceId = deviceIdOf(b.device_id);
    if (!Array.isArray(b.data)) fail('data', 'an array of rows', b.data);
    const body: DataPush = { device_id: deviceId, ...rowsOf(b.data, options) };
    const key = optionalString(b.device_key, 'device_key');
    if (key !== undefined) body.device_key = key;
    return { msgType, body };
  }
  return {
    msgType,
    body: {
      message_id: messageIdOf(b.message_id),
      device_id: deviceIdOf(b.device_id),
      set_result: codeOf(b.set_result, 'set_result', [0, 1]),
    },
  };
}
