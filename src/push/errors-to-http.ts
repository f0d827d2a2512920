import { ExpeedError, retryVerdict } from '../base/retry.js';
import { NotPlaintextError, PushValidationError } from './push-schema.js';
import { SignatureError } from './signature.js';
import { ReplayError } from './replay.js';

/**
 * The one place where errors become HTTP answers. Domain code throws typed errors that know
 * nothing of HTTP; this maps them to a status and to the vendor-style body
 * `{"result_code": n, "result_message": "..."}` (0 is reserved for a push durably stored).
 */

/** Non-zero result codes we answer with; 4 and 5 mirror the vendor's own meanings. */
export const RESULT_CODE = {
  ok: 0,
  /** URL parameters invalid: signature, nonce or timestamp */
  badSignature: 4,
  /** body invalid: not JSON, wrong shape, too large, ciphertext */
  badBody: 5,
  /** we could not store the push right now: the platform should send it again */
  unavailable: 9,
  /** a fault of ours */
  internal: 10,
} as const;

export interface HttpAnswer {
  status: number;
  resultCode: number;
  message: string;
}

/** Fastify's own errors (body parsing and limits) carry a `code` such as FST_ERR_CTP_BODY_TOO_LARGE. */
function fastifyAnswer(err: Error & { code?: string; statusCode?: number }): HttpAnswer | undefined {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, resultCode: RESULT_CODE.badBody, message: 'body too large (see WEBHOOK_BODY_LIMIT)' };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, resultCode: RESULT_CODE.badBody, message: `unsupported content type: ${err.message}` };
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return { status: 400, resultCode: RESULT_CODE.badBody, message: err.message };
    default:
      break;
  }
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    return { status: err.statusCode, resultCode: RESULT_CODE.badBody, message: err.message };
  }
  return undefined;
}

export function errorToHttp(err: unknown): HttpAnswer {
  if (err instanceof SignatureError) {
    // without a configured token we cannot accept anything: that is our fault, not the caller's
    if (err.problem === 'no-token') return { status: 503, resultCode: RESULT_CODE.unavailable, message: err.message };
    return { status: 403, resultCode: RESULT_CODE.badSignature, message: `signature refused: ${err.message}` };
  }
  if (err instanceof ReplayError)
    return { status: 403, resultCode: RESULT_CODE.badSignature, message: `signature refused: ${err.message}` };
  if (err instanceof NotPlaintextError) return { status: 415, resultCode: RESULT_CODE.badBody, message: err.message };
  if (err instanceof PushValidationError) return { status: 400, resultCode: RESULT_CODE.badBody, message: err.message };
  if (err instanceof Error) {
    const fst = fastifyAnswer(err);
    if (fst) return fst;
  }
  // only an error known to pass asks for the push again; one nothing is known about is our fault.
  // A library's message (addresses, internals) is not sent out; ours are written to be.
  const verdict = retryVerdict(err);
  if (verdict.declared && verdict.retryable) {
    const why = err instanceof ExpeedError ? `: ${err.message}` : '';
    return { status: 503, resultCode: RESULT_CODE.unavailable, message: `temporarily unavailable, send again${why}` };
  }
  return { status: 500, resultCode: RESULT_CODE.internal, message: 'internal error' };
}

/** The vendor-style body of an answer. */
export function answerBody(answer: Pick<HttpAnswer, 'resultCode' | 'message'>): {
  result_code: number;
  result_message: string;
} {
  return { result_code: answer.resultCode, result_message: answer.message };
}
