import { MEASUREMENT } from '../influx/api.js';
import { influxString, type InfluxQuery } from '../influx/query.js';
import {
  DEFAULT_GAP_RULES,
  estimateCadence,
  findHoles,
  gapThreshold,
  offlineWindows,
  subtractWindows,
  type BucketCount,
  type GapRules,
} from './gaps.js';
import type { Window } from './windows.js';
import { withDefaults } from '../base/options.js';

export interface DeviceGaps {
  deviceId: string;
  from: number;
  to: number;
  /** the device's median interval between points, when its data says */
  cadenceMs?: number;
  /** shortest hole reported */
  thresholdMs?: number;
  gaps: Window[];
  /** time inside holes that was skipped because the device was offline */
  offlineMs: number;
  /** why nothing could be judged, when that is the case */
  note?: string;
}

export interface GapFinderOptions {
  query: Pick<InfluxQuery, 'rows'>;
  rules?: Partial<GapRules>;
  /** EXPEED_RAW_RETENTION, ms: nothing older than now − this is a gap (InfluxDB expired it) */
  rawRetentionMs?: number;
  now?: () => number;
}

/** Most buckets asked for in one query: a month at one-minute buckets is ~43k. */
const BUCKETS_PER_QUERY = 20_000;

/**
 * Finds holes in a device's data in InfluxDB: windows without points where the device's own
 * recent cadence says there should be some, minus the times its status says it was offline.
 */
export class GapFinder {
  private readonly rules: GapRules;

  constructor(private readonly options: GapFinderOptions) {
    this.rules = withDefaults(DEFAULT_GAP_RULES, options.rules);
  }

  async scan(deviceId: string, from: number, to: number, signal?: AbortSignal): Promise<DeviceGaps> {
    return (await this.scanMany([deviceId], from, to, signal))[0]!;
  }

  /**
   * The same judgement for many devices, read in a few `GROUP BY "device_id"` queries per step
   * (cadence samples, the point before the range, bucket counts per bucket width, statuses) of up
   * to FLEET_CHUNK devices each, instead of 2–5 queries per device. Results in the order of `ids`.
   */
  async scanMany(ids: readonly string[], from: number, to: number, signal?: AbortSignal): Promise<DeviceGaps[]> {
    // a hole older than the retention is expired data: reporting (and refilling) it would fight InfluxDB
    const cutoff =
      this.options.rawRetentionMs === undefined
        ? -Infinity
        : (this.options.now ?? Date.now)() - this.options.rawRetentionMs;
    if (to <= cutoff)
      return ids.map((deviceId) => ({
        deviceId,
        from,
        to,
        gaps: [],
        offlineMs: 0,
        note: 'older than EXPEED_RAW_RETENTION: its raw rows have expired',
      }));
    const scan: Scan = { from: Math.max(from, cutoff), to, signal, out: new Map() };
    if (!(scan.from < to)) return ids.map((id) => ({ ...empty(scan, id), note: 'empty range' }));
    const judged = await this.judgeCadences(scan, ids);
    const holes = await this.bucketHoles(scan, judged);
    await this.subtractOffline(scan, judged, holes);
    return ids.map((id) => scan.out.get(id)!);
  }

  /**
   * Each device's cadence and threshold, and whether it has a point before the range; a device whose
   * cadence cannot be known gets its result (with a note) in `scan.out` and is not judged.
   */
  private async judgeCadences(scan: Scan, ids: readonly string[]): Promise<Map<string, Judged>> {
    const { from, to, signal } = scan;
    const q = this.options.query;
    // cadence from the newest points up to `to` (the range itself may be mostly hole)
    const recent = await perDevice(
      q,
      ids,
      (w) =>
        `SELECT * FROM "${MEASUREMENT.data}" WHERE ${w} AND time < ${to}ms GROUP BY "device_id" ORDER BY time DESC LIMIT ${this.rules.cadenceSampleSize}`,
      signal,
    );
    const judged = new Map<string, Judged>();
    for (const id of ids) {
      const sample = recent.get(id) ?? [];
      const cadenceMs = estimateCadence(
        sample.map((r) => Number(r.time)),
        this.rules.minSamples,
      );
      if (cadenceMs === undefined) {
        scan.out.set(id, {
          ...empty(scan, id),
          note:
            sample.length === 0
              ? 'no data in InfluxDB yet: nothing to compare with (run a backfill first)'
              : `only ${sample.length} points before the end of the range: too few to know the device's cadence`,
        });
        continue;
      }
      // the cadence sample often reaches back past `from` already (slow devices): then no query is needed to know
      judged.set(id, {
        cadenceMs,
        ...gapThreshold(cadenceMs, this.rules),
        before: sample.some((r) => Number(r.time) < from),
      });
    }
    const unknownBefore = [...judged].filter(([, j]) => !j.before).map(([id]) => id);
    const before = await perDevice(
      q,
      unknownBefore,
      (w) =>
        `SELECT * FROM "${MEASUREMENT.data}" WHERE ${w} AND time < ${from}ms GROUP BY "device_id" ORDER BY time DESC LIMIT 1`,
      signal,
    );
    for (const id of unknownBefore) judged.get(id)!.before = (before.get(id)?.length ?? 0) > 0;
    return judged;
  }

  /**
   * The holes of each judged device, from bucket counts (one set of queries per bucket width); a
   * device without holes gets its result in `scan.out`.
   */
  private async bucketHoles(scan: Scan, judged: Map<string, Judged>): Promise<Map<string, Window[]>> {
    const { from, to } = scan;
    const byWidth = new Map<number, string[]>();
    for (const [id, j] of judged) byWidth.set(j.bucketMs, [...(byWidth.get(j.bucketMs) ?? []), id]);
    const holes = new Map<string, Window[]>();
    for (const [bucketMs, group] of byWidth) {
      const buckets = await this.bucketCounts(scan, bucketMs, group);
      for (const id of group) {
        const j = judged.get(id)!;
        const found = findHoles(buckets.get(id)!, {
          from,
          to,
          bucketMs,
          thresholdMs: j.thresholdMs,
          dataBefore: j.before,
        });
        if (found.length) holes.set(id, found);
        else scan.out.set(id, { ...empty(scan, id), cadenceMs: j.cadenceMs, thresholdMs: j.thresholdMs });
      }
    }
    return holes;
  }

  /** Points per `bucketMs` bucket of the range for each device of `group`, queried BUCKETS_PER_QUERY at a time. */
  private async bucketCounts(scan: Scan, bucketMs: number, group: string[]): Promise<Map<string, BucketCount[]>> {
    const { from, to, signal } = scan;
    const buckets = new Map<string, BucketCount[]>(group.map((id) => [id, []]));
    const start = Math.floor(from / bucketMs) * bucketMs;
    for (let a = start; a < to; a += bucketMs * BUCKETS_PER_QUERY) {
      const b = Math.min(to, a + bucketMs * BUCKETS_PER_QUERY);
      const rows = await perDevice(
        this.options.query,
        group,
        (w) =>
          `SELECT count(*) FROM "${MEASUREMENT.data}" WHERE ${w} AND time >= ${a}ms AND time < ${b}ms GROUP BY time(${bucketMs / 1000}s), "device_id" fill(0)`,
        signal,
      );
      for (const [id, rs] of rows) {
        for (const r of rs) {
          let count = 0;
          for (const [k, v] of Object.entries(r)) if (k.startsWith('count') && typeof v === 'number') count += v;
          buckets.get(id)?.push({ time: Number(r.time), count });
        }
      }
    }
    return buckets;
  }

  /** The gaps of each holed device: its holes minus the windows its statuses say it was offline, into `scan.out`. */
  private async subtractOffline(scan: Scan, judged: Map<string, Judged>, holes: Map<string, Window[]>): Promise<void> {
    const { from, to, signal } = scan;
    const q = this.options.query;
    const holed = [...holes.keys()];
    const statuses = await perDevice(
      q,
      holed,
      (w) =>
        `SELECT "online" FROM "${MEASUREMENT.status}" WHERE ${w} AND time >= ${from}ms AND time < ${to}ms GROUP BY "device_id" ORDER BY time`,
      signal,
    );
    const last = await perDevice(
      q,
      holed,
      (w) =>
        `SELECT "online" FROM "${MEASUREMENT.status}" WHERE ${w} AND time < ${from}ms GROUP BY "device_id" ORDER BY time DESC LIMIT 1`,
      signal,
    );
    for (const [id, found] of holes) {
      const j = judged.get(id)!;
      const lastOnline = last.get(id)?.[0]?.online;
      const offline = offlineWindows(
        (statuses.get(id) ?? [])
          .filter((s) => typeof s.online === 'boolean')
          .map((s) => ({ time: Number(s.time), online: s.online as boolean })),
        from,
        to,
        typeof lastOnline === 'boolean' ? lastOnline : undefined,
      );
      const gaps = subtractWindows(found, offline, j.thresholdMs);
      const holeMs = found.reduce((s, h) => s + h.to - h.from, 0);
      const gapMs = gaps.reduce((s, g) => s + g.to - g.from, 0);
      scan.out.set(id, {
        ...empty(scan, id),
        cadenceMs: j.cadenceMs,
        thresholdMs: j.thresholdMs,
        gaps,
        offlineMs: Math.max(0, holeMs - gapMs),
      });
    }
  }
}

/** One `scanMany` call: the range (clipped to the retention) and the results found so far, by device. */
interface Scan {
  from: number;
  to: number;
  signal?: AbortSignal;
  out: Map<string, DeviceGaps>;
}

/** What the cadence sample says of a device: its cadence, the hole threshold and bucket width, a point before the range. */
interface Judged {
  cadenceMs: number;
  thresholdMs: number;
  bucketMs: number;
  before: boolean;
}

/** A device's result without gaps over the scan's range. */
const empty = (scan: Scan, deviceId: string): DeviceGaps => ({
  deviceId,
  from: scan.from,
  to: scan.to,
  gaps: [],
  offlineMs: 0,
});

/** Devices named in one query's WHERE clause: a few hundred keep each answer and the query text small. */
const FLEET_CHUNK = 250;

/** Runs `query(where)` over `ids` in chunks; its rows by device_id (the query groups by it). */
async function perDevice(
  q: Pick<InfluxQuery, 'rows'>,
  ids: readonly string[],
  query: (where: string) => string,
  signal?: AbortSignal,
): Promise<Map<string, Array<Record<string, unknown>>>> {
  const out = new Map<string, Array<Record<string, unknown>>>();
  for (let i = 0; i < ids.length; i += FLEET_CHUNK) {
    const where = `(${ids
      .slice(i, i + FLEET_CHUNK)
      .map((id) => `"device_id" = ${influxString(id)}`)
      .join(' OR ')})`;
    for (const r of await q.rows(query(where), signal)) {
      const id = r.device_id;
      if (typeof id !== 'string') continue;
      let list = out.get(id);
      if (!list) out.set(id, (list = []));
      list.push(r);
    }
  }
  return out;
}
