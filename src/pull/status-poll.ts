import type { PlatformClient } from '../platform/api.js';
import type { PointWriter, SinkPoint } from '../influx/api.js';
import { statusPoint } from '../influx/points.js';
import type { DeviceRegistry } from '../devices/registry.js';
import type { StatusJob } from '../base/jobs.js';
import { failureFacts, messageOf } from '../base/failure.js';
import { inLanes } from '../base/lanes.js';
import { ExpeedError } from '../base/retry.js';
import { budgetResetsAt, cooldownUntil } from '../platform/token/errors.js';
import type { ReconnectWatch } from './reconnect.js';

export interface StatusPollOptions {
  platform: Pick<PlatformClient, 'deviceStatus'>;
  writer: Pick<PointWriter, 'write'>;
  registry: Pick<DeviceRegistry, 'list' | 'markFailure' | 'clearFailure'>;
  now?: () => number;
  /** devices of one job polled at once; the shared request rate still bounds the calls a second */
  concurrency?: number;
  /** each answer, once written: a device back online after an offline span gets its re-read queued (src/pull/reconnect.ts) */
  presence?: Pick<ReconnectWatch, 'observe'>;
}

export const DEFAULT_STATUS_POLL = { concurrency: 8 };

/** The platform round trip a status job is sized for (s): slower answers than this leave part of the rate unused. */
export const STATUS_ROUND_TRIP_BUDGET_S = 0.5;
/** More lanes than devices in one status job (DEFAULT_STATUS_SLOT.chunkSize) would never start. */
export const MAX_STATUS_POLL_CONCURRENCY = 100;

/**
 * Devices one status job polls at once, from the shared request rate: each lane makes at most
 * 1 / round-trip calls a second, so rate × STATUS_ROUND_TRIP_BUDGET_S lanes keep the rate busy for
 * any round trip up to that budget (20 req/s: 10 lanes, enough for 20/s up to 500 ms); the rate
 * itself (RequestRate) still decides how many calls start each second. At least the default (8),
 * at most one chunk.
 */
export function statusPollConcurrency(ratePerSecond: number): number {
  if (!(ratePerSecond >= 1))
    throw new RangeError(`status poll: request rate must be >= 1 a second, got ${ratePerSecond}`);
  return Math.min(
    MAX_STATUS_POLL_CONCURRENCY,
    Math.max(DEFAULT_STATUS_POLL.concurrency, Math.ceil(ratePerSecond * STATUS_ROUND_TRIP_BUDGET_S)),
  );
}

export interface StatusPollResult {
  polled: number;
  online: number;
  /** devices the platform refused (wrong id or key): marked in the registry */
  refused: Array<{ deviceId: string; reason: string }>;
  /** token calls are paused (cool-down): the devices not polled yet were skipped, until then */
  skipped?: { devices: number; until: number; reason: string };
}

/**
 * A poll that reached some devices but not others for a reason a retry can fix. `failures` names
 * only those devices: the retry polls them and nothing else.
 */
export class StatusPollError extends ExpeedError {
  constructor(readonly failures: Array<{ deviceId: string; reason: string }>) {
    super(
      `status poll failed for ${failures.length} device(s), retryable: ${failures.map((f) => `${f.deviceId}: ${f.reason}`).join('; ')}`,
      { retryable: true },
    );
  }
}

/** The token budget ran out mid-poll; `remaining` are the devices not polled yet, at `retryAt`. */
export class StatusBudgetError extends ExpeedError {
  constructor(
    readonly budgetError: unknown,
    readonly resetsAt: number,
    readonly remaining: string[],
  ) {
    super(`status poll stopped: ${messageOf(budgetError)} (${remaining.length} device(s) left)`, {
      retryable: true,
      retryAt: resetsAt,
    });
  }
}

/**
 * Polls `device_status` and writes it to the `device_status` measurement with `source` = `poll`.
 * A device the platform refuses is marked in the registry; the others are still written.
 */
export class StatusPoller {
  private readonly now: () => number;
  private readonly concurrency: number;

  constructor(private readonly options: StatusPollOptions) {
    this.now = options.now ?? Date.now;
    this.concurrency = Math.max(1, options.concurrency ?? DEFAULT_STATUS_POLL.concurrency);
  }

  async poll(job: StatusJob, signal?: AbortSignal): Promise<StatusPollResult> {
    const { platform, writer, registry } = this.options;
    const wanted = job.deviceIds ? new Set(job.deviceIds) : undefined;
    const devices = (await registry.list()).filter((d) => !wanted || wanted.has(d.id));
    const points: SinkPoint[] = [];
    const result: StatusPollResult = { polled: 0, online: 0, refused: [] };
    const retryLater: Array<{ deviceId: string; reason: string }> = [];
    const done = new Set<string>();
    let budget: { err: unknown; resetsAt: number } | undefined;
    let cooldown: { until: number; reason: string } | undefined;

    const pollOne = async (d: (typeof devices)[number]): Promise<void> => {
      try {
        const status = await platform.deviceStatus({ id: d.id, key: d.key }, { signal });
        points.push(statusPoint(d.id, this.now(), status.online, status.raw, 'poll'));
        result.polled++;
        if (status.online) result.online++;
        done.add(d.id);
        if (d.failure) await registry.clearFailure(d.id);
      } catch (err) {
        const resetsAt = budgetResetsAt(err);
        // a spent budget stops the whole poll: no lane starts another device
        if (resetsAt !== undefined) {
          budget ??= { err, resetsAt };
          return;
        }
        // a token cool-down: the next scheduled poll tries again; retrying this one cannot help
        const until = cooldownUntil(err);
        if (until !== undefined) {
          cooldown ??= { until, reason: messageOf(err) };
          return;
        }
        done.add(d.id);
        const facts = failureFacts(err);
        // (an undocumented code or a token problem says nothing about the device: the poll is retried)
        if (facts.retryable || !facts.marksDevice) retryLater.push({ deviceId: d.id, reason: messageOf(err) });
        else {
          await registry.markFailure(d.id, { code: facts.code ?? -1, message: facts.vendorMessage ?? messageOf(err) });
          result.refused.push({ deviceId: d.id, reason: messageOf(err) });
        }
      }
    };
    await inLanes(devices, this.concurrency, pollOne, () => budget !== undefined || cooldown !== undefined);

    if (points.length) await writer.write(points, { source: 'poll', signal });
    for (const p of points) await this.options.presence?.observe(p.deviceId, p.fields.online === true, p.time);
    if (budget) {
      const remaining = devices
        .filter((d) => !done.has(d.id))
        .map((d) => d.id)
        .concat(retryLater.map((f) => f.deviceId));
      throw new StatusBudgetError(budget.err, budget.resetsAt, remaining);
    }
    if (cooldown) result.skipped = { devices: devices.length - done.size, ...cooldown };
    if (retryLater.length) throw new StatusPollError(retryLater);
    return result;
  }
}
