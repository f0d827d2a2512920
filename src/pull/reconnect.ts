/**
 * Re-reads after a reconnect. A device that was offline buffers its rows and uploads them when it
 * is back: the platform then holds rows stamped inside the offline span, which the nightly (past
 * its checkpoint) and the gap check (it leaves offline spans out) never read.
 *
 * Every status observation — a msg_type 1 push (ingest worker) or a `device_status` answer (status
 * poll) — goes through `ReconnectWatch.observe`. The device's presence is kept in Redis
 * (`<prefix>:presence`: device id -> "online:since:seen", epoch ms; an observation older than the
 * one recorded changes nothing). When an online observation ends an offline span longer than
 * RECONNECT_MIN_OFFLINE_MS, a `reconnect` job goes to the backfill queue, delayed until the device
 * has been online EXPEED_RECONNECT_SETTLE, with the job id `reconnect|<device>|<offline since>`:
 * replicas that see the same reconnect add the same job once (BullMQ ignores an id it holds), and a
 * delayed job lives in Redis, so a restart before the settle time still runs it. The job is added
 * before the presence is recorded online: a process that dies in between leaves the device offline
 * in Redis, and the next observation adds the same id again (a no-op when the first add landed).
 *
 * The job (`ReconnectRunner`) re-reads from the last row InfluxDB holds before the offline
 * observation (the device may have stopped sending before the status said so; at most one backfill
 * window earlier, else from the offline observation itself) up to the online observation, window by
 * window through the lookback (the backfill's walk, compared hour by hour, only rows InfluxDB lacks
 * or holds with other values written through the one write path, counted in
 * `expeed_late_rows_total` and per device).
 */
import type { JobsOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { redisKey } from '../base/redis.js';
import { type BackfillJob } from '../base/jobs.js';
import { MEASUREMENT } from '../influx/api.js';
import { influxIdent, influxString, type InfluxQuery } from '../influx/query.js';
import type { CallOptions } from '../platform/api.js';
import { DEFAULT_BACKFILL_JOB_OPTIONS } from './backfill-queue.js';
import type { BackfillProgress } from './backfill-runner.js';
import type { LookbackRunner } from './lookback.js';
import { splitWindows } from './windows.js';

/** An offline span at most this long (ms) queues no re-read: a blip between two pushes, say. */
export const RECONNECT_MIN_OFFLINE_MS = 60_000;

// newer observations only; a change of state starts a new span, the same state moves `seen` on
const RECORD_PRESENCE = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local at = tonumber(ARGV[3])
if cur then
  local state, since, seen = string.match(cur, '^([01]):(%-?%d+):(%-?%d+)$')
  if seen and tonumber(seen) > at then return cur end
  if state == ARGV[2] then
    redis.call('HSET', KEYS[1], ARGV[1], state .. ':' .. since .. ':' .. ARGV[3])
    return cur
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. ARGV[3] .. ':' .. ARGV[3])
return cur or false
`;

export interface Presence {
  online: boolean;
  /** when the current state was first observed */
  since: number;
  /** the newest observation */
  seen: number;
}

export function parsePresence(raw: string | null | undefined): Presence | undefined {
  const m = /^([01]):(-?\d+):(-?\d+)$/.exec(raw ?? '');
  return m ? { online: m[1] === '1', since: Number(m[2]), seen: Number(m[3]) } : undefined;
}

/** The job id of one reconnect: the same for every replica that sees it (BullMQ ids must not contain ':'). */
export function reconnectJobId(deviceId: string, offlineSince: number): string {
  return `reconnect|${Buffer.from(deviceId, 'utf8').toString('base64url')}|${offlineSince}`;
}

/** Drops the presence of ids no longer (or never) registered, so that pushes of unknown ids do not grow the hash. */
export async function prunePresence(
  redis: Pick<Redis, 'hgetall' | 'hdel'>,
  prefix: string,
  keep: ReadonlySet<string>,
): Promise<number> {
  const key = redisKey(prefix, 'presence');
  const gone = Object.keys(await redis.hgetall(key)).filter((id) => !keep.has(id));
  if (gone.length) await redis.hdel(key, ...gone);
  return gone.length;
}

export interface ReconnectWatchOptions {
  redis: Pick<Redis, 'hget' | 'eval'>;
  prefix: string;
  queue: Pick<Queue<BackfillJob>, 'add'>;
  /** EXPEED_RECONNECT_SETTLE, ms */
  settleMs: number;
  now?: () => number;
}

export class ReconnectWatch {
  private readonly key: string;
  private readonly now: () => number;

  constructor(private readonly o: ReconnectWatchOptions) {
    this.key = redisKey(o.prefix, 'presence');
    this.now = o.now ?? Date.now;
  }

  async presence(deviceId: string): Promise<Presence | undefined> {
    return parsePresence(await this.o.redis.hget(this.key, deviceId));
  }

  /**
   * Records one status observation at `at` (epoch ms). Returns the re-read queued when it ends an
   * offline span longer than RECONNECT_MIN_OFFLINE_MS (also when another replica queued it first).
   */
  async observe(deviceId: string, online: boolean, at: number): Promise<BackfillJob | undefined> {
    let queued: BackfillJob | undefined;
    const before = online ? await this.presence(deviceId) : undefined;
    if (before && !before.online && at >= before.seen && at - before.since > RECONNECT_MIN_OFFLINE_MS) {
      queued = { deviceId, from: before.since, to: at, reason: 'reconnect' };
      const opts: JobsOptions = {
        ...DEFAULT_BACKFILL_JOB_OPTIONS,
        jobId: reconnectJobId(deviceId, before.since),
        delay: Math.max(0, at + this.o.settleMs - this.now()),
      };
      await this.o.queue.add(deviceId, queued, opts);
    }
    await this.o.redis.eval(RECORD_PRESENCE, 1, this.key, deviceId, online ? '1' : '0', String(at));
    return queued;
  }
}

export interface ReconnectRunnerOptions {
  query: Pick<InfluxQuery, 'rows'>;
  lookback: Pick<LookbackRunner, 'run'>;
  /** window length (EXPEED_BACKFILL_WINDOW): the re-read goes window by window, and looks at most this far back for the last row */
  windowMs: number;
  gridOffset?: (t: number) => number;
}

export class ReconnectRunner {
  constructor(private readonly o: ReconnectRunnerOptions) {}

  /** The time of the newest `device_data` point at or before `at`, within one window before it. */
  async lastRowBefore(deviceId: string, at: number): Promise<number | undefined> {
    const q = `SELECT * FROM ${influxIdent(MEASUREMENT.data)} WHERE ${influxIdent('device_id')} = ${influxString(deviceId)} AND time <= ${at}ms AND time > ${at - this.o.windowMs}ms ORDER BY time DESC LIMIT 1`;
    const [row] = await this.o.query.rows(q);
    return row === undefined ? undefined : Number(row.time);
  }

  /** One reconnect job: [last row before the offline span, online observation) re-read through the lookback. */
  async run(job: BackfillJob, call?: CallOptions): Promise<BackfillProgress & { lateRows: number }> {
    const from = (await this.lastRowBefore(job.deviceId, job.from)) ?? job.from;
    let pages = 0;
    let lateRows = 0;
    for (const w of splitWindows(from, job.to, this.o.windowMs, this.o.gridOffset)) {
      const r = await this.o.lookback.run(
        {
          deviceId: job.deviceId,
          from: w.from,
          to: w.to,
          reason: 'lookback',
          ...(job.useReserve ? { useReserve: true } : {}),
        },
        call,
      );
      pages += r.pages;
      lateRows += r.lateRows;
    }
    return {
      deviceId: job.deviceId,
      from,
      to: job.to,
      position: job.to,
      fraction: 1,
      pages,
      points: lateRows,
      unreadable: 0,
      resumedFrom: from,
      lateRows,
    };
  }
}
