import { isUtf8 } from 'node:buffer';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyPluginAsync, type FastifyReply, type FastifyRequest } from 'fastify';
import { Queue } from 'bullmq';
import type { WebhookConfig } from '../config.js';
import type { DeadLetterStore } from '../influx/api.js';
import type { RetryHandler } from '../dead-letters/store.js';
import type { Logger } from '../log.js';
import { QUEUE, createRedis, type IngestBatchJob, type RedisConnection, type RedisTarget } from '../queues.js';
import type { SecretScrubber } from '../secrets.js';
import { EnqueueError, IngestProducer, type IngestProducerOptions, type IngestQueue } from './ingest-producer.js';
import { answerBody, errorToHttp, RESULT_CODE } from './errors-to-http.js';
import { deviceIdOf, readPushBody, validatePush, type ValidatedPush } from './push-schema.js';
import { verifySignature, type SignatureParams } from './signature.js';

export { EnqueueError, type IngestQueue } from './ingest-producer.js';

export interface WebhookServerOptions {
  config: WebhookConfig;
  /** the `ingest` queue; `add` resolving means Redis stored the job */
  queue: IngestQueue;
  /** group commit into the queue (see IngestProducer) */
  producer?: Partial<IngestProducerOptions>;
  /** where refused bodies are kept, raw, with the reason */
  deadLetters: Pick<DeadLetterStore, 'add'>;
  logger: Logger;
  /** vendor timestamp -> epoch ms in the platform zone; throws on an unreadable one */
  parseTime: (raw: string) => number;
  scrubber?: Pick<SecretScrubber, 'scrub'>;
  /** more routes on the same server (metrics, health, admin); registered before listening */
  plugins?: FastifyPluginAsync[];
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

type Raw = { encoding: 'utf8'; text: string } | { encoding: 'base64'; data: string };

/** The body exactly as received, in a form a JSON store can keep. */
function rawOf(body: Buffer | undefined): string | Raw {
  if (!body || body.length === 0) return '';
  return isUtf8(body) ? body.toString('utf8') : { encoding: 'base64', data: body.toString('base64') };
}

function hasSignatureParams(q: SignatureParams): boolean {
  return q.signature !== undefined || q.nonce !== undefined || q.timestamp !== undefined;
}

/** A device id safe to keep as dead-letter metadata, when the body has one (a mangled id is left out). */
function safeDeviceId(body: Buffer | undefined, parsed: unknown): string | undefined {
  try {
    const value = parsed ?? (body && body.length > 0 ? JSON.parse(body.toString('utf8')) : undefined);
    if (value === null || typeof value !== 'object') return undefined;
    return deviceIdOf((value as { device_id?: unknown }).device_id);
  } catch {
    return undefined;
  }
}

/** Stores one validated push (a job of its own); throws EnqueueError (retryable) when Redis cannot. */
export async function enqueuePush(queue: IngestQueue, push: ValidatedPush, receivedAt: number, timeoutMs = 5000): Promise<void> {
  const producer = new IngestProducer(queue, { timeoutMs });
  await producer.add(push, receivedAt);
}

/** The bytes of a kept body, whichever form `rawOf` (or the ingest worker) gave it. */
export function bodyOfLetter(raw: unknown): Buffer {
  if (typeof raw === 'string') return Buffer.from(raw, 'utf8');
  const r = raw as Partial<Raw> | null;
  if (r && r.encoding === 'base64' && typeof r.data === 'string') return Buffer.from(r.data, 'base64');
  return Buffer.from(JSON.stringify(raw) ?? '', 'utf8');
}

/**
 * Dead-letter retry of kind 'push': the kept body is read and validated again (the code or the
 * configuration may have been fixed since) and enqueued as if it had just arrived — with the
 * time it was set aside, so a status push keeps its original time. Signatures are not checked
 * again: the operator retrying it vouches for it.
 */
export function pushRetryHandler(options: { queue: IngestQueue; parseTime: (raw: string) => number }): RetryHandler {
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
  const { config, queue, deadLetters, logger, parseTime } = options;
  const now = options.now ?? Date.now;
  const scrub = (s: string) => (options.scrubber ? options.scrubber.scrub(s) : s);
  const producer = new IngestProducer(queue, options.producer);

  const app: FastifyInstance = Fastify({
    // pino's Logger is a FastifyBaseLogger; the cast keeps the instance type the default one
    loggerInstance: logger as FastifyBaseLogger,
    // the default request log prints the URL, signature included; we log what matters ourselves
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.bodyLimit,
  });

  // Bodies are read as bytes whatever the content type says: the vendor's content type is not
  // documented, and an unreadable body must still be kept exactly as it came.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: config.bodyLimit }, (_req, body, done) => done(null, body));

  const answer = (reply: FastifyReply, err: unknown) => {
    const a = errorToHttp(err);
    return reply.code(a.status).send(answerBody({ resultCode: a.resultCode, message: scrub(a.message) }));
  };

  const keep = async (reason: string, body: Buffer | undefined, parsed?: unknown): Promise<void> => {
    await deadLetters.add({ kind: 'push', source: 'webhook', reason, raw: rawOf(body), deviceId: safeDeviceId(body, parsed) });
  };

  const enqueue = (push: ValidatedPush, bytes: number) => producer.add(push, now(), bytes);

  app.get(config.path, async (request: FastifyRequest<{ Querystring: SignatureParams }>, reply) => {
    try {
      const nonce = verifySignature(request.query ?? {}, { token: config.token, windowSec: config.timestampWindowSec, now: now() });
      logger.info('webhook handshake verified');
      return reply.code(200).type('text/plain; charset=utf-8').send(nonce);
    } catch (err) {
      logger.warn({ reason: scrub((err as Error).message), ip: request.ip }, 'webhook handshake refused');
      return answer(reply, err);
    }
  });

  app.post(config.path, async (request: FastifyRequest<{ Querystring: SignatureParams }>, reply) => {
    const body = request.body as Buffer | undefined;
    let parsed: unknown;
    let push: ValidatedPush;
    try {
      const q = request.query ?? {};
      if (config.requirePostSignature || hasSignatureParams(q)) {
        verifySignature(q, { token: config.token, windowSec: config.timestampWindowSec, now: now() });
      }
      parsed = readPushBody(body);
      push = validatePush(parsed, { parseTime });
    } catch (err) {
      const a = errorToHttp(err);
      if (a.status >= 500) return answer(reply, err);
      try {
        await keep(a.message, body, parsed);
      } catch (storeErr) {
        // we could neither take nor keep it: ask the platform to send it again
        logger.error({ err: storeErr }, 'refused push could not be kept as a dead letter');
        return answer(reply, new EnqueueError('the refused body could not be kept'));
      }
      logger.warn({ status: a.status, reason: scrub(a.message), bytes: body?.length ?? 0 }, 'push refused and kept as a dead letter');
      return answer(reply, err);
    }
    try {
      await enqueue(push, body?.length ?? 0);
    } catch (err) {
      logger.error({ err, msgType: push.msgType }, 'push not stored: answered with an error so that the platform sends it again');
      return answer(reply, err);
    }
    return reply.code(200).type('application/json; charset=utf-8').send(OK_BODY);
  });

  app.setErrorHandler((err, request, reply) => {
    const a = errorToHttp(err);
    if (a.status >= 500) logger.error({ err, url: request.routeOptions.url }, 'webhook request failed');
    else logger.warn({ status: a.status, reason: scrub(a.message), length: request.headers['content-length'] }, 'webhook request refused');
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

/**
 * The producer side of the `ingest` queue for the webhook. Its Redis connection fails fast
 * (no offline queue, one retry) so that a push arriving while Redis is down is answered 503 at
 * once instead of hanging until the platform times out.
 */
export async function openIngestQueue(
  redis: string | RedisTarget,
  prefix: string,
  logger?: Pick<Logger, 'warn'>,
): Promise<{ queue: Queue<IngestBatchJob>; connection: RedisConnection; close(): Promise<void> }> {
  const connection = createRedis(redis, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
  const queue = new Queue<IngestBatchJob>(QUEUE.ingest, { connection, prefix });
  // an unheard 'error' event would crash the process; Redis being down is reported per push (503)
  let lastReport = 0;
  const report = (err: Error) => {
    if (Date.now() - lastReport < 10_000) return;
    lastReport = Date.now();
    logger?.warn({ err }, 'webhook Redis connection error');
  };
  queue.on('error', report);
  connection.on('error', report);
  await queue.waitUntilReady();
  return {
    queue,
    connection,
    async close() {
      await queue.close();
      await connection.quit().catch(() => connection.disconnect());
    },
  };
}
