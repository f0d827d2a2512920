/**
 * The webhook's one error path. Route handlers and hooks throw; they never answer an error
 * themselves. Fastify's error handler, built here, counts and logs each failure once (refusals per
 * reason and faults per kind, each at most one line per interval), scrubs the message, and answers
 * in the vendor's shape (`errorToHttp`).
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../base/log.js';
import type { LogLimiter } from '../base/log-limiter.js';
import { answerBody, errorToHttp } from './errors-to-http.js';
import type { Refusals } from './request-refusals.js';
import { ReplayError } from './replay.js';
import { SignatureError } from './signature.js';

/**
 * not-checked: the nonce could not be claimed in Redis; kept: a refused body kept as a dead letter;
 * budget: a refused body not kept (the dead-letter budget is spent); not-kept: a refused body that
 * could not be kept either; not-stored: a valid push Redis did not store.
 */
export type PushFailureKind = 'not-checked' | 'kept' | 'budget' | 'not-kept' | 'not-stored';

/** A push that failed once received, with what became of it; `answer` is the error the sender hears of. */
export class PushFailure extends Error {
  constructor(
    readonly kind: PushFailureKind,
    readonly answer: unknown,
    readonly fields: Record<string, unknown> = {},
  ) {
    super(`push ${kind}`, { cause: answer });
    this.name = 'PushFailure';
  }
}

export interface WebhookErrorsOptions {
  logger: Logger;
  refusals: Pick<Refusals, 'note'>;
  /** faults of ours (Redis refusing, say): one line per interval per kind */
  faults: Pick<LogLimiter, 'log'>;
  scrub: (text: string) => string;
  /** the webhook's path: a GET there is the handshake */
  path: string;
}

type Reply = FastifyReply;
type Request = FastifyRequest;

/** Fastify's error handler for the webhook: report once, answer in the vendor's shape. */
export function webhookErrorHandler(
  o: WebhookErrorsOptions,
): (err: FastifyError | Error, request: Request, reply: Reply) => Reply {
  return (err, request, reply) => {
    report(o, err, request);
    const a = errorToHttp(err instanceof PushFailure ? err.answer : err);
    return reply.code(a.status).send(answerBody({ resultCode: a.resultCode, message: o.scrub(a.message) }));
  };
}

function report(o: WebhookErrorsOptions, err: Error, request: Request): void {
  const { refusals, faults, logger, scrub } = o;
  const bytes = (request.body as Buffer | undefined)?.length ?? 0;
  if (request.method === 'GET' && request.routeOptions.url === o.path) {
    // the reason says skew, format or signature; neither the token nor the signature is logged
    const problem = err instanceof SignatureError ? err.problem : 'error';
    refusals.note('handshake', { problem, reason: scrub(err.message), ip: request.ip }, 'webhook handshake refused');
    return;
  }
  if (err instanceof SignatureError || err instanceof ReplayError) {
    // unauthenticated: nothing of the body is kept, whatever its size
    const reason = err instanceof ReplayError ? 'replay' : 'signature';
    refusals.note(
      reason,
      { reason: scrub(err.message), bytes, ip: request.ip },
      'push refused before reading: not authenticated, body not kept',
    );
    return;
  }
  if (err instanceof PushFailure) return reportPush(o, err, bytes);
  const a = errorToHttp(err);
  if (a.status >= 500)
    faults.log(logger, 'error', 'request-failed', { err, url: request.routeOptions.url }, 'webhook request failed');
  else
    refusals.note(
      'body',
      { status: a.status, reason: scrub(a.message), length: request.headers['content-length'] },
      'webhook request refused',
    );
}

function reportPush(o: WebhookErrorsOptions, failure: PushFailure, bytes: number): void {
  const { refusals, faults, logger, scrub } = o;
  const answered = errorToHttp(failure.answer);
  switch (failure.kind) {
    case 'not-checked':
      faults.log(
        logger,
        'error',
        'push-not-checked',
        { err: failure.answer },
        'push not checked: answered with an error so that the platform sends it again',
      );
      return;
    case 'kept':
      refusals.note(
        'body',
        { status: answered.status, reason: scrub(answered.message), bytes },
        'push refused and kept as a dead letter',
      );
      return;
    case 'budget':
      // counted by the store; the sender hears why its body was refused, as it would have
      refusals.note(
        'budget',
        { status: answered.status, reason: scrub(answered.message), bytes },
        'push refused and NOT kept: the dead-letter budget is spent',
      );
      return;
    case 'not-kept':
      // we could neither take nor keep it: the platform is asked to send it again
      faults.log(
        logger,
        'error',
        'refused-not-kept',
        { err: failure.fields.storeError },
        'refused push could not be kept as a dead letter',
      );
      return;
    case 'not-stored':
      faults.log(
        logger,
        'error',
        'push-not-stored',
        { err: failure.answer, ...failure.fields },
        'push not stored: answered with an error so that the platform sends it again',
      );
      return;
  }
}
