/**
 * The contract of the one write path into InfluxDB. Backfill pages, pushes, status polls and
 * setting results all become `SinkPoint`s and go through a `PointWriter`.
 */

export const MEASUREMENT = {
  data: 'device_data',
  status: 'device_status',
  setting: 'device_setting',
  /** hourly rollups of `device_data`, written by src/rollup */
  rollup: 'device_data_1h',
  /** daily rollups (platform-local days) of `device_data_1h`, written by src/rollup */
  rollupDay: 'device_data_1d',
} as const;

export type Measurement = (typeof MEASUREMENT)[keyof typeof MEASUREMENT];

/**
 * One point before normalisation: values are whatever the platform sent. The writer decides how
 * each value is stored (numbers as float, booleans, strings; see docs) and sets aside what it cannot
 * store as a dead letter with its reason.
 */
export interface SinkPoint {
  measurement: Measurement;
  deviceId: string;
  /** epoch ms */
  time: number;
  fields: Record<string, unknown>;
}

export interface WriteOptions {
  /** where the points came from, for dead letters and metrics: pull, push, poll, setting */
  source: string;
  signal?: AbortSignal;
  /**
   * false: what InfluxDB refuses is returned in `rejected` instead of being stored as a dead letter
   * (a dead-letter retry keeps its own letter). Default true.
   */
  setAside?: boolean;
}

export interface WriteResult {
  /** points InfluxDB acknowledged */
  written: number;
  /** points merged into another with the same series and timestamp before writing */
  merged: number;
  /** fields two merged points (same series and time) both carried with different values; the later won */
  conflicts?: number;
  /** points (or values) set aside as dead letters */
  deadLettered: number;
  /** null/undefined values left out of their rows (the field is absent there) */
  absent?: number;
  /**
   * points of which nothing was acknowledged (every value set aside as a dead letter), as merged
   * before writing; absent when there are none. A point with some values written is not here.
   */
  refused?: SinkPoint[];
  /** what InfluxDB refused, with the reasons: only when the write was asked not to set it aside */
  rejected?: Rejection[];
}

/** A point (or one value of it) InfluxDB will not take, with the reason. */
export interface Rejection {
  point: SinkPoint;
  reason: string;
}

/** The writer's result before the rejections are stored as dead letters. */
export interface DetailedWriteResult extends WriteResult {
  /** null/undefined values left out of their rows */
  absent: number;
  rejected: Rejection[];
  /** points of which nothing landed (a subset of the points in `rejected`) */
  refused?: SinkPoint[];
}

export interface PointWriter {
  /**
   * Resolves only after InfluxDB acknowledged every point it was given (or the point was set aside
   * as a dead letter). Throws a retryable error when InfluxDB stays unreachable: nothing is dropped.
   */
  write(points: SinkPoint[], options: WriteOptions): Promise<WriteResult>;
  close(): Promise<void>;
}

export type DeadLetterKind = 'point' | 'push' | 'row';

export interface DeadLetter {
  id: string;
  kind: DeadLetterKind;
  /** pull, push, poll, setting, webhook */
  source: string;
  reason: string;
  deviceId?: string;
  /** the raw content: the point, the row or the request body exactly as received */
  raw: unknown;
  /** epoch ms */
  at: number;
  attempts: number;
  /** why the last retry failed, when one did */
  lastError?: string;
}

export interface DeadLetterStore {
  add(entry: Omit<DeadLetter, 'id' | 'at' | 'attempts'>): Promise<string>;
  list(options?: { limit?: number; offset?: number }): Promise<DeadLetter[]>;
  count(): Promise<number>;
  get(id: string): Promise<DeadLetter | undefined>;
  drop(ids: string[]): Promise<number>;
}
