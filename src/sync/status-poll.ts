import type { PlatformClient } from '../platform/api.js';
import { MEASUREMENT, type PointWriter, type SinkPoint } from '../influx/api.js';
import type { DeviceRegistry } from '../devices/registry.js';
import type { StatusJob } from '../queues.js';
import { budgetResetsAt, cooldownUntil, failureFacts, messageOf } from './failure.js';

export interface StatusPollOptions {
  platform: Pick<PlatformClient, 'deviceStatus'>;
  writer: Pick<PointWriter, 'write'>;
  registry: Pick<DeviceRegistry, 'list' | 'markFailure' | 'clearFailure'>;
  now?: () => number;
}

export interface StatusPollResult {
  polled: number;
  online: number;
  /** devices the platform refused (wrong id or key): marked in the registry */
  refused: Array<{ deviceId: string; reason: string }>;
  /** token calls are paused (cool-down): the devices not polled yet were skipped, until then */
  skipped?: { devices: number; until: number; reason: string };
}

/** A poll that reached some devices but not others for a reason a retry can fix. */
export class StatusPollError extends Error {
  readonly retryable = true;
  constructor(readonly failures: Array<{ deviceId: string; reason: string }>) {
    super(`status poll failed for ${failures.length} device(s), retryable: ${failures.map((f) => `${f.deviceId}: ${f.reason}`).join('; ')}`);
    this.name = 'StatusPollError';
  }
}

/**
 * Polls `device_status` and writes it to the `device_status` measurement with `source` = `poll`.
 * A device the platform refuses is marked in the registry; the others are still written.
 */
export class StatusPoller {
  private readonly now: () => number;

  constructor(private readonly options: StatusPollOptions) {
    this.now = options.now ?? Date.now;
  }

  async poll(job: StatusJob, signal?: AbortSignal): Promise<StatusPollResult> {
    const { platform, writer, registry } = this.options;
    const wanted = job.deviceIds ? new Set(job.deviceIds) : undefined;
    const devices = (await registry.list()).filter((d) => !wanted || wanted.has(d.id));
    const points: SinkPoint[] = [];
    const result: StatusPollResult = { polled: 0, online: 0, refused: [] };
    const retryLater: Array<{ deviceId: string; reason: string }> = [];
    for (const [i, d] of devices.entries()) {
      try {
        const status = await platform.deviceStatus({ id: d.id, key: d.key }, { signal });
        points.push({ measurement: MEASUREMENT.status, deviceId: d.id, time: this.now(), fields: { online: status.online, raw_status: status.raw, source: 'poll' } });
        result.polled++;
        if (status.online) result.online++;
        if (d.failure) await registry.clearFailure(d.id);
      } catch (err) {
        // a spent budget stops the whole poll: the worker delays the job until the reset
        if (budgetResetsAt(err) !== undefined) {
          if (points.length) await writer.write(points, { source: 'poll', signal });
          throw err;
        }
        // a token cool-down: the next scheduled poll tries again; retrying this one cannot help
        const until = cooldownUntil(err);
        if (until !== undefined) {
          result.skipped = { devices: devices.length - i, until, reason: messageOf(err) };
          break;
        }
        const facts = failureFacts(err);
        // (an undocumented code or a token problem says nothing about the device: the poll is retried)
        if (facts.retryable || !facts.marksDevice) retryLater.push({ deviceId: d.id, reason: messageOf(err) });
        else {
          await registry.markFailure(d.id, { code: facts.code ?? -1, message: facts.vendorMessage ?? messageOf(err) });
          result.refused.push({ deviceId: d.id, reason: messageOf(err) });
        }
      }
    }
    if (points.length) await writer.write(points, { source: 'poll', signal });
    if (retryLater.length) throw new StatusPollError(retryLater);
    return result;
  }
}
