/**
 * The nightly lookback: history a device's checkpoint already covers is re-read (EXPEED_LOOKBACK
 * before the checkpoint), because the platform receives rows late (devices upload what they
 * buffered while offline). Each window is compared with InfluxDB hour by hour first
 * (history-compare.ts, over the backfill's walk) and only the rows InfluxDB lacks or holds with
 * other values are written — through the one write path, which marks their hours dirty for the
 * rollups. Rows already held are neither counted nor rewritten. Late rows are counted per device in
 * Redis (`<prefix>:late-rows`, shown by `status`) and in `expeed_late_rows_total`.
 */
import type { Redis } from 'ioredis';
import { redisKey } from '../base/redis.js';
import { type BackfillJob } from '../base/jobs.js';
import type { PointWriter } from '../influx/api.js';
import type { DeviceRegistry } from '../devices/registry.js';
import { UnknownDeviceError } from '../base/failure.js';
import type { CallOptions } from '../platform/api.js';
import type { Checkpoint } from './checkpoints.js';
import { compareWindow, type HistoryCompareOptions } from './history-compare.js';
import type { BackfillProgress } from './backfill-runner.js';

/** The lookback requests of a nightly slot: [checkpoint - lookback, checkpoint) of each device that has one. */
export function lookbackRequests(
  ids: readonly string[],
  checkpoints: ReadonlyMap<string, Checkpoint>,
  lookbackMs = 0,
): BackfillJob[] {
  if (!(lookbackMs > 0)) return [];
  const out: BackfillJob[] = [];
  for (const id of ids) {
    const upTo = checkpoints.get(id)?.upTo;
    if (upTo !== undefined) out.push({ deviceId: id, from: upTo - lookbackMs, to: upTo, reason: 'lookback' });
  }
  return out;
}

/** Late rows found per device, in Redis. */
export class LateRows {
  constructor(
    private readonly redis: Pick<Redis, 'hincrby' | 'hgetall'>,
    private readonly prefix: string,
  ) {}

  async add(deviceId: string, n: number): Promise<void> {
    if (n > 0) await this.redis.hincrby(redisKey(this.prefix, 'late-rows'), deviceId, n);
  }

  async all(): Promise<Map<string, number>> {
    return new Map(
      Object.entries(await this.redis.hgetall(redisKey(this.prefix, 'late-rows'))).map(([k, v]) => [k, Number(v)]),
    );
  }
}

export interface LookbackRunnerOptions extends HistoryCompareOptions {
  writer: Pick<PointWriter, 'write'>;
  registry: Pick<DeviceRegistry, 'get'>;
  lateRows: Pick<LateRows, 'add'>;
  /** late rows written (expeed_late_rows_total) */
  onLateRows?: (deviceId: string, n: number) => void;
}

export class LookbackRunner {
  constructor(private readonly o: LookbackRunnerOptions) {}

  /** One lookback window: compared, its late rows written and counted; the checkpoint is not touched (the window is behind it). */
  async run(job: BackfillJob, call?: CallOptions): Promise<BackfillProgress & { lateRows: number }> {
    const device = await this.o.registry.get(job.deviceId);
    if (!device) throw new UnknownDeviceError(job.deviceId);
    const c = await compareWindow(this.o, { id: device.id, key: device.key }, job.from, job.to, call);
    const late = c.repair.write;
    if (late.length) await this.o.writer.write(late, { source: 'pull', signal: call?.signal });
    // counted once written: a job retried after a failed write counts them then
    await this.o.lateRows.add(job.deviceId, late.length);
    this.o.onLateRows?.(job.deviceId, late.length);
    return {
      deviceId: job.deviceId,
      from: job.from,
      to: job.to,
      position: job.to,
      fraction: 1,
      pages: c.pages,
      points: late.length,
      unreadable: 0,
      resumedFrom: job.from,
      lateRows: late.length,
    };
  }
}
