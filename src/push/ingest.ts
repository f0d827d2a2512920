import type { JobsOptions } from 'bullmq';
import { backoffDelay, type Backoff } from '../base/backoff.js';
import { fieldRecord } from '../base/field-record.js';
import { MEASUREMENT, type DeadLetterStore, type PointWriter, type SinkPoint } from '../influx/api.js';
import type { DataPush, IngestJob, StatusPush } from '../base/jobs.js';
import type { Logger } from '../base/log.js';
import type { DeviceRegistry } from '../devices/registry.js';
import { settingPoint, statusPoint } from '../influx/points.js';
import type { PendingSettingsStore } from '../devices/pending-settings.js';
import { withDefaults } from '../base/options.js';

/**
 * What a validated push becomes: `msg_type` 2 rows -> `device_data`, `msg_type` 1 -> a
 * `device_status` point, `msg_type` 3 -> the state of a pending setting command. A device seen
 * with its key joins the registry so the nightly sync covers it too — through PushRegistration,
 * only after one successful platform call for it (src/devices/push-registration.ts).
 */

/**
 * How ingest jobs are enqueued. Failed writes (InfluxDB down) are retried with a capped backoff
 * for weeks rather than given up: a push acknowledged to the platform must land. Failed jobs are
 * kept in Redis (`removeOnFail: false`) for the operator.
 */
export const INGEST_BACKOFF_TYPE = 'ingest-capped';
export const INGEST_JOB_OPTIONS: JobsOptions = {
  attempts: 50_000,
  backoff: { type: INGEST_BACKOFF_TYPE, delay: 1000 },
  removeOnComplete: true,
  removeOnFail: false,
};

/** Exponential backoff from 1 s, capped at one minute, with ±20 % jitter so retries spread out. */
export const INGEST_BACKOFF: Backoff = { baseMs: 1000, maxMs: 60_000, jitter: [0.8, 1.2] };

/** The wait before an ingest job's next attempt (BullMQ's `attemptsMade` counts the failed ones). */
export function ingestBackoff(attemptsMade: number, random?: () => number): number {
  return backoffDelay(attemptsMade - 1, random ? { ...INGEST_BACKOFF, random } : INGEST_BACKOFF);
}

export const PUSH_SOURCE = 'push';

/** `msg_type` 1 -> one `device_status` point at the time the push arrived (the push has no time). */
export function pushStatusPoint(body: StatusPush, receivedAt: number, onlineCode: number): SinkPoint {
  return statusPoint(body.device_id, receivedAt, body.device_status === onlineCode, body.device_status, PUSH_SOURCE);
}

/** `msg_type` 2 -> one `device_data` point per row that carries at least one datapoint. */
export function dataPoints(body: DataPush, parseTime: (raw: string | number) => number): SinkPoint[] {
  const out: SinkPoint[] = [];
  for (const row of body.data) {
    // a datapoint named "__proto__" must be stored, not change the object's prototype
    const fields = fieldRecord<unknown>();
    let n = 0;
    for (const name in row) {
      if (name === 'timestamp') continue;
      fields[name] = row[name];
      n++;
    }
    if (n > 0)
      out.push({ measurement: MEASUREMENT.data, deviceId: body.device_id, time: parseTime(row.timestamp), fields });
  }
  return out;
}

export interface IngestorOptions {
  /** where points go; the ingest worker hands a PointBatcher so that many jobs share one write */
  writer: Pick<PointWriter, 'write'>;
  /** absent when auto-registration is off (EXPEED_AUTO_REGISTER=false); the service hands a PushRegistration */
  registry?: Pick<DeviceRegistry, 'addIfMissing'>;
  settings: Pick<PendingSettingsStore, 'resolve'>;
  /** where the rows of a push that could not be read are kept */
  deadLetters: Pick<DeadLetterStore, 'add'>;
  parseTime: (raw: string | number) => number;
  /** raw `device_status` of msg_type 1 that means online (vendor text: 0) */
  pushOnlineCode: number;
  logger: Logger;
  /** how long a device id stays known to this process before the registry is asked again, ms (default 60 s) */
  registryCacheMs: number;
  now: () => number;
  /** where msg_type 1 arrival times go, so the status poll can leave those devices out */
  statusPushes?: { record(deviceId: string, at: number): Promise<void> };
  /** each status push, once written: a device back online after an offline span gets its re-read queued (src/pull/reconnect.ts) */
  presence?: { observe(deviceId: string, online: boolean, at: number): Promise<unknown> };
}

export const DEFAULT_INGESTOR_OPTIONS = { registryCacheMs: 60_000, now: Date.now };

export interface IngestResult {
  points: number;
  registered: boolean;
}

export class Ingestor {
  private readonly options: IngestorOptions;
  /** device id -> when this process last made sure it is registered */
  private readonly known = new Map<string, number>();

  constructor(options: Omit<IngestorOptions, keyof typeof DEFAULT_INGESTOR_OPTIONS> & Partial<IngestorOptions>) {
    this.options = withDefaults(DEFAULT_INGESTOR_OPTIONS, options);
  }

  async ingest(job: IngestJob): Promise<IngestResult> {
    switch (job.msgType) {
      case 1: {
        const registered = await this.register(job.body.device_id, job.body.device_key);
        await this.options.writer.write([pushStatusPoint(job.body, job.receivedAt, this.options.pushOnlineCode)], {
          source: PUSH_SOURCE,
        });
        await this.options.statusPushes?.record(job.body.device_id, job.receivedAt);
        await this.options.presence?.observe(
          job.body.device_id,
          job.body.device_status === this.options.pushOnlineCode,
          job.receivedAt,
        );
        return { points: 1, registered };
      }
      case 2: {
        const registered = await this.register(job.body.device_id, job.body.device_key);
        const points = dataPoints(job.body, this.options.parseTime);
        await this.keepUnreadable(job.body);
        await this.options.writer.write(points, { source: PUSH_SOURCE });
        return { points: points.length, registered };
      }
      case 3: {
        const { message_id: messageId, device_id: deviceId, set_result: code } = job.body;
        const state = code === 0 ? 'applied' : 'failed';
        const { changed, command } = await this.options.settings.resolve(messageId, deviceId, state, job.receivedAt);
        if (!changed && command.state !== state) {
          this.options.logger.warn(
            { messageId, deviceId, kept: command.state, pushed: state },
            'setting result contradicts the one already recorded; the first is kept',
          );
        }
        // written even when unchanged: a retried job must still land its point (same time, same values)
        await this.options.writer.write([settingPoint(command)], { source: PUSH_SOURCE });
        return { points: 1, registered: false };
      }
      default:
        throw new Error(`unknown msg_type ${(job as { msgType: unknown }).msgType} in ingest job`);
    }
  }

  /**
   * Rows the webhook could not read, kept like unreadable history rows (kind 'row': a retry reads
   * the row again and writes it). A retried job adds the same letters again, which the store
   * keeps once.
   */
  private async keepUnreadable(body: DataPush): Promise<void> {
    if (!body.unreadable?.length) return;
    const { deadLetters, logger } = this.options;
    await Promise.all(
      body.unreadable.map((u) =>
        deadLetters.add({ kind: 'row', source: PUSH_SOURCE, reason: u.reason, deviceId: body.device_id, raw: u.raw }),
      ),
    );
    logger.warn(
      { deviceId: body.device_id, rows: body.unreadable.length },
      'unreadable rows of a push kept as dead letters; the other rows are written',
    );
  }

  private async register(id: string, key: string | undefined): Promise<boolean> {
    const { registry } = this.options;
    if (!registry || !key) return false;
    const now = this.options.now();
    const seen = this.known.get(id);
    if (seen !== undefined && now - seen < this.options.registryCacheMs) return false;
    const added = await registry.addIfMissing({ id, key }, 'push');
    if (this.known.size > 100_000) this.known.clear();
    this.known.set(id, now);
    if (added) this.options.logger.info({ deviceId: id }, 'device seen in a push added to the registry');
    return added;
  }
}
