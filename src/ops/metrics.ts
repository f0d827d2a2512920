import { Registry, collectDefaultMetrics } from 'prom-client';
import type { TokenUsage } from '../platform/token/usage.js';
import {
  type Metrics,
  verifyMetrics,
  platformMetrics,
  writeMetrics,
  deviceMetrics,
  jobMetrics,
  tokenMetrics,
  backlogMetrics,
  webhookMetrics,
} from './metric-families.js';

export type { Metrics } from './metric-families.js';

/**
 * The service's metrics, one function per family, registered in this order (the order `/metrics` lists them in):
 * the verification's hours first, then platform calls, writes, devices, jobs, the token budget, Redis state, the webhook.
 */
export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'expeed_process_' });
  const r = [registry];
  return {
    registry,
    ...verifyMetrics(r),
    ...platformMetrics(r),
    ...writeMetrics(r),
    ...deviceMetrics(r),
    ...jobMetrics(r),
    ...tokenMetrics(r),
    ...backlogMetrics(r),
    ...webhookMetrics(r),
  };
}

/**
 * Mirrors which registered devices are failing (read at scrape time) into `expeed_device_failing`:
 * one series per device in `devices`, 1 or 0; a device removed from the registry loses its series.
 */
export function setDeviceFailing(metrics: Metrics, devices: Array<{ id: string; failing: boolean }>): void {
  metrics.deviceFailing.reset();
  for (const d of devices) metrics.deviceFailing.set({ device_id: d.id }, d.failing ? 1 : 0);
}

/** Mirrors the rollup backlog of each tier (read at scrape time) into its gauges: `hour`, and `1d` when given. */
export function setRollupBacklog(
  metrics: Metrics,
  backlog: { hours: number; oldestDue?: number },
  now: number,
  days?: { hours: number; oldestDue?: number },
): void {
  for (const [tier, b] of [
    ['hour', backlog],
    ['1d', days],
  ] as const) {
    if (!b) continue;
    metrics.rollupBacklog.set({ tier }, b.hours);
    metrics.rollupBacklogOldest.set({ tier }, b.oldestDue === undefined ? 0 : Math.max(0, (now - b.oldestDue) / 1000));
  }
}

const COOLDOWN_REASON = { credentials: 'credentials_rejected', token: 'fresh_token_rejected' } as const;

/** Mirrors the token budget (read at scrape time) into its gauges. */
export function setTokenUsage(metrics: Metrics, usage: TokenUsage, now: number): void {
  metrics.tokenCallsToday.set(usage.calls);
  metrics.tokenBudget.set(usage.limit);
  const left = usage.cooldownUntil === undefined ? 0 : Math.max(0, (usage.cooldownUntil - now) / 1000);
  for (const [kind, reason] of Object.entries(COOLDOWN_REASON))
    metrics.tokenCooldown.set({ reason }, usage.cooldownKind === kind ? left : 0);
}

/** The one `device_id` label value of every device not in the registry. */
const UNREGISTERED_DEVICE = '_unregistered';

/**
 * The `device_id` label of per-device series: the id for registered devices, `_unregistered` for
 * any other (pushes can name any id, and every label value is a series kept until the process
 * ends: 20k invented ids took /metrics from 24 KB to 3.4 MB). The registered ids are read again by
 * `refresh()`, which the service calls at start and at every scrape; a device registered since
 * gets its own series from its next write after that.
 */
export class DeviceLabels {
  private ids = new Set<string>();

  constructor(private readonly list: () => Promise<Array<{ id: string }>>) {}

  async refresh(): Promise<void> {
    this.ids = new Set((await this.list()).map((d) => d.id));
  }

  readonly label = (deviceId: string): string => (this.ids.has(deviceId) ? deviceId : UNREGISTERED_DEVICE);
}
