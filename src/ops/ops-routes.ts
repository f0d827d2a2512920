import { timingSafeEqual, createHash } from 'node:crypto';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Queue } from 'bullmq';
import type { Metrics } from './metrics.js';

/** What a check may say besides ok and failed: working, but an operator should look. */
export interface Degraded {
  degraded: string;
}

/**
 * One dependency that /readyz checks; `check` throws (or resolves false) when it is not ready, and
 * resolves `{ degraded }` when it works but not fully (/readyz stays 200 then, status "degraded").
 */
export interface ReadinessCheck {
  name: string;
  check(): Promise<boolean | void | Degraded>;
}

export interface OpsRoutesOptions {
  metrics: Metrics;
  /** refreshes the scrape-time gauges (token budget, queue depths, dead letters) */
  collect: () => Promise<void>;
  readiness: ReadinessCheck[];
  /** the queues shown on /admin/queues */
  queues: Queue[];
  /** Bull Board at /admin/queues only when both are set (basic auth) */
  admin?: { user: string; password: string };
  /** per readiness check, ms (default 2000) */
  checkTimeoutMs?: number;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time check of an `Authorization: Basic` header. */
function basicAuthOk(header: string | undefined, admin: { user: string; password: string }): boolean {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)$/.exec(header ?? '');
  if (!m) return false;
  const given = Buffer.from(m[1], 'base64').toString('utf8');
  return timingSafeEqual(digest(given), digest(`${admin.user}:${admin.password}`));
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The operator's routes: /healthz (the process is up), /readyz (Redis, InfluxDB and the workers),
 * /metrics (Prometheus) and, with ADMIN_USER/ADMIN_PASSWORD, Bull Board at /admin/queues.
 */
export function opsRoutes(options: OpsRoutesOptions): FastifyPluginAsync {
  const timeout = options.checkTimeoutMs ?? 2000;
  return async (app: FastifyInstance) => {
    app.get('/healthz', async (_req, reply) => reply.type('application/json').send({ status: 'ok' }));

    app.get('/readyz', async (_req, reply) => {
      const results = await Promise.all(
        options.readiness.map(async (c) => {
          try {
            const ok = await withTimeout(c.check(), timeout, c.name);
            if (ok && typeof ok === 'object')
              return { name: c.name, ok: true, say: `degraded: ${ok.degraded}`, degraded: true };
            return { name: c.name, ok: ok !== false, say: ok === false ? 'not ready' : 'ok', degraded: false };
          } catch (err) {
            return { name: c.name, ok: false, say: (err as Error).message, degraded: false };
          }
        }),
      );
      const ready = results.every((r) => r.ok);
      const status = !ready ? 'not ready' : results.some((r) => r.degraded) ? 'degraded' : 'ready';
      return reply
        .code(ready ? 200 : 503)
        .type('application/json')
        .send({ status, checks: Object.fromEntries(results.map((r) => [r.name, r.say])) });
    });

    app.get('/metrics', async (_req, reply) => {
      // a failed refresh must not hide the counters: serve what we have
      await options.collect().catch(() => undefined);
      return reply.type(options.metrics.registry.contentType).send(await options.metrics.registry.metrics());
    });

    if (options.admin) await app.register(bullBoard(options.queues, options.admin));
  };
}

function bullBoard(queues: Queue[], admin: { user: string; password: string }): FastifyPluginAsync {
  return async (app) => {
    const [{ createBullBoard }, { BullMQAdapter }, { FastifyAdapter }] = await Promise.all([
      import('@bull-board/api'),
      import('@bull-board/api/bullMQAdapter'),
      import('@bull-board/fastify'),
    ]);
    const adapter = new FastifyAdapter();
    adapter.setBasePath('/admin/queues');
    createBullBoard({ queues: queues.map((q) => new BullMQAdapter(q)), serverAdapter: adapter });
    // this context is the board's own: it parses JSON (the webhook reads raw bytes) and asks for a password
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
      try {
        done(null, body === '' ? {} : JSON.parse(body as string));
      } catch (err) {
        done(err as Error, undefined);
      }
    });
    app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
      if (basicAuthOk(req.headers.authorization, admin)) return;
      await reply
        .code(401)
        .header('www-authenticate', 'Basic realm="expeed-sync queues"')
        .send({ error: 'authentication required' });
    });
    await app.register(adapter.registerPlugin(), { prefix: '/admin/queues' });
  };
}
