import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyPluginAsync, type FastifyReply, type FastifyRequest } from 'fastify';
import type { WebhookConfig } from '../base/config.js';
import type { DeadLetterStore } from '../influx/api.js';
import { DeadLetterBudgetError, type RetryHandler } from '../dead-letters/store.js';
import type { Logger } from '../base/log.js';
import type { SecretScrubber } from '../base/secrets.js';
import { EnqueueError, IngestProducer, type IngestProducerOptions, type IngestQueue } from './ingest-producer.js';
import { answerBody, errorToHttp, RESULT_CODE } from './errors-to-http.js';
import { deviceIdOf, readPushBody, validatePush, type ValidatedPush } from './push-schema.js';
import { SignatureError, verifySignature, type SignatureParams } from './signature.js';
import { checkJsonBounds, DEFAULT_JSON_BOUNDS, type JsonBounds } from './json-bounds.js';
import { nonceTtlSec, ReplayError, type NonceStore } from './replay.js';
import { Refusals, type RefusalReason } from './refusals.js';
import { bodyOfLetter, DEFAULT_MAX_RAW_BYTES, rawOf } from './raw-body.js';
import type { RedisHeadroom } from './redis-headroom.js';
import { LogLimiter } from '../base/log-limiter.js';

export interface WebhookServerOptions {
  config: WebhookConfig;
  /** the `ingest` queue; `add` resolving means Redis stored the job */
  queue: IngestQueue;
  /** group commit into the queue (see IngestProducer) */
  producer?: Partial<IngestProducerOptions>;
  /** where refused bodies are kept, raw, with the reason */
  deadLetters: Pick<DeadLetterStore, 'add'>;
  /** signed POSTs seen within the timestamp window: a repeat is a replay */
  nonces: NonceStore;
  /** a refused body longer than this is kept as its head, length and SHA-256 (default 64 KiB) */
  maxRawBytes?: number;
  /** nesting and size bounds checked on the raw bytes before JSON.parse */
  jsonBounds?: JsonBounds;
  /** counts each request refused without keeping anything (signature, replay, handshake, budget) */
  onRefused?: (reason: RefusalReason) => void;
  logger: Logger;
  /** vendor timestamp -> epoch ms in the platform zone; throws on an unreadable one */
  parseTime: (raw: string | number) => number;
  scrubber?: Pick<SecretScrubber, 'scrub'>;
  /** more routes on the same server (metrics, health, admin); registered before listening */
  plugins?: FastifyPluginAsync[];
  /** refuses pushes (503, unread) while Redis is near full, so that the workers can drain it */
  headroom?: Pick<RedisHeadroom, 'refusal'>;
  now?: () => number;
}

export interface WebhookServer {
  /** the Fastify instance: other components may add routes until `listen` */
  app: FastifyInstance;
  /** starts listening on config host:port; returns the address */
  listen(): Promise<string>;
  close(): Promise<void>;
}

// serialised once: it is the answer to nearly every request
const OK_BODY = JSON.stringify({ result_code: RESULT_CODE.ok, result_message: 'ok' });

function hasSignatureParams(q: SignatureParams): boolean {
  return q.signature !== undefined || q.nonce !== undefined || q.timestamp !== undefined;
}

/**
 * A device id safe to keep as dead-letter metadata, when the parsed body has one (a mangled id is
 * left out). A body that did not parse is not parsed again: it may be one built to be expensive.
 */
function safeDeviceId(parsed: unknown): string | undefined {
  try {
    const value = parsed;
    if (value === null || typeof value !== 'object') return undefined;
    return deviceIdOf((value as { device_id?: unknown }).device_id);
  } catch {
    return undefined;
  }
}

/** Stores one validated push (a job of its own); throws EnqueueError (retryable) when Redis cannot. */
async function enqueuePush(queue: IngestQueue, push: ValidatedPush, receivedAt: number, timeoutMs = 5000): Promise<void> {
  const producer = new IngestProducer(queue, { timeoutMs });
  await producer.add(push, receivedAt);
}

/**
 * Dead-letter retry of kind 'push': the kept body is read and validated again (the code or the
 * configuration may have been fixed since) and enqueued as if it had just arrived — with the
 * time it was set aside, so a status push keeps its original time. Signatures are not checked
 * again: the operator retrying it vouches for it.
 */
export function pushRetryHandler(options: { queue: IngestQueue; parseTime: (raw: string | number) => number }): RetryHandler {
  return async (letter) => {
    const push = validatePush(readPushBody(bodyOfLetter(letter.raw)), { parseTime: options.parseTime });
    await enqueuePush(options.queue, push, letter.at);
  };
}

/**
 * The webhook: GET = the vendor's URL verification handshake, POST = pushes. A push is answered
 * `result_code` 0 only after BullMQ stored it in Redis; a body we refuse is kept as a dead letter.
 */
export async function createWebhookServer(options: WebhookServerOptions): Promise<WebhookServer> {
  const { config, queue, deadLetters, logger, parseTime, nonces } = options;
  const now = options.now ?? Date.now;
  const maxRawBytes = options.maxRawBytes ?? DEFAULT_MAX_RAW_BYTES;
  const jsonBounds = options.jsonBounds ?? DEFAULT_JSON_BOUNDS;
  const scrub = (s: string) => (options.scrubber ? options.scrubber.scrub(s) : s);
  const producer = new IngestProducer(queue, options.producer);
  const refusals = new Refusals(logger, { now, onRefused: options.onRefused });
  // a Redis outage fails every push alike: one line per 10 s per kind, with the count not logged
  const faults = new LogLimiter({ now });
  const verify = (q: SignatureParams) => verifySignature(q, { token: config.token, windowSec: config.timestampWindowSec, now: now(), parseTime });

  const app: FastifyInstance = Fastify({
    // pino's Logger is a FastifyBaseLogger; the cast keeps the instance type the default one
    loggerInstance: logger as FastifyBaseLogger,
    // the default request log prints the URL, signature included; we log what matters ourselves
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.bodyLimit,
    // Fastify's defaults (0) let slow bodies and silent connections stay open for ever
    requestTimeout: config.requestTimeoutMs,
    connectionTimeout: config.idleTimeoutMs,
    keepAliveTimeout: Math.min(config.idleTimeoutMs, 72_000),
    http: {
      headersTimeout: Math.min(60_000, config.requestTimeoutMs),
      // Node checks request timeouts on this interval (30 s by default): a 30 s bound would be 60 s
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(config.requestTimeoutMs / 4))),
    },
  });
  // connections beyond the cap are closed by Node as soon as they are accepted
  app.server.maxConnections = config.maxConnections;

  // Bodies are read as bytes whatever the content type says: the vendor's content type is not
  // documented, and an unreadable body must still be kept exactly as it came.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: config.bodyLimit }, (_req, body, done) => done(null, body));

  const answer = (reply: FastifyReply, err: unknown) => {
    const a = errorToHttp(err);
    return reply.code(a.status).send(answerBody({ resultCode: a.resultCode, message: scrub(a.message) }));
  };

  const keep = async (reason: string, body: Buffer | undefined, parsed?: unknown): Promise<void> => {
    await deadLetters.add({ kind: 'push', source: 'webhook', reason, raw: rawOf(body, maxRawBytes), deviceId: safeDeviceId(parsed) });
  };

  // Redis near full: refused before the body is read, nothing kept, so that the workers can drain it
  const headroom = options.headroom;
  if (headroom) {
    app.addHook('onRequest', async (request, reply) => {
      if (request.method !== 'POST' || request.routeOptions.url !== config.path) return;
      const why = headroom.refusal();
      if (why === undefined) return;
      refusals.note('redis-full', { reason: why, ip: request.ip }, 'push refused unread: Redis near full; the platform sends it again');
      return reply.code(503).send(answerBody({ resultCode: RESULT_CODE.unavailable, message: `temporarily unavailable, send again: ${why}` }));
    });
  }

  const enqueue = (push: ValidatedPush, bytes: number) => producer.add(push, now(), bytes);

  app.get(config.path, async (request: FastifyRequest<{ Querystring: SignatureParams }>, reply) => {
    try {
      const nonce = verify(request.query ?? {});
      logger.info('webhook handshake verified');
      return reply.code(200).type('text/plain; charset=utf-8').send(nonce);
    } catch (err) {
      // the reason says skew, format or signature; neither the token nor the signature is logged
      const problem = err instanceof SignatureError ? err.problem : 'error';
      refusals.note('handshake', { problem, reason: scrub((err as Error).message), ip: request.ip }, 'webhook handshake refused');
      return answer(reply, err);
    }
  });

  /**
   * Checks the signature of a POST when there is one (or one is required) and claims its nonce;
   * returns the claimed signature (to release if the push cannot be stored), undefined when unsigned.
   */
  const authenticate = async (q: SignatureParams): Promise<string | undefined> => {
    if (!config.requirePostSignature && !hasSignatureParams(q)) return undefined;
    verify(q);
    const signature = String(q.signature).toLowerCase();
    let fresh: boolean;
    try {
      fresh = await nonces.claim(signature, nonceTtlSec(config.timestampWindowSec));
    } catch (err) {
      throw new EnqueueError('the nonce could not be checked in Redis', { cause: err });
    }
    if (!fresh) throw new ReplayError();
    return signature;
  };

  app.post(config.path, async (request: FastifyRequest<{ Querystring: SignatureParams }>, reply) => {
    const body = request.body as Buffer | undefined;
    let signed: string | undefined;
    try {
      signed = await authenticate(request.query ?? {});
    } catch (err) {
      if (err instanceof SignatureError || err instanceof ReplayError) {
        // unauthenticated: nothing of the body is kept, whatever its size
        const reason: RefusalReason = err instanceof ReplayError ? 'replay' : 'signature';
        refusals.note(reason, { reason: scrub(err.message), bytes: body?.length ?? 0, ip: request.ip }, 'push refused before reading: not authenticated, body not kept');
      } else faults.log(logger, 'error', 'push-not-checked', { err }, 'push not checked: answered with an error so that the platform sends it again');
      return answer(reply, err);
    }
    let parsed: unknown;
    let push: ValidatedPush;
    try {
      if (body) checkJsonBounds(body, jsonBounds);
      parsed = readPushBody(body);
      push = validatePush(parsed, { parseTime });
    } catch (err) {
      const a = errorToHttp(err);
      if (a.status >= 500) return answer(reply, err);
      try {
        await keep(a.message, body, parsed);
      } catch (storeErr) {
        if (storeErr instanceof DeadLetterBudgetError) {
          // counted by the store; the sender hears why its body was refused, as it would have
          refusals.note('budget', { status: a.status, reason: scrub(a.message), bytes: body?.length ?? 0 }, 'push refused and NOT kept: the dead-letter budget is spent');
          return answer(reply, err);
        }
        // we could neither take nor keep it: ask the platform to send it again
        faults.log(logger, 'error', 'refused-not-kept', { err: storeErr }, 'refused push could not be kept as a dead letter');
        return answer(reply, new EnqueueError('the refused body could not be kept'));
      }
      refusals.note('body', { status: a.status, reason: scrub(a.message), bytes: body?.length ?? 0 }, 'push refused and kept as a dead letter');
      return answer(reply, err);
    }
    try {
      await enqueue(push, body?.length ?? 0);
    } catch (err) {
      // the platform sends the same signed request again: its nonce must then be accepted
      if (signed) await nonces.release(signed).catch(() => undefined);
      faults.log(logger, 'error', 'push-not-stored', { err, msgType: push.msgType }, 'push not stored: answered with an error so that the platform sends it again');
      return answer(reply, err);
    }
    return reply.code(200).type('application/json; charset=utf-8').send(OK_BODY);
  });

  app.setErrorHandler((err, request, reply) => {
    const a = errorToHttp(err);
    if (a.status >= 500) faults.log(logger, 'error', 'request-failed', { err, url: request.routeOptions.url }, 'webhook request failed');
    else refusals.note('body', { status: a.status, reason: scrub(a.message), length: request.headers['content-length'] }, 'webhook request refused');
    return reply.code(a.status).send(answerBody({ resultCode: a.resultCode, message: scrub(a.message) }));
  });

  for (const plugin of options.plugins ?? []) await app.register(plugin);

  return {
    app,
    async listen() {
      return app.listen({ host: config.host, port: config.port });
    },
    async close() {
      await app.close();
      await producer.close();
    },
  };
}

export { ingestQueueOn, INGEST_QUEUE_REDIS, type OpenIngestQueue } from './ingest-queue.js';
