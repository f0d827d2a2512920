import { createHash, timingSafeEqual } from 'node:crypto';
import { ExpeedError } from '../base/retry.js';

/**
 * The vendor's webhook signature: `MD5(SHA1(token + nonce + timestamp))`, each digest as lowercase
 * hex and the MD5 taken over the SHA-1 hex string. Used by the GET handshake and, when the
 * platform sends them, by POSTs.
 */
export function computeSignature(token: string, nonce: string, timestamp: string): string {
  const sha1 = createHash('sha1')
    .update(token + nonce + timestamp, 'utf8')
    .digest('hex');
  return createHash('md5').update(sha1, 'utf8').digest('hex');
}

export type SignatureProblem = 'missing' | 'mismatch' | 'bad-timestamp' | 'stale' | 'no-token';

/** A request whose signature cannot be accepted. Retrying the same request cannot help. */
export class SignatureError extends ExpeedError {
  constructor(
    readonly problem: SignatureProblem,
    message: string,
  ) {
    super(message, { retryable: false });
  }
}

export interface SignatureParams {
  signature?: unknown;
  nonce?: unknown;
  timestamp?: unknown;
}

export interface VerifyOptions {
  /** the token entered in the vendor console */
  token: string | undefined;
  /** a timestamp further than this from `now` is refused, so a captured request cannot be replayed; 0 = not checked */
  windowSec: number;
  now: number;
  /** reads the platform's own `YYYY-MM-DDTHH-mm-ss-SSS` (platform-local) as epoch ms; throws on anything else */
  parseTime?: (raw: string) => number;
}

// Above this the number can only be milliseconds: 1e11 seconds is the year 5138.
const MS_THRESHOLD = 1e11;

/**
 * Reads the vendor's "current timestamp" as epoch ms. The vendor does not say which form it sends:
 * epoch seconds and milliseconds are told apart by magnitude, and the platform's own wall-clock
 * form (`2017-02-13T12-00-00-000`, read by `parseTime`) is accepted too.
 */
export function parseSignatureTimestamp(raw: string, parseTime?: (raw: string) => number): number | undefined {
  if (/^\d{1,16}(\.\d+)?$/.test(raw)) {
    const n = Number(raw);
    if (!Number.isFinite(n)) return undefined;
    return n >= MS_THRESHOLD ? n : n * 1000;
  }
  if (!parseTime || !/^\d{4}-/.test(raw)) return undefined;
  try {
    return parseTime(raw);
  } catch {
    return undefined;
  }
}

function single(v: unknown): string | undefined {
  // a repeated query parameter arrives as an array: that is not a valid signature request
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

/**
 * Checks signature, nonce and timestamp; returns the nonce when they are good, throws a
 * SignatureError naming the problem otherwise. The signature comparison takes constant time.
 */
export function verifySignature(params: SignatureParams, options: VerifyOptions): string {
  if (!options.token) {
    throw new SignatureError('no-token', 'EXPEED_WEBHOOK_TOKEN is not configured: signatures cannot be verified');
  }
  const signature = single(params.signature);
  const nonce = single(params.nonce);
  const timestamp = single(params.timestamp);
  const missing = [!signature && 'signature', !nonce && 'nonce', !timestamp && 'timestamp'].filter(Boolean);
  if (missing.length > 0)
    throw new SignatureError('missing', `missing or repeated query parameter: ${missing.join(', ')}`);

  const at = parseSignatureTimestamp(timestamp!, options.parseTime);
  if (at === undefined) {
    throw new SignatureError(
      'bad-timestamp',
      'timestamp is not epoch seconds, epoch milliseconds or YYYY-MM-DDTHH-mm-ss-SSS',
    );
  }
  const skewSec = Math.abs(options.now - at) / 1000;
  if (options.windowSec > 0 && skewSec > options.windowSec) {
    throw new SignatureError(
      'stale',
      `timestamp is ${Math.round(skewSec)} s away from now (allowed: ${options.windowSec} s)`,
    );
  }

  const expected = Buffer.from(computeSignature(options.token, nonce!, timestamp!), 'utf8');
  const given = Buffer.from(signature!.toLowerCase(), 'utf8');
  // timingSafeEqual needs equal lengths; the length of an MD5 hex digest is no secret
  const equal = given.length === expected.length && timingSafeEqual(given, expected);
  if (!equal) throw new SignatureError('mismatch', 'signature does not match');
  return nonce!;
}
