import { MEASUREMENT } from '../influx/api.js';
import { influxString, type InfluxQuery } from '../influx/query.js';
import { DEFAULT_GAP_RULES, estimateCadence, findHoles, gapThreshold, offlineWindows, subtractWindows, type BucketCount, type GapRules } from './gaps.js';
import type { Window } from './windows.js';

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
    this.rules = { ...DEFAULT_GAP_RULES, ...options.rules };
  }

  async scan(deviceId: string, from: number, to: number, signal?: AbortSignal): Promise<DeviceGaps> {
    const q = this.options.query;
    // a hole older than the retention is expired data: reporting (and refilling) it would fight InfluxDB
    const cutoff = this.options.rawRetentionMs === undefined ? -Infinity : (this.options.now ?? Date.now)() - this.options.rawRetentionMs;
    if (to <= cutoff) return { deviceId, from, to, gaps: [], offlineMs: 0, note: 'older than EXPEED_RAW_RETENTION: its raw rows have expired' };
    from = Math.max(from, cutoff);
    const dev = `"device_id" = ${influxString(deviceId)}`;
    const base: DeviceGaps = { deviceId, from, to, gaps: [], offlineMs: 0 };
    if (!(from < to)) return { ...base, note: 'empty range' };

    // cadence from the newest points up to `to` (the range itself may be mostly hole)
    const recent = await q.rows(`SELECT * FROM "${MEASUREMENT.data}" WHERE ${dev} AND time < ${to}ms ORDER BY time DESC LIMIT ${this.rules.cadenceSampleSize}`, signal);
    const cadenceMs = estimateCadence(
      recent.map((r) => Number(r.time)),
      this.rules.minSamples,
    );
    if (cadenceMs === undefined) {
      return { ...base, note: recent.length === 0 ? 'no data in InfluxDB yet: nothing to compare with (run a backfill first)' : `only ${recent.length} points before the end of the range: too few to know the device's cadence` };
    }
    const { thresholdMs, bucketMs } = gapThreshold(cadenceMs, this.rules);

    // the cadence sample often reaches back past `from` already (slow devices): then no query is needed to know
    const sampledBefore = recent.some((r) => Number(r.time) < from);
    const before = sampledBefore ? [true] : await q.rows(`SELECT * FROM "${MEASUREMENT.data}" WHERE ${dev} AND time < ${from}ms ORDER BY time DESC LIMIT 1`, signal);
    const buckets: BucketCount[] = [];
    const start = Math.floor(from / bucketMs) * bucketMs;
    for (let a = start; a < to; a += bucketMs * BUCKETS_PER_QUERY) {
      const b = Math.min(to, a + bucketMs * BUCKETS_PER_QUERY);
      const rows = await q.rows(`SELECT count(*) FROM "${MEASUREMENT.data}" WHERE ${dev} AND time >= ${a}ms AND time < ${b}ms GROUP BY time(${bucketMs / 1000}s) fill(0)`, signal);
      for (const r of rows) {
        let count = 0;
        for (const [k, v] of Object.entries(r)) if (k.startsWith('count') && typeof v === 'number') count += v;
        buckets.push({ time: Number(r.time), count });
      }
    }
    const holes = findHoles(buckets, { from, to, bucketMs, thresholdMs, dataBefore: before.length > 0 });
    if (holes.length === 0) return { ...base, cadenceMs, thresholdMs };

    const statuses = await q.rows(`SELECT "online" FROM "${MEASUREMENT.status}" WHERE ${dev} AND time >= ${from}ms AND time < ${to}ms ORDER BY time`, signal);
    const last = await q.rows(`SELECT "online" FROM "${MEASUREMENT.status}" WHERE ${dev} AND time < ${from}ms ORDER BY time DESC LIMIT 1`, signal);
    const offline = offlineWindows(
      statuses.filter((s) => typeof s.online === 'boolean').map((s) => ({ time: Number(s.time), online: s.online as boolean })),
      from,
      to,
      typeof last[0]?.online === 'boolean' ? (last[0].online as boolean) : undefined,
    );
    const gaps = subtractWindows(holes, offline, thresholdMs);
    const holeMs = holes.reduce((s, h) => s + h.to - h.from, 0);
    const gapMs = gaps.reduce((s, g) => s + g.to - g.from, 0);
    return { ...base, cadenceMs, thresholdMs, gaps, offlineMs: Math.max(0, holeMs - gapMs) };
  }
}
