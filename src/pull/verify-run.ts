/**
 * Verification of a device range: window by window (the backfill's window grid), the platform's
 * history compared with InfluxDB hour by hour (history-compare.ts); with `repair`, what is missing
 * or different is written through the one write path (which re-marks the rollups), extra points are
 * deleted (their hours marked dirty too), and the window is compared again.
 */
import type { Redis } from 'ioredis';
import type { CallOptions, DeviceRef } from '../platform/api.js';
import { MEASUREMENT, type PointWriter } from '../influx/api.js';
import { influxIdent, influxString, type InfluxQuery } from '../influx/query.js';
import { redisKey } from '../base/redis.js';
import { UnknownDeviceError } from '../base/failure.js';
import {
  compareWindow,
  HOUR,
  type HistoryCompareOptions,
  type HourComparison,
  type HourResult,
} from './history-compare.js';
import { splitWindows } from './windows.js';

export interface VerifyOptions extends HistoryCompareOptions {
  query: Pick<InfluxQuery, 'rows'>;
  writer: Pick<PointWriter, 'write'>;
  /** marks hours dirty for the rollups (the writer marks those it writes; deletions come here) */
  markHours: (touched: Map<string, number[]>) => Promise<unknown>;
  /** window length (EXPEED_BACKFILL_WINDOW) */
  windowMs: number;
  gridOffset?: (t: number) => number;
}

export interface VerifiedHour extends HourComparison {
  /** the hour differed and was repaired: a second comparison found it equal */
  repaired?: boolean;
}

export interface DeviceVerification {
  deviceId: string;
  hours: VerifiedHour[];
  /** history requests made (both passes) */
  pages: number;
  /** points written and removed by the repair */
  written: number;
  removed: number;
}

/** Deletes `device_data` points of a device at the given times (InfluxQL DELETE; 1.x). */
export async function deletePoints(
  query: Pick<InfluxQuery, 'rows'>,
  deviceId: string,
  times: readonly number[],
): Promise<void> {
  for (const t of times)
    await query.rows(
      `DELETE FROM ${influxIdent(MEASUREMENT.data)} WHERE ${influxIdent('device_id')} = ${influxString(deviceId)} AND time = ${t}ms`,
    );
}

export async function verifyDevice(
  o: VerifyOptions,
  device: DeviceRef,
  from: number,
  to: number,
  run: { repair: boolean; call?: CallOptions; onWindow?: (hours: VerifiedHour[]) => void | Promise<void> },
): Promise<DeviceVerification> {
  const out: DeviceVerification = { deviceId: device.id, hours: [], pages: 0, written: 0, removed: 0 };
  for (const w of splitWindows(from, to, o.windowMs, o.gridOffset)) {
    const first = await compareWindow(o, device, w.from, w.to, run.call);
    out.pages += first.pages;
    let hours: VerifiedHour[] = first.hours;
    const { write, remove } = first.repair;
    if (run.repair && (write.length || remove.length)) {
      if (remove.length) {
        await deletePoints(o.query, device.id, remove);
        await o.markHours(new Map([[device.id, [...new Set(remove.map((t) => Math.floor(t / HOUR) * HOUR))]]]));
      }
      if (write.length) await o.writer.write(write, { source: 'pull', signal: run.call?.signal });
      out.written += write.length;
      out.removed += remove.length;
      const second = await compareWindow(o, device, w.from, w.to, run.call);
      out.pages += second.pages;
      const after = new Map(second.hours.map((h) => [h.hour, h]));
      hours = first.hours.map((h) => {
        const again = after.get(h.hour);
        if (h.result === 'equal' || !again) return h;
        return again.result === 'equal' ? { ...h, repaired: true } : again;
      });
    }
    out.hours.push(...hours);
    await run.onWindow?.(hours);
  }
  return out;
}

/** Hours by result, and repaired hours, over many verifications. */
export interface VerifyTotals {
  equal: number;
  missing: number;
  extra: number;
  differing: number;
  repaired: number;
}

export function totalsOf(hours: readonly VerifiedHour[]): VerifyTotals {
  const t: VerifyTotals = { equal: 0, missing: 0, extra: 0, differing: 0, repaired: 0 };
  for (const h of hours) {
    if (h.repaired) t.repaired++;
    else t[h.result as HourResult]++;
  }
  return t;
}

/** the range the scheduled verification checks: each device's previous 7 days */
export const VERIFY_SPAN_MS = 7 * 86_400_000;

export interface LastVerification extends VerifyTotals {
  at: number;
  devices: number;
  from: number;
  to: number;
}

/** The last verification's totals in Redis (`<prefix>:verify:last`), for `status`. */
export class VerifyLedger {
  constructor(
    private readonly redis: Pick<Redis, 'hset' | 'hgetall' | 'hincrby' | 'del'>,
    private readonly prefix: string,
  ) {}

  async record(v: LastVerification): Promise<void> {
    await this.redis.hset(
      redisKey(this.prefix, 'verify', 'last'),
      Object.fromEntries(Object.entries(v).map(([k, n]) => [k, String(n)])),
    );
  }

  /** A scheduled run begins: its totals start at zero and grow as its jobs end (`add`). */
  async start(run: Pick<LastVerification, 'at' | 'devices' | 'from' | 'to'>): Promise<void> {
    const key = redisKey(this.prefix, 'verify', 'last');
    await this.redis.del(key);
    await this.redis.hset(key, {
      at: String(run.at),
      devices: String(run.devices),
      from: String(run.from),
      to: String(run.to),
    });
  }

  async add(t: VerifyTotals): Promise<void> {
    const key = redisKey(this.prefix, 'verify', 'last');
    for (const [k, n] of Object.entries(t)) if (n) await this.redis.hincrby(key, k, n);
  }

  async last(): Promise<LastVerification | undefined> {
    const h = await this.redis.hgetall(redisKey(this.prefix, 'verify', 'last'));
    if (h.at === undefined) return undefined;
    const n = (k: string) => Number(h[k] ?? 0);
    return {
      at: n('at'),
      devices: n('devices'),
      from: n('from'),
      to: n('to'),
      equal: n('equal'),
      missing: n('missing'),
      extra: n('extra'),
      differing: n('differing'),
      repaired: n('repaired'),
    };
  }
}

/** A scheduled `verify` window as a backfill-queue job: verified and repaired, its totals added to the ledger. */
export class VerifyJobRunner {
  constructor(
    private readonly o: VerifyOptions & {
      registry: { get(id: string): Promise<DeviceRef | undefined> };
      ledger: Pick<VerifyLedger, 'add'>;
      /** hours by result (expeed_verify_hours_total); repaired hours as 'repaired' */
      onTotals?: (t: VerifyTotals) => void;
    },
  ) {}

  async run(job: {
    deviceId: string;
    from: number;
    to: number;
    useReserve?: boolean;
  }): Promise<VerifyTotals & { deviceId: string; from: number; to: number }> {
    const device = await this.o.registry.get(job.deviceId);
    // not retryable: the worker ends the job at once (UnrecoverableError) instead of retrying it
    if (!device) throw new UnknownDeviceError(job.deviceId);
    const v = await verifyDevice(this.o, { id: device.id, key: device.key }, job.from, job.to, {
      repair: true,
      call: { useReserve: job.useReserve },
    });
    const totals = totalsOf(v.hours);
    await this.o.ledger.add(totals);
    this.o.onTotals?.(totals);
    return { deviceId: job.deviceId, from: job.from, to: job.to, ...totals };
  }
}
