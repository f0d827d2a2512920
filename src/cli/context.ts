import { secretsOf, type Config } from '../base/config.js';
import { loadConfig } from '../base/load-config.js';
import { createLogger, type Logger } from '../base/log.js';
import { closeRedis, redisAddress, RedisUnreachableError, waitForRedis, type RedisConnection } from '../base/redis.js';
import { SecretScrubber } from '../base/secrets.js';
import { DeviceRegistry } from '../devices/registry.js';
import type { App } from '../app/app.js';
import { mainRedis } from '../app/connections.js';

/** What every command gets: the validated config, a scrubbing logger and lazily opened Redis. */
export interface CommandContext {
  config: Config;
  log: Logger;
  scrubber: SecretScrubber;
  /** opened on first use, closed by `close()` */
  redis(): RedisConnection;
  registry(): DeviceRegistry;
  /**
   * The installation's object graph (src/app) over this context's Redis, built on first use and
   * closed by `close()`; loaded on demand, so that light commands do not load it.
   */
  app(): Promise<App>;
  /**
   * Waits until Redis answers (EXPEED_REDIS_CONNECT_TIMEOUT) and makes every registered device key
   * a secret of the scrubber. Throws RedisUnreachableError, or with `onRetry` waits again after
   * telling it (the long-running service waits for Redis; one-shot commands give up).
   */
  connect(onRetry?: (err: RedisUnreachableError, attempt: number) => void): Promise<void>;
  /** standard output of the command (results), separate from the log (stderr) */
  out(line: string): void;
  /** closes what was opened, in order; every command calls it before returning */
  close(): Promise<void>;
  /** cleanups registered by components the command opened (queues, writers), run by close() first */
  onClose(fn: () => Promise<void> | void): void;
}

export function createContext(env: Record<string, string | undefined> = process.env): CommandContext {
  const config = loadConfig(env);
  const scrubber = new SecretScrubber(secretsOf(config));
  const log = createLogger({ level: config.logLevel, scrubber });
  let redis: RedisConnection | undefined;
  let registry: DeviceRegistry | undefined;
  let app: Promise<App> | undefined;
  const cleanups: Array<() => Promise<void> | void> = [];
  const ctx: CommandContext = {
    config,
    log,
    scrubber,
    redis() {
      redis ??= mainRedis(config, log, 'debug');
      return redis;
    },
    async connect(onRetry) {
      const address = redisAddress(config);
      for (let attempt = 1; ; attempt++) {
        try {
          await waitForRedis(ctx.redis(), address, config.redisConnectTimeoutMs);
          break;
        } catch (err) {
          if (!onRetry || !(err instanceof RedisUnreachableError)) throw err;
          onRetry(err, attempt);
        }
      }
      // said once per process: keys and queues live under the wrapped name, not the configured one
      if (config.prefixWrapped)
        log.info(
          { prefix: config.prefix, redis: address },
          `Redis Cluster: EXPEED_PREFIX is used as "${config.prefix}" (a hash tag keeps every key of a queue in one slot)`,
        );
      // device keys are secrets in every output: dead letters, errors, logs
      for (const d of await ctx.registry().list()) scrubber.add(d.key);
    },
    registry() {
      registry ??= new DeviceRegistry(ctx.redis(), config.prefix);
      return registry;
    },
    app() {
      app ??= import('../app/app.js').then(({ createApp }) => {
        const opened = createApp(config, { logger: log, scrubber, redis: ctx.redis() });
        ctx.onClose(() => opened.close());
        return opened;
      });
      return app;
    },
    out(line) {
      process.stdout.write(`${line}\n`);
    },
    onClose(fn) {
      cleanups.push(fn);
    },
    async close() {
      for (const fn of cleanups.reverse()) await fn();
      if (redis) await closeRedis(redis);
    },
  };
  return ctx;
}
