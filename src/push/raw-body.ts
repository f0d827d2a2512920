/**
 * A request body in a form a JSON store can keep: text as it came, other bytes as base64, and a
 * body longer than the cap as its head, length and SHA-256 (enough to recognise, not to retry).
 */
import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';

type Raw = { encoding: 'utf8'; text: string } | { encoding: 'base64'; data: string };

/** What is kept of a refused body longer than the cap: enough to recognise it, not to replay it. */
export interface TruncatedRaw {
  truncated: true;
  /** length of the whole body */
  bytes: number;
  /** SHA-256 (hex) of the whole body */
  sha256: string;
  encoding: 'utf8' | 'base64';
  /** the first `maxRawBytes` bytes */
  head: string;
}

export const DEFAULT_MAX_RAW_BYTES = 64 * 1024;

/** The body exactly as received (or, beyond `maxRawBytes`, its head and digest) in a form a JSON store can keep. */
export function rawOf(body: Buffer | undefined, maxRawBytes: number): string | Raw | TruncatedRaw {
  if (!body || body.length === 0) return '';
  if (body.length > maxRawBytes) {
    const head = body.subarray(0, maxRawBytes);
    const utf8 = isUtf8(body);
    return {
      truncated: true,
      bytes: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
      encoding: utf8 ? 'utf8' : 'base64',
      head: head.toString(utf8 ? 'utf8' : 'base64'),
    };
  }
  return isUtf8(body) ? body.toString('utf8') : { encoding: 'base64', data: body.toString('base64') };
}

/** The bytes of a kept body, whichever form `rawOf` (or the ingest worker) gave it. */
export function bodyOfLetter(raw: unknown): Buffer {
  if (typeof raw === 'string') return Buffer.from(raw, 'utf8');
  const r = raw as Partial<Raw & TruncatedRaw> | null;
  if (r && r.truncated === true) {
    throw new Error(
      `only the first part of this body was kept (${r.bytes} bytes, sha256 ${r.sha256}): it cannot be retried, the sender must send it again`,
    );
  }
  if (r && r.encoding === 'base64' && typeof r.data === 'string') return Buffer.from(r.data, 'base64');
  return Buffer.from(JSON.stringify(raw) ?? '', 'utf8');
}
