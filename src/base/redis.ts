/**
 * Redis connections every component shares: one node or a cluster (REDIS_URL, REDIS_CLUSTER_NODES),
 * the keys of shared state under the installation's prefix, BullMQ's connection options, and
 * waiting for, naming and closing a connection.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { ConnectionOptions } from 'bullmq';
import { ExpeedError } from './retry.js';

/** Redis key of shared state, under the installation's prefix: `redisKey('expeed', 'token')` -> `expeed:token`. */
export function redisKey(prefix: string, ...parts: string[]): string {
  return [prefix, ...parts].join(':');
}

/** One Redis node or a Redis Cluster: every component takes either (they share the command API). */
export type RedisConnection = Redis | Cluster;

export interface ClusterNode {
  host: string;
  port: number;
}

/** Where Redis is: REDIS_URL, or a cluster's startup nodes with REDIS_URL's credentials and TLS. */
export interface RedisTarget {
  redisUrl: string;
  redisClusterNodes?: ClusterNode[];
}

/**
 * A Redis connection. BullMQ workers need `maxRetriesPerRequest: null` (blocking commands wait
 * through reconnects); commands that must fail fast (the webhook's enqueue) pass a number.
 * Every connection gets an error listener here: without one ioredis prints a stack trace per failed
 * reconnect ("Unhandled error event"). Pass `onError` to report; the last error also names the cause
 * in `waitForRedis`. With `redisClusterNodes` the connection is an ioredis Cluster; `options` then
 * apply to each node's connection (user, password and TLS from the URL), except the offline queue
 * and the lazy connect, which are the cluster's own.
 */
export function createRedis(target: string, options?: RedisOptions, onError?: (err: Error) => void): Redis;
export function createRedis(
  target: string | RedisTarget,
  options?: RedisOptions,
  onError?: (err: Error) => void,
): RedisConnection;
export function createRedis(
  target: string | RedisTarget,
  options: RedisOptions = {},
  onError?: (err: Error) => void,
): RedisConnection {
  const { redisUrl, redisClusterNodes } =
    typeof target === 'string' ? { redisUrl: target, redisClusterNodes: undefined } : target;
  const merged: RedisOptions = { maxRetriesPerRequest: null, enableReadyCheck: true, ...options };
  const redis: RedisConnection = redisClusterNodes?.length
    ? new Cluster(redisClusterNodes, clusterOptions(redisUrl, merged))
    : new Redis(redisUrl, merged);
  redis.on('error', (err: Error) => {
    lastErrors.set(redis, err);
    onError?.(err);
  });
  return redis;
}

function clusterOptions(redisUrl: string, options: RedisOptions): ClusterOptions {
  const url = new URL(redisUrl);
  const { enableOfflineQueue, lazyConnect, retryStrategy, ...nodeOptions } = options;
  return {
    enableOfflineQueue,
    lazyConnect,
    // a cluster reconnects as a whole; the per-node strategy decides when to try again
    clusterRetryStrategy: retryStrategy,
    redisOptions: {
      ...nodeOptions,
      username: url.username ? decodeURIComponent(url.username) : undefined,
      password: url.password ? decodeURIComponent(url.password) : undefined,
      tls: url.protocol === 'rediss:' ? {} : undefined,
    },
  };
}

export function isCluster(redis: RedisConnection): redis is Cluster {
  return redis instanceof Cluster;
}

/**
 * The `connection` BullMQ gets for queues and workers built over `redis`: on one node its options
 * (BullMQ opens and closes connections of its own), on a cluster the Cluster itself (options cannot
 * name a cluster; BullMQ shares it and duplicates it for a worker's blocking connection).
 */
export function bullConnection(redis: RedisConnection): ConnectionOptions {
  return isCluster(redis) ? redis : { ...redis.options, maxRetriesPerRequest: null };
}

/**
 * BullMQ's prefix on a cluster must hold a hash tag so that a queue's keys share one slot; ours
 * then puts every key of the installation in that slot (checked by test/integration/cluster.test.ts).
 */
export function clusterPrefix(prefix: string): string {
  return /\{[^{}]+\}/.test(prefix) ? prefix : `{${prefix}}`;
}

const lastErrors = new WeakMap<RedisConnection, Error>();

/** Redis did not answer within the connect timeout. Retrying later can help (it may be starting). */
export class RedisUnreachableError extends ExpeedError {
  constructor(
    /** host:port, never the password */
    readonly address: string,
    /** the socket error code (ECONNREFUSED, ENOTFOUND...) or what Redis answered */
    readonly reason: string,
  ) {
    super(`cannot reach Redis at ${address} (${reason})`, { retryable: true });
  }
}

/** host:port of a Redis URL, or the cluster's nodes: what messages show of it (the URL may carry a password). */
export function redisAddress(target: string | RedisTarget): string {
  if (typeof target !== 'string' && target.redisClusterNodes?.length) {
    return `cluster ${target.redisClusterNodes.map((n) => `${n.host}:${n.port}`).join(',')}`;
  }
  const u = new URL(typeof target === 'string' ? target : target.redisUrl);
  return `${u.hostname}:${u.port || '6379'}`;
}

function reasonOf(err: Error | undefined, timeoutMs: number): string {
  if (!err) return `no answer within ${timeoutMs} ms`;
  const code = (err as NodeJS.ErrnoException).code;
  return code ?? err.message.split('\n')[0];
}

/**
 * Resolves once `redis` answers PING; rejects with RedisUnreachableError after `timeoutMs`. The
 * connection keeps reconnecting either way: the caller decides whether to wait again or give up.
 */
export async function waitForRedis(redis: RedisConnection, address: string, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const ping = redis.ping();
  // a PING still queued when the caller gives up is rejected on disconnect: nobody waits for it then
  ping.catch(() => undefined);
  try {
    await Promise.race([
      ping.catch((err: Error) => {
        throw new RedisUnreachableError(address, reasonOf(err, timeoutMs));
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new RedisUnreachableError(address, reasonOf(lastErrors.get(redis), timeoutMs))),
          timeoutMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Closes a connection: politely when it is up, at once when it is not (QUIT would wait for a reconnect). */
export async function closeRedis(redis: RedisConnection): Promise<void> {
  if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
  else redis.disconnect();
}
