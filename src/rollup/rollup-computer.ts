/**
 * Computes hourly rollups from the raw rows in InfluxDB and writes them through the writer.
 * Reads are InfluxQL over `/query`: 1.x natively, 2.x and Cloud through the v1 compatibility
 * endpoint (a DBRP mapping of the bucket); InfluxDB 3 Core/Enterprise answers InfluxQL on the same
 * `/query` path (see docs/grafana.md). An hour whose raw rows are all gone loses its rollup where
 * InfluxQL `DELETE` exists (1.x); elsewhere the old rollup stays (documented). With a raw retention,
 * hours older than it are left alone: their rollup outlives the raw rows on purpose.
 */
import type { PointWriter } from '../influx/api.js';
import type { InfluxQuery } from '../influx/query.js';
import { influxIdent, influxString } from '../influx/query.js';
import { MEASUREMENT } from '../influx/api.js';
import { HOUR_MS, hourOf } from './dirty-hours.js';
import { fieldKeysQuery, fieldKinds, rollupPoints, rollupQuery, type FieldKinds } from './rollup-query.js';
import { withDefaults } from '../base/options.js';

export interface RollupComputerOptions {
  query: Pick<InfluxQuery, 'rows' | 'series'>;
  /** the writer without the dirty-hour marker (rollups are not raw data) */
  writer: Pick<PointWriter, 'write'>;
  /** whether InfluxQL `DELETE` works on this server (1.x) */
  canDelete: () => Promise<boolean>;
  /** hours per InfluxQL query (default 31 days): bounds the answer's size */
  hoursPerQuery: number;
  /** EXPEED_RAW_RETENTION, ms: hours starting before now − this are never recomputed (their raw rows may be gone) */
  rawRetentionMs?: number;
  /** EXPEED_HOURLY_RETENTION, ms: hours starting before now − this are not written (InfluxDB would drop them; their days come from the raw rows) */
  hourlyRetentionMs?: number;
  now: () => number;
}

export const DEFAULT_ROLLUP_COMPUTER: Pick<RollupComputerOptions, 'hoursPerQuery' | 'now'> = {
  hoursPerQuery: 31 * 24,
  now: Date.now,
};

export interface RollupResult {
  /** hours computed */
  hours: number;
  /** rollup points written (one per device and hour with data) */
  points: number;
  /** hours without any raw row whose rollup was deleted */
  emptied: number;
  /** hours left alone because they start before the raw retention (their rollup is all that is left) or the hourly one */
  expired: number;
}

/** Sorted, distinct hour starts grouped into runs of consecutive hours, each at most `max` long: [from, to). */
export function hourRuns(hours: Iterable<number>, max: number): Array<[from: number, to: number]> {
  const sorted = [...new Set([...hours].map(hourOf))].sort((a, b) => a - b);
  const runs: Array<[number, number]> = [];
  for (const h of sorted) {
    const last = runs.at(-1);
    if (last && last[1] === h && (last[1] - last[0]) / HOUR_MS < max) last[1] = h + HOUR_MS;
    else runs.push([h, h + HOUR_MS]);
  }
  return runs;
}

export class RollupComputer {
  private readonly o: RollupComputerOptions;

  constructor(
    options: Omit<RollupComputerOptions, keyof typeof DEFAULT_ROLLUP_COMPUTER> & Partial<RollupComputerOptions>,
  ) {
    this.o = withDefaults(DEFAULT_ROLLUP_COMPUTER, options);
  }

  async fields(signal?: AbortSignal): Promise<FieldKinds> {
    return fieldKinds(await this.o.query.rows(fieldKeysQuery(), signal));
  }

  /** Recomputes the given hours (any ms inside them) of one device, or of every device when undefined. */
  async hours(deviceId: string | undefined, hours: Iterable<number>, signal?: AbortSignal): Promise<RollupResult> {
    const fields = await this.fields(signal);
    const total: RollupResult = { hours: 0, points: 0, emptied: 0, expired: 0 };
    // an hour whose raw rows (partly) expired would be rolled up short, or deleted as empty
    const cutoff = Math.max(
      ...[this.o.rawRetentionMs, this.o.hourlyRetentionMs].map((ms) =>
        ms === undefined ? -Infinity : this.o.now() - ms,
      ),
    );
    const all = [...new Set([...hours].map(hourOf))];
    const kept = all.filter((h) => h >= cutoff);
    total.expired = all.length - kept.length;
    for (const [from, to] of hourRuns(kept, this.o.hoursPerQuery)) {
      const r = await this.run(fields, deviceId, from, to, signal);
      total.hours += r.hours;
      total.points += r.points;
      total.emptied += r.emptied;
    }
    return total;
  }

  /** Recomputes every hour of [from, to) (widened to whole hours). */
  async range(deviceId: string | undefined, from: number, to: number, signal?: AbortSignal): Promise<RollupResult> {
    const hours: number[] = [];
    for (let h = hourOf(from); h < to; h += HOUR_MS) hours.push(h);
    return this.hours(deviceId, hours, signal);
  }

  private async run(
    fields: FieldKinds,
    deviceId: string | undefined,
    from: number,
    to: number,
    signal?: AbortSignal,
  ): Promise<RollupResult> {
    const hours = (to - from) / HOUR_MS;
    const any = fields.numeric.length + fields.other.length > 0;
    const points = any ? rollupPoints(await this.o.query.series(rollupQuery(fields, from, to, deviceId), signal)) : [];
    if (points.length) await this.o.writer.write(points, { source: 'rollup', signal });
    // hours left without data (a manual delete) must not keep a rollup of what is gone
    let emptied = 0;
    if (deviceId !== undefined && (await this.o.canDelete())) {
      const full = new Set(points.map((p) => p.time));
      for (const [a, b] of hourRuns(
        Array.from({ length: hours }, (_, i) => from + i * HOUR_MS).filter((h) => !full.has(h)),
        hours,
      )) {
        await this.o.query.series(
          `DELETE FROM ${influxIdent(MEASUREMENT.rollup)} WHERE ${influxIdent('device_id')} = ${influxString(deviceId)} AND time >= ${a}ms AND time < ${b}ms`,
          signal,
        );
        emptied += (b - a) / HOUR_MS;
      }
    }
    return { hours, points: points.length, emptied, expired: 0 };
  }
}
