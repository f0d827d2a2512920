/**
 * Live data for the demo: as the clock moves, each device's newly generated rows are pushed to
 * the registered URL as msg_type 2, the way the real platform forwards uploads. The rows pushed
 * are exactly the rows history serves, so pull and push agree.
 */
import type { Simulator, SimLogger } from './types.js';

export interface LiveFeedOptions {
  /** how often rows are pushed, ms */
  intervalMs: number;
  now: () => number;
  logger?: SimLogger;
}

export class LiveFeed {
  private readonly last = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;
  private running: Promise<void> | undefined;

  constructor(
    private readonly sim: Pick<Simulator, 'devices' | 'rows' | 'pushData'>,
    private readonly o: LiveFeedOptions,
  ) {
    const start = o.now();
    for (const d of sim.devices) this.last.set(d.id, start);
    this.timer = setInterval(() => {
      // a slow receiver must not pile up overlapping rounds
      this.running ??= this.tick().finally(() => (this.running = undefined));
    }, o.intervalMs);
  }

  private async tick(): Promise<void> {
    const now = this.o.now();
    for (const d of this.sim.devices) {
      const from = this.last.get(d.id) ?? now;
      const rows = this.sim.rows(d.id, from, now);
      if (rows.length === 0) continue;
      try {
        const answer = await this.sim.pushData(d.id, rows);
        if (answer.status >= 300)
          this.o.logger?.warn({ device: d.id, status: answer.status }, 'live push refused; rows stay in history');
      } catch (err) {
        this.o.logger?.warn({ device: d.id, err: (err as Error).message }, 'live push failed; rows stay in history');
      }
      // pushed or not, the rows are in history: a backfill recovers what a push lost
      this.last.set(d.id, now);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
