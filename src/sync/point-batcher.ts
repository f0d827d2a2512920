import type { PointWriter, SinkPoint, WriteOptions, WriteResult } from '../influx/api.js';

/**
 * Gathers the points of many small callers (one per ingest job: a push carries ~10 rows) into
 * few large writes. InfluxDB takes one 5000-line request far faster than 500 ten-line ones, and
 * the webhook's throughput end to end is bounded by the write rate.
 *
 * Each caller's promise settles with the write that carried its points: it resolves only after
 * InfluxDB acknowledged them and rejects with the writer's error otherwise, so a job is never
 * completed before its points are stored.
 */
export interface PointBatcherOptions {
  /** flush as soon as this many points are waiting (default 5000) */
  maxPoints: number;
  /**
   * flush at the latest this long after the first point arrived, ms (default 50). Measured (bench
   * /webhook.ts): 5 ms made ~200 small writes a second whose cost in InfluxDB took CPU from the
   * webhook; 50 ms keeps acknowledgements and landed points/s higher. Only the landing waits, never
   * the answer to the platform.
   */
  maxDelayMs: number;
}

export const DEFAULT_POINT_BATCHER_OPTIONS: PointBatcherOptions = { maxPoints: 5000, maxDelayMs: 50 };

interface Waiter {
  resolve(result: WriteResult): void;
  reject(err: unknown): void;
}

interface Batch {
  points: SinkPoint[];
  waiters: Waiter[];
  timer?: NodeJS.Timeout;
}

export class PointBatcher implements PointWriter {
  private readonly options: PointBatcherOptions;
  /** one open batch per source: dead letters and metrics keep the source of each point */
  private readonly open = new Map<string, Batch>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private closed = false;

  constructor(
    private readonly writer: Pick<PointWriter, 'write'>,
    options: Partial<PointBatcherOptions> = {},
  ) {
    this.options = { ...DEFAULT_POINT_BATCHER_OPTIONS, ...options };
  }

  write(points: SinkPoint[], options: WriteOptions): Promise<WriteResult> {
    if (this.closed) return Promise.reject(new Error('point batcher is closed'));
    if (points.length === 0) return Promise.resolve({ written: 0, merged: 0, deadLettered: 0 });
    return new Promise<WriteResult>((resolve, reject) => {
      let batch = this.open.get(options.source);
      if (!batch) {
        batch = { points: [], waiters: [] };
        this.open.set(options.source, batch);
        batch.timer = setTimeout(() => this.flush(options.source), this.options.maxDelayMs);
      }
      for (const p of points) batch.points.push(p);
      batch.waiters.push({ resolve, reject });
      if (batch.points.length >= this.options.maxPoints) this.flush(options.source);
    });
  }

  private flush(source: string): void {
    const batch = this.open.get(source);
    if (!batch) return;
    this.open.delete(source);
    clearTimeout(batch.timer);
    const write = this.writer.write(batch.points, { source }).then(
      (result) => {
        for (const w of batch.waiters) w.resolve(result);
      },
      (err: unknown) => {
        for (const w of batch.waiters) w.reject(err);
      },
    );
    this.inFlight.add(write);
    void write.finally(() => this.inFlight.delete(write));
  }

  /** Writes what is waiting now and waits for every write in flight. */
  async drain(): Promise<void> {
    for (const source of [...this.open.keys()]) this.flush(source);
    await Promise.allSettled([...this.inFlight]);
  }

  /** Flushes and stops taking points; the underlying writer is closed by its owner. */
  async close(): Promise<void> {
    await this.drain();
    this.closed = true;
  }
}
