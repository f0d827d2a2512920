/**
 * The sweep that marks setting commands past their deadline `timeout` (with their point in
 * `device_setting`), on a timer. The service runs one where the workers run; several processes may
 * sweep at once (the pending store's compare-and-set decides who records a timeout).
 */
import { repeat, type Repeating } from '../base/repeat.js';
import type { Logger } from '../base/log.js';
import type { PointWriter } from '../influx/api.js';
import type { PendingSettingsStore } from '../devices/pending-settings.js';
import { expireSettings } from './send-setting.js';
import { withDefaults } from '../base/options.js';

export interface SettingTimeoutSweepOptions {
  pending: Pick<PendingSettingsStore, 'sweep' | 'acknowledge'>;
  writer: Pick<PointWriter, 'write'>;
  logger: Pick<Logger, 'info' | 'warn'>;
  /** how often, ms (default 5 s) */
  everyMs: number;
  now: () => number;
}

export const DEFAULT_SETTING_TIMEOUT_SWEEP: Pick<SettingTimeoutSweepOptions, 'everyMs' | 'now'> = {
  everyMs: 5000,
  now: Date.now,
};

export class SettingTimeoutSweep {
  private readonly o: SettingTimeoutSweepOptions;
  private sweeping?: Repeating;

  constructor(
    options: Omit<SettingTimeoutSweepOptions, keyof typeof DEFAULT_SETTING_TIMEOUT_SWEEP> &
      Partial<SettingTimeoutSweepOptions>,
  ) {
    this.o = withDefaults(DEFAULT_SETTING_TIMEOUT_SWEEP, options);
    if (!(this.o.everyMs > 0)) throw new Error(`setting timeout sweep: everyMs must be > 0 (got ${this.o.everyMs})`);
  }

  /** Marks the overdue commands now; returns how many timed out. */
  sweep(): Promise<number> {
    return expireSettings({ pending: this.o.pending, writer: this.o.writer, now: this.o.now, logger: this.o.logger });
  }

  start(): void {
    // one round at a time: a slow write is not overtaken by the next tick
    this.sweeping ??= repeat(() => this.sweep(), {
      everyMs: this.o.everyMs,
      onError: (err) => this.o.logger.warn({ err }, 'setting timeout sweep failed; tried again on the next round'),
      unref: true,
    });
  }

  /** Stops the timer and waits for a round under way. */
  async stop(): Promise<void> {
    const sweeping = this.sweeping;
    this.sweeping = undefined;
    await sweeping?.stop();
  }
}
