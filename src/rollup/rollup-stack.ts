/**
 * The rollup parts of one installation, built in one place: the dirty-hour set (marked by the
 * writer decorator the app puts on every raw write), the dirty-day set (touched when an hour is
 * rolled up), the hourly and daily computers, the `rollup` queue, the record of failing devices
 * (their backoff), and on demand its dispatcher (role `scheduler`). The app builds the worker over
 * the computers, the two sets and `failures`.
 */
import { Queue } from 'bullmq';
import type { InfluxConfig } from '../base/config.js';
import type { Logger } from '../base/log.js';
import type { PointWriter } from '../influx/api.js';
import { detectInfluxApi } from '../influx/api-detect.js';
import type { InfluxQuery } from '../influx/query.js';
import { bullConnection, type RedisConnection as Redis } from '../base/redis.js';
import { QUEUE, type RollupJob } from '../base/jobs.js';
import { DirtyHours } from './dirty-hours.js';
import { DirtyDays } from './dirty-days.js';
import { DayComputer } from './day-computer.js';
import { RollupComputer } from './rollup-computer.js';
import { RollupDispatcher, type RollupDispatcherOptions } from './dispatcher.js';
import { RollupFailures, type RollupBackoff } from './rollup-failures.js';

export interface RollupStackOptions {
  redis: Redis;
  prefix: string;
  influx: Pick<InfluxConfig, 'url' | 'api' | 'rawRetentionMs' | 'hourlyRetentionMs'>;
  query: InfluxQuery;
  /** the unmarked writer of hourly rollups: rollups are not raw rows */
  writer: Pick<PointWriter, 'write'>;
  /** the writer of daily rollups */
  dayWriter: Pick<PointWriter, 'write'>;
  /** the RP the hourly writer writes into (undefined: the default one) */
  hourlyRp?: string;
  /** EXPEED_TIMEZONE: the daily tier's days */
  timezone: string;
  settleMs: number;
  logger: Logger;
  /** the dirty set's clock (tests inject one) */
  now?: () => number;
  /** the backoff of a failing device's rollup (default 1 min doubling to 1 h) */
  failureBackoff?: Partial<RollupBackoff>;
}

export interface RollupStack {
  dirty: DirtyHours;
  days: DirtyDays;
  computer: RollupComputer;
  dayComputer: DayComputer;
  queue: Queue<RollupJob>;
  failures: RollupFailures;
  startDispatcher(overrides?: Partial<RollupDispatcherOptions>): RollupDispatcher;
  /** dispatchers, then the queue (the app closes the workers first) */
  close(): Promise<void>;
}

export function createRollupStack(o: RollupStackOptions): RollupStack {
  const dirty = new DirtyHours({
    redis: o.redis,
    prefix: o.prefix,
    settleMs: o.settleMs,
    ...(o.now ? { now: o.now } : {}),
  });
  let v1: Promise<boolean> | undefined;
  const canDelete = (): Promise<boolean> => {
    if (o.influx.api !== 'auto') return Promise.resolve(o.influx.api === 'v1');
    v1 ??= detectInfluxApi({ url: o.influx.url }).then(
      (d) => d.api === 'v1',
      (err) => {
        v1 = undefined;
        throw err;
      },
    );
    return v1;
  };
  const clock = o.now ? { now: o.now } : {};
  const retention = { rawRetentionMs: o.influx.rawRetentionMs, hourlyRetentionMs: o.influx.hourlyRetentionMs };
  const computer = new RollupComputer({ query: o.query, writer: o.writer, canDelete, ...retention, ...clock });
  const days = new DirtyDays({ redis: o.redis, prefix: o.prefix, timezone: o.timezone, ...clock });
  const dayComputer = new DayComputer({
    query: o.query,
    writer: o.dayWriter,
    canDelete,
    rawFields: (signal) => computer.fields(signal),
    timezone: o.timezone,
    hourlyRp: o.hourlyRp,
    ...retention,
    ...clock,
  });
  const queue = new Queue<RollupJob>(QUEUE.rollup, { connection: bullConnection(o.redis), prefix: o.prefix });
  const failures = new RollupFailures(o.redis, o.prefix, o.failureBackoff);
  const dispatchers: RollupDispatcher[] = [];
  return {
    dirty,
    days,
    computer,
    dayComputer,
    queue,
    failures,
    startDispatcher(overrides = {}) {
      const d = new RollupDispatcher({
        dirty,
        days,
        queue,
        failures,
        settleMs: o.settleMs,
        logger: o.logger,
        ...(o.now ? { now: o.now } : {}),
        ...overrides,
      });
      d.start();
      dispatchers.push(d);
      return d;
    },
    async close() {
      await Promise.allSettled(dispatchers.splice(0).map((d) => d.close()));
      await queue.close();
    },
  };
}
