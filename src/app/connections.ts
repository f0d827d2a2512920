/**
 * Every Redis connection of the installation is opened here, by kind: the main one (stores, queues,
 * the token budget), the webhook's fail-fast one (the ingest queue, its dead letters and nonces), and
 * one per ingest worker (BullMQ blocks on it). The CLI opens its main connection here too, before
 * (or without) building the app.
 */
import type { Config } from '../base/config.js';
import type { Logger } from '../base/log.js';
import { LogLimiter } from '../base/log-limiter.js';
import { createRedis, type RedisConnection } from '../base/redis.js';
import { INGEST_QUEUE_REDIS } from '../push/ingest-queue.js';

/** Stores, queues and the token budget; commands wait (offline queue) while Redis reconnects. */
export function mainRedis(
  config: Config,
  logger: Pick<Logger, 'warn' | 'debug'>,
  level: 'warn' | 'debug' = 'warn',
): RedisConnection {
  // one line per 10 s while Redis is away, with the count of errors not logged
  const limiter = new LogLimiter();
  return createRedis(config, {}, (err) => {
    const notLoggedBefore = limiter.admit('redis');
    if (notLoggedBefore !== undefined) logger[level]({ err: err.message, notLoggedBefore }, 'Redis connection error');
  });
}

/** The webhook's: one retry, no offline queue, so that a push is answered 503 at once while Redis is down. */
export function failFastRedis(config: Config): RedisConnection {
  return createRedis(config, INGEST_QUEUE_REDIS);
}

/** A worker's own blocking connection (BullMQ leaves a connection it was handed open: closed with the worker). */
export function workerRedis(config: Config, logger: Pick<Logger, 'debug'>): RedisConnection {
  return createRedis(config, {}, (err) => logger.debug({ err: err.message }, 'worker Redis connection error'));
}
