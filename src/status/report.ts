/**
 * What `expeed-sync status` shows, gathered as plain data: devices (online, last data, checkpoint,
 * failures), queues, the token budget and dead letters. Each section is read on its own, so a
 * down InfluxDB still leaves the Redis-backed sections readable (and says what failed).
 */
import type { Queue } from 'bullmq';
import type { DeviceRegistry } from '../devices/registry.js';
import type { DeadLetterStore } from '../influx/api.js';
import type { DeadLetterBudget, RedisDeadLetterStore } from '../dead-letters/store.js';
import type { InfluxQuery } from '../influx/query.js';
import type { TokenUsage } from '../platform/token/usage.js';
import type { Checkpoints } from '../pull/checkpoints.js';
import type { PlatformNewestStore } from '../pull/quiet-check.js';
import type { DirtyHours, RollupBacklog } from '../rollup/dirty-hours.js';
import type { DirtyDays } from '../rollup/dirty-days.js';
import type { RedisPersistence } from '../ops/redis-persistence.js';
import type { CooldownWaits } from '../pull/cooldown-waits.js';
import type { RollupFailure, RollupFailures } from '../rollup/rollup-failures.js';
import type { PlatformProfile, PlatformProfileStore } from '../platform/platform-profile.js';
import { failedJobsPerDevice, isFailing } from './failing-devices.js';

export interface DeviceStatusRow {
  id: string;
  name?: string;
  /** from the newest device_status point (poll or push); undefined when none is known */
  online?: boolean;
  onlineAt?: number;
  /** newest device_data point in InfluxDB */
  lastDataAt?: number;
  /** the platform's newest row time, from the last currentDatapoints call (before a nightly or catch-up walk) */
  platformNewestAt?: number;
  /** when that call was made */
  platformAskedAt?: number;
  /** everything before it is in InfluxDB */
  checkpoint?: number;
  failure?: { code: number; message: string; at: number };
  /** failed backfill jobs of this device kept in the queue */
  failedJobs: number;
  /** see deviceState */
  state: DeviceState;
}

/**
 * failing: the platform refused it (registry mark) or backfill jobs of it failed; never synced: no
 * checkpoint and no data yet; stale: its checkpoint (or, without one, its newest data) is older
 * than `staleAfterMs` (default 2 x the nightly interval: the nightly run is not keeping up).
 */
export type DeviceState = 'ok' | 'failing' | 'stale' | 'never synced';
export const DEVICE_STATES: readonly DeviceState[] = ['ok', 'failing', 'stale', 'never synced'];

function deviceState(d: Omit<DeviceStatusRow, 'state'>, now: number, staleAfterMs: number): DeviceState {
  if (isFailing(d, d.failedJobs)) return 'failing';
  const synced = d.checkpoint ?? d.lastDataAt;
  if (synced === undefined) return 'never synced';
  return now - synced > staleAfterMs ? 'stale' : 'ok';
}

export interface StatusReport {
  at: number;
  /** devices by state; every device is counted once */
  summary: Record<DeviceState, number>;
  /** the age past which a device is stale, ms */
  staleAfterMs: number;
  devices: DeviceStatusRow[];
  queues: Record<string, Record<string, number>>;
  token?: TokenUsage;
  /** backfill jobs delayed until a credentials cool-down ends */
  cooldownWaits?: { jobs: number; until?: number };
  deadLetters?: number;
  deadLetterBudget?: DeadLetterBudget;
  /** dirty hours waiting for their rollup */
  rollupBacklog?: RollupBacklog;
  /** dirty days waiting for their daily rollup (`hours` counts days) */
  rollupDayBacklog?: RollupBacklog;
  /** devices whose rollup keeps failing (backing off), the most failures first */
  rollupFailures?: RollupFailure[];
  /** EXPEED_RAW_RETENTION in effect, ms (absent: raw rows are kept forever) */
  rawRetentionMs?: number;
  /** EXPEED_HOURLY_RETENTION in effect, ms (absent: hourly rollups are kept forever) */
  hourlyRetentionMs?: number;
  /** Redis persistence (AOF, RDB, none, unknown), read from every master of a cluster */
  redisPersistence?: RedisPersistence;
  /** what the history walks learned about the platform (src/platform/platform-profile.ts); absent before any walk ended */
  platform?: PlatformProfile;
  /** sections that could not be read, with why */
  errors: Record<string, string>;
}

export interface StatusSources {
  registry: Pick<DeviceRegistry, 'list'>;
  checkpoints: Pick<Checkpoints, 'getMany'>;
  influx: Pick<InfluxQuery, 'series'>;
  queues: Array<Pick<Queue, 'name' | 'getJobCounts' | 'getFailed'>>;
  backfillQueueName: string;
  tokens: { usage(): Promise<TokenUsage> };
  cooldownWaits?: Pick<CooldownWaits, 'waiting'>;
  deadLetters: Pick<DeadLetterStore, 'count'> & Partial<Pick<RedisDeadLetterStore, 'budget'>>;
  platformNewest?: Pick<PlatformNewestStore, 'all'>;
  rollups?: Pick<DirtyHours, 'backlog'>;
  rollupDays?: Pick<DirtyDays, 'backlog'>;
  rollupFailures?: Pick<RollupFailures, 'list'>;
  rawRetentionMs?: number;
  hourlyRetentionMs?: number;
  /** reads the Redis persistence mode (src/ops/redis-persistence.ts) */
  persistence?: () => Promise<RedisPersistence>;
  platformProfile?: Pick<PlatformProfileStore, 'get'>;
  now?: () => number;
  /** default DEFAULT_STALE_AFTER_MS */
  staleAfterMs?: number;
}

/** 2 x the default nightly interval (one day) */
export const DEFAULT_STALE_AFTER_MS = 2 * 86_400_000;

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** device_id -> [time, row] of the newest point of a measurement, one query for all devices. */
async function newestPerDevice(
  influx: Pick<InfluxQuery, 'series'>,
  q: string,
): Promise<Map<string, Record<string, unknown>>> {
  const out = new Map<string, Record<string, unknown>>();
  for (const s of await influx.series(q)) {
    const id = s.tags?.device_id;
    const v = s.values[0];
    if (id === undefined || !v) continue;
    out.set(id, Object.fromEntries(s.columns.map((c, i) => [c, v[i]])));
  }
  return out;
}

/** Runs a section's read: its value, or undefined with the reason recorded under the section's name. */
type Guard = <T>(section: string, fn: () => Promise<T>) => Promise<T | undefined>;

export async function gatherStatus(src: StatusSources): Promise<StatusReport> {
  const errors: Record<string, string> = {};
  const guard: Guard = async (section, fn) => {
    try {
      return await fn();
    } catch (err) {
      errors[section] = message(err);
      return undefined;
    }
  };
  const read = await readSections(src, guard);
  const cooldownWaits = src.cooldownWaits ? await guard('token', () => src.cooldownWaits!.waiting()) : undefined;
  const deadLetterBudget = src.deadLetters.budget
    ? await guard('dead letters', () => src.deadLetters.budget!())
    : undefined;
  const at = (src.now ?? Date.now)();
  const staleAfterMs = src.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  // every device's checkpoint in a few pipelined round trips (one each took seconds at 10k devices)
  const checkpoints = await guard('checkpoints', () => src.checkpoints.getMany((read.devices ?? []).map((d) => d.id)));
  const rows = deviceRows(read, checkpoints, at, staleAfterMs);
  const rollupBacklog = src.rollups ? await guard('rollups', () => src.rollups!.backlog()) : undefined;
  const rollupDayBacklog = src.rollupDays ? await guard('rollups', () => src.rollupDays!.backlog()) : undefined;
  const rollupFailures = src.rollupFailures ? await guard('rollups', () => src.rollupFailures!.list()) : undefined;
  const redisPersistence = src.persistence ? await guard('redis persistence', src.persistence) : undefined;
  const platform = src.platformProfile ? await guard('platform profile', () => src.platformProfile!.get()) : undefined;
  const summary = Object.fromEntries(DEVICE_STATES.map((st) => [st, 0])) as Record<DeviceState, number>;
  for (const r of rows) summary[r.state]++;
  return {
    at,
    summary,
    staleAfterMs,
    devices: rows,
    queues: read.queueCounts ?? {},
    token: read.token,
    cooldownWaits,
    deadLetters: read.deadLetters,
    deadLetterBudget,
    rollupBacklog,
    rollupDayBacklog,
    rollupFailures,
    rawRetentionMs: src.rawRetentionMs,
    hourlyRetentionMs: src.hourlyRetentionMs,
    redisPersistence,
    platform,
    errors,
  };
}

/** The sections read at once: devices, their newest data and status, queues, failed jobs, token, dead letters. */
async function readSections(src: StatusSources, guard: Guard) {
  const [devices, lastData, lastStatus, queueCounts, failedJobs, token, deadLetters, platformNewest] =
    await Promise.all([
      guard('devices', () => src.registry.list()),
      guard('influxdb', () =>
        newestPerDevice(src.influx, 'SELECT * FROM "device_data" GROUP BY "device_id" ORDER BY time DESC LIMIT 1'),
      ),
      guard('influxdb', () =>
        newestPerDevice(
          src.influx,
          'SELECT "online" FROM "device_status" GROUP BY "device_id" ORDER BY time DESC LIMIT 1',
        ),
      ),
      guard('queues', async () =>
        Object.fromEntries(
          await Promise.all(
            src.queues.map(
              async (q) =>
                [q.name, await q.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed')] as const,
            ),
          ),
        ),
      ),
      guard('queues', () => failedJobsPerDevice(src.queues.find((x) => x.name === src.backfillQueueName))),
      guard('token', () => src.tokens.usage()),
      guard('dead letters', () => src.deadLetters.count()),
      guard('platform newest', async () => (await src.platformNewest?.all()) ?? new Map()),
    ]);
  return { devices, lastData, lastStatus, queueCounts, failedJobs, token, deadLetters, platformNewest };
}

/** One row per registered device, from what `readSections` read and the checkpoints, with its state. */
function deviceRows(
  read: Awaited<ReturnType<typeof readSections>>,
  checkpoints: Awaited<ReturnType<Checkpoints['getMany']>> | undefined,
  at: number,
  staleAfterMs: number,
): DeviceStatusRow[] {
  const { lastData, lastStatus, platformNewest, failedJobs } = read;
  const rows: DeviceStatusRow[] = [];
  for (const d of read.devices ?? []) {
    const status = lastStatus?.get(d.id);
    const checkpoint = checkpoints?.get(d.id);
    const row: Omit<DeviceStatusRow, 'state'> = {
      id: d.id,
      name: d.name,
      online: typeof status?.online === 'boolean' ? status.online : undefined,
      onlineAt: typeof status?.time === 'number' ? status.time : undefined,
      lastDataAt: typeof lastData?.get(d.id)?.time === 'number' ? (lastData.get(d.id)!.time as number) : undefined,
      platformNewestAt: platformNewest?.get(d.id)?.newestAt,
      platformAskedAt: platformNewest?.get(d.id)?.askedAt,
      checkpoint: checkpoint?.upTo,
      failure: d.failure,
      failedJobs: failedJobs?.get(d.id) ?? 0,
    };
    rows.push({ ...row, state: deviceState(row, at, staleAfterMs) });
  }
  return rows;
}
