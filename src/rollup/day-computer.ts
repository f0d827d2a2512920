/**
 * Computes daily rollups (`device_data_1d`) of one device and writes them through the writer. A
 * day is read from `device_data_1h` (24 points, InfluxDB combines them: ./day-query.ts), except
 * where the hours cannot answer it and the raw rows still can: a day whose midnights are not on
 * UTC hours (a zone offset by a half or quarter hour: an hour straddles the midnight) and a day
 * older than EXPEED_HOURLY_RETENTION (its hours may be gone) are computed from the raw rows
 * (`GROUP BY time(1d) tz()`, the same aggregates). A day whose source is gone is left alone: its
 * rollup is all that is left. A day without any hour loses its rollup where InfluxQL `DELETE`
 * exists (1.x).
 */
import { MEASUREMENT, type PointWriter } from '../influx/api.js';
import type { InfluxQuery } from '../influx/query.js';
import { influxIdent, influxString } from '../influx/query.js';
import { platformDay } from '../platform/timestamp.js';
import { HOUR_MS } from './dirty-hours.js';
import { dayQuery, hourlyFieldKinds, hourlySource } from './day-query.js';
import { rollupPoints, rollupQuery, type FieldKinds } from './rollup-query.js';
import { withDefaults } from '../base/options.js';

export interface DayComputerOptions {
  query: Pick<InfluxQuery, 'rows' | 'series'>;
  /** the writer of daily rollups (`rollups_forever` when a retention is set) */
  writer: Pick<PointWriter, 'write'>;
  /** whether InfluxQL `DELETE` works on this server (1.x) */
  canDelete: () => Promise<boolean>;
  /** the raw rows' datapoints and kinds (RollupComputer.fields) */
  rawFields: (signal?: AbortSignal) => Promise<FieldKinds>;
  /** EXPEED_TIMEZONE: the days are its days */
  timezone: string;
  /** the RP holding `device_data_1h` (undefined: the default one) */
  hourlyRp?: string;
  /** EXPEED_HOURLY_RETENTION, ms: older days are computed from the raw rows */
  hourlyRetentionMs?: number;
  /** EXPEED_RAW_RETENTION, ms: a day that needs raw rows older than this is left alone */
  rawRetentionMs?: number;
  /** days per InfluxQL query (default 31) */
  daysPerQuery: number;
  now: () => number;
}

export const DEFAULT_DAY_COMPUTER: Pick<DayComputerOptions, 'daysPerQuery' | 'now'> = {
  daysPerQuery: 31,
  now: Date.now,
};

export interface DayResult {
  /** days computed */
  days: number;
  /** daily points written */
  points: number;
  /** days without any hour whose daily rollup was deleted */
  emptied: number;
  /** days left alone because their source expired */
  expired: number;
}

type Source = 'hourly' | 'raw' | 'expired';
interface DayRun {
  source: Source;
  days: Array<{ start: number; end: number }>;
}

export class DayComputer {
  private readonly o: DayComputerOptions;

  constructor(options: Omit<DayComputerOptions, keyof typeof DEFAULT_DAY_COMPUTER> & Partial<DayComputerOptions>) {
    this.o = withDefaults(DEFAULT_DAY_COMPUTER, options);
  }

  /** Where a day (start, end) is read from now. */
  private source(start: number, end: number): Source {
    const cut = (ms: number | undefined) => (ms === undefined ? -Infinity : this.o.now() - ms);
    if (start % HOUR_MS === 0 && end % HOUR_MS === 0 && start >= cut(this.o.hourlyRetentionMs)) return 'hourly';
    return start >= cut(this.o.rawRetentionMs) ? 'raw' : 'expired';
  }

  /** The days (any ms inside them) as runs of consecutive days with one source, each at most daysPerQuery long. */
  runs(days: Iterable<number>): DayRun[] {
    const byStart = new Map<number, { start: number; end: number }>();
    for (const t of days) {
      const d = platformDay(t, this.o.timezone);
      byStart.set(d.start, { start: d.start, end: d.end });
    }
    const runs: DayRun[] = [];
    for (const day of [...byStart.values()].sort((a, b) => a.start - b.start)) {
      const source = this.source(day.start, day.end);
      const last = runs.at(-1);
      if (
        last &&
        last.source === source &&
        last.days.at(-1)!.end === day.start &&
        last.days.length < this.o.daysPerQuery
      )
        last.days.push(day);
      else runs.push({ source, days: [day] });
    }
    return runs;
  }

  /** Recomputes these days (their start, or any ms inside them) of one device. */
  async days(deviceId: string, days: Iterable<number>, signal?: AbortSignal): Promise<DayResult> {
    const total: DayResult = { days: 0, points: 0, emptied: 0, expired: 0 };
    const runs = this.runs(days);
    let hourly: FieldKinds | undefined;
    let raw: FieldKinds | undefined;
    for (const run of runs) {
      if (run.source === 'expired') {
        total.expired += run.days.length;
        continue;
      }
      const from = run.days[0].start;
      const to = run.days.at(-1)!.end;
      let q: string | undefined;
      if (run.source === 'hourly') {
        hourly ??= hourlyFieldKinds(
          await this.o.query.rows(`SHOW FIELD KEYS FROM ${hourlySource(this.o.hourlyRp)}`, signal),
        );
        if (hourly.numeric.length + hourly.other.length)
          q = dayQuery(hourly, hourlySource(this.o.hourlyRp), from, to, deviceId, this.o.timezone);
      } else {
        raw ??= await this.o.rawFields(signal);
        if (raw.numeric.length + raw.other.length)
          q = rollupQuery(raw, from, to, deviceId, { every: '1d', timezone: this.o.timezone });
      }
      const points = q === undefined ? [] : rollupPoints(await this.o.query.series(q, signal), MEASUREMENT.rollupDay);
      if (points.length) await this.o.writer.write(points, { source: 'rollup', signal });
      total.days += run.days.length;
      total.points += points.length;
      total.emptied += await this.deleteEmpty(
        deviceId,
        run,
        points.map((p) => p.time),
        signal,
      );
    }
    return total;
  }

  /** Deletes the daily rollup of the run's days that got no point (their hours are all gone). */
  private async deleteEmpty(
    deviceId: string,
    run: DayRun,
    written: readonly number[],
    signal?: AbortSignal,
  ): Promise<number> {
    // by range, not by start: where a midnight falls into a DST gap InfluxDB may stamp the day otherwise
    const empty = run.days.filter((d) => !written.some((t) => t >= d.start && t < d.end));
    if (empty.length === 0 || !(await this.o.canDelete())) return 0;
    // one DELETE per run of consecutive empty days
    const spans: Array<{ start: number; end: number }> = [];
    for (const d of empty) {
      const last = spans.at(-1);
      if (last && last.end === d.start) last.end = d.end;
      else spans.push({ ...d });
    }
    for (const { start, end } of spans) {
      await this.o.query.series(
        `DELETE FROM ${influxIdent(MEASUREMENT.rollupDay)} WHERE ${influxIdent('device_id')} = ${influxString(deviceId)} AND time >= ${start}ms AND time < ${end}ms`,
        signal,
      );
    }
    return empty.length;
  }
}
