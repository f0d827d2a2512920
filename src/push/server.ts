/**
 * The webhook: GET = the vendor's URL verification handshake, POST = pushes. A push is answered
 * `result_code` 0 only after BullMQ stored it in Redis; a body we refuse is kept as a dead letter.
 * Authentication is a hook of the POST route; every refusal and fault is thrown to the one error
 * handler (push-failures.ts), which counts, logs and scrubs it once.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { WebhookConfig } from '../base/config.js';
import type { DeadLetterStore } from '../influx/api.js';
import { DeadLetterBudgetError } from '../dead-letters/store.js';
import type { Logger } from '../base/log.js';
import type { SecretScrubber } from '../base/secrets.js';
import { EnqueueError, IngestProducer, type IngestProducerOptions, type IngestQueue } from './ingest-producer.js';
import { answerBody, errorToHttp, RESULT_CODE } from './errors-to-http.js';
import { deviceIdOf, readPushBody, validatePush, type ValidatedPush } from './push-schema.js';
import { verifySignature, type SignatureParams } from './signature.js';
import { checkJsonBounds, DEFAULT_JSON_BOUNDS, type JsonBounds } from './json-bounds.js';
import { nonceTtlSec, ReplayError, type NonceStore } from './replay.js';
import { Refusals, type RefusalReason } from './request-refusals.js';
import { DEFAULT_MAX_RAW_BYTES, rawOf } from './raw-body.js';
import type { RedisHeadroom } from './redis-headroom.js';
import { LogLimiter } from '../base/log-limiter.js';
import { webhookFastify } from './fastify-instance.js';
import { PushFailure, webhookErrorHandler } from './push-failures.js';

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

type PushRequest = FastifyRequest<{ Querystring: SignatureParams }>;

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
    if (parsed === null || typeof parsed !== 'object') return undefined;
    return deviceIdOf((parsed as { device_id?: unknown }).device_id);
  } catch {
    return undefined;
  }
}

/** The parts of the POST route: authentication (a hook), reading a push, storing it. */
class PushRoute {
  /** the claimed signature of a request, released when its push cannot be stored */
  private readonly signed = new WeakMap<FastifyRequest, string>();
  readonly producer: IngestProducer;
  private readonly now: () => number;

  constructor(private readonly o: WebhookServerOptions) {
    this.producer = new IngestProducer(o.queue, o.producer);
    this.now = o.now ?? Date.now;
  }

  verify(q: SignatureParams): string {
    const { config, parseTime } = this.o;
    return verifySignature(q, {
      token: config.token,
      windowSec: config.timestampWindowSec,
      now: this.now(),
      parseTime,
    });
  }

  /** preHandler: checks the signature of a POST when there is one (or one is required) and claims its nonce. */
  readonly authenticate = async (request: PushRequest): Promise<void> => {
    const { config, nonces } = this.o;
    const q = request.query ?? {};
    if (!config.requirePostSignature && !hasSignatureParams(q)) return;
    this.verify(q);
    const signature = String(q.signature).toLowerCase();
    let fresh: boolean;
    try {
      fresh = await nonces.claim(signature, nonceTtlSec(config.timestampWindowSec));
    } catch (err) {
      throw new PushFailure('not-checked', new EnqueueError('the nonce could not be checked in Redis', { cause: err }));
    }
    if (!fresh) throw new ReplayError();
    this.signed.set(request, signature);
  };

  /** The validated push of a body; a refused one is kept as a dead letter and thrown as a PushFailure. */
  async read(body: Buffer | undefined): Promise<ValidatedPush> {
    let parsed: unknown;
    try {
      if (body) checkJsonBounds(body, this.o.jsonBounds ?? DEFAULT_JSON_BOUNDS);
      parsed = readPushBody(body);
      return validatePush(parsed, { parseTime: this.o.parseTime });
    } catch (err) {
      const a = errorToHttp(err);
      if (a.status >= 500) throw err;
      try {
        await this.o.deadLetters.add({
          kind: 'push',
          source: 'webhook',
          reason: a.message,
          raw: rawOf(body, this.o.maxRawBytes ?? DEFAULT_MAX_RAW_BYTES),
          deviceId: safeDeviceId(parsed),
        });
      } catch (storeErr) {
        if (storeErr instanceof DeadLetterBudgetError) throw new PushFailure('budget', err);
        throw new PushFailure('not-kept', new EnqueueError('the refused body could not be kept'), {
          storeError: storeErr,
        });
      }
      throw new PushFailure('kept', err);
    }
  }

  /** The POST handler: read, store, answer 0 once Redis holds the push. */
  readonly handle = async (request: PushRequest, reply: FastifyReply) => {
    const body = request.body as Buffer | undefined;
    const push = await this.read(body);
    try {
      await this.producer.add(push, this.now(), body?.length ?? 0);
    } catch (err) {
      // the platform sends the same signed request again: its nonce must then be accepted
      const signed = this.signed.get(request);
      if (signed) await this.o.nonces.release(signed).catch(() => undefined);
      throw new PushFailure('not-stored', err, { msgType: push.msgType });
    }
    return reply.code(200).type('application/json; charset=utf-8').send(OK_BODY);
  };
}

export async function createWebhookServer(options: WebhookServerOptions): Promise<WebhookServer> {
  const { config, logger } = options;
  const now = options.now ?? Date.now;
  const scrub = (s: string) => (options.scrubber ? options.scrubber.scrub(s) : s);
  const refusals = new Refusals(logger, { now, onRefused: options.onRefused });
  const app = webhookFastify(config, logger);
  const route = new PushRoute(options);
  // a Redis outage fails every push alike: one line per 10 s per kind, with the count not logged
  app.setErrorHandler(
    webhookErrorHandler({ logger, refusals, faults: new LogLimiter({ now }), scrub, path: config.path }),
  );

  // Redis near full: refused before the body is read, nothing kept, so that the workers can drain it
  const headroom = options.headroom;
  if (headroom) {
    app.addHook('onRequest', async (request, reply) => {
      if (request.method !== 'POST' || request.routeOptions.url !== config.path) return;
      const why = headroom.refusal();
      if (why === undefined) return;
      refusals.note(
        'redis-full',
        { reason: why, ip: request.ip },
        'push refused unread: Redis near full; the platform sends it again',
      );
      return reply
        .code(503)
        .send(
          answerBody({ resultCode: RESULT_CODE.unavailable, message: `temporarily unavailable, send again: ${why}` }),
        );
    });
  }

  app.get(config.path, async (request: PushRequest, reply) => {
    const nonce = route.verify(request.query ?? {});
    logger.info('webhook handshake verified');
    return reply.code(200).type('text/plain; charset=utf-8').send(nonce);
  });
  app.post(config.path, { preHandler: route.authenticate }, route.handle);

  for (const plugin of options.plugins ?? []) await app.register(plugin);

  return {
    app,
    listen: () => app.listen({ host: config.host, port: config.port }),
    async close() {
      await app.close();
      await route.producer.close();
    },
  };
}

export { ingestQueueOn, INGEST_QUEUE_REDIS, type OpenIngestQueue } from './ingest-queue.js';
