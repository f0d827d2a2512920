/**
 * The webhook's Fastify instance: bounded in time and connections, no request log of its own (a
 * URL carries the signature), and every body read as bytes whatever its content type says — the
 * vendor's content type is not documented, and an unreadable body must be kept exactly as it came.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { WebhookConfig } from '../base/config.js';
import type { Logger } from '../base/log.js';

export function webhookFastify(config: WebhookConfig, logger: Logger): FastifyInstance {
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
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: config.bodyLimit }, (_req, body, done) =>
    done(null, body),
  );
  return app;
}
