import type { Redis } from 'ioredis';
import type { Logger } from '../base/log.js';
import { redisKey } from '../base/redis.js';
import type { PlatformClient } from '../platform/api.js';
import { RESULT_CODE } from '../platform/errors.js';
import { failureFacts, messageOf } from '../base/failure.js';
import type { Device, DeviceRegistry } from './registry.js';
import { withDefaults } from '../base/options.js';

export interface PushRegistrationOptions {
  registry: Pick<DeviceRegistry, 'get' | 'addIfMissing'>;
  /** the verification call (device_status) goes through the shared, rate-limited client */
  platform: Pick<PlatformClient, 'deviceStatus'>;
  redis: Pick<Redis, 'set' | 'del' | 'pexpire' | 'incr'>;
  prefix: string;
  logger: Pick<Logger, 'info' | 'warn'>;
  /** how long the platform's "no such device / wrong key" is remembered per id, ms (default 1 h) */
  negativeTtlMs: number;
  /** after a verification that failed for a reason a retry can fix (network, 5xx, budget), ms (default 5 min) */
  retryAfterMs: number;
  /** verification calls per minute for all ids together, across processes (default 30) */
  maxPerMinute: number;
  now: () => number;
}

export const DEFAULT_PUSH_REGISTRATION: Pick<
  PushRegistrationOptions,
  'negativeTtlMs' | 'retryAfterMs' | 'maxPerMinute' | 'now'
> = {
  negativeTtlMs: 3_600_000,
  retryAfterMs: 5 * 60_000,
  maxPerMinute: 30,
  now: Date.now,
};

/**
 * Auto-registration of devices seen in pushes, behind one successful platform call. A push can
 * name any device id: registering it unseen would have the nightly sync and the status poll call
 * the platform for it forever. So a pushed id (with its pushed key) joins the registry only after
 * `device_status` answered for it. Per id, `<prefix>:devices:probe:<id>` (SET NX with expiry) lets
 * one call through per expiry: it stays as the cached negative answer when the platform refused the
 * id or key, and is shortened when the call failed for a reason a retry can fix. All ids together
 * make at most `maxPerMinute` calls (`<prefix>:devices:probes:<minute>`). The push's data is written
 * whatever the answer; only registration (and so polling) waits.
 *
 * It has the registry's `addIfMissing` shape, so the Ingestor takes it in the registry's place.
 */
export class PushRegistration {
  private readonly o: PushRegistrationOptions;
  private lastLimitLog = 0;

  constructor(
    options: Omit<PushRegistrationOptions, keyof typeof DEFAULT_PUSH_REGISTRATION> & Partial<PushRegistrationOptions>,
  ) {
    this.o = withDefaults(DEFAULT_PUSH_REGISTRATION, options);
  }

  /** true: the device was verified and added now; false: registered already, refused, or not verified yet. */
  async addIfMissing(device: { id: string; key: string }, origin: Device['origin']): Promise<boolean> {
    const { registry, redis, prefix } = this.o;
    if (await registry.get(device.id)) return false;
    const probe = redisKey(prefix, 'devices', 'probe', device.id);
    if ((await redis.set(probe, String(this.o.now()), 'PX', this.o.negativeTtlMs, 'NX')) !== 'OK') return false;
    const minute = Math.floor(this.o.now() / 60_000);
    const slot = redisKey(prefix, 'devices', 'probes', String(minute));
    const n = await redis.incr(slot);
    if (n === 1) await redis.pexpire(slot, 120_000);
    if (n > this.o.maxPerMinute) {
      // not this id's fault: it may try again with a later push
      await redis.del(probe);
      if (this.o.now() - this.lastLimitLog >= 60_000) {
        this.lastLimitLog = this.o.now();
        this.o.logger.warn(
          { maxPerMinute: this.o.maxPerMinute },
          'more unknown device ids in pushes than verifications allowed per minute; the rest wait for a later push',
        );
      }
      return false;
    }
    try {
      await this.o.platform.deviceStatus({ id: device.id, key: device.key });
    } catch (err) {
      const facts = failureFacts(err);
      // only the platform's answer about this device is remembered for long: code 1 (token) or
      // a cool-down says nothing about the id, and must not keep a real device out for an hour
      if (facts.retryable || facts.code === RESULT_CODE.tokenOrCredentials) {
        await redis.pexpire(probe, Math.min(this.o.retryAfterMs, this.o.negativeTtlMs));
        this.o.logger.warn(
          { deviceId: device.id, err: messageOf(err) },
          'device seen in a push could not be verified now; a later push tries again',
        );
      } else {
        this.o.logger.info(
          { deviceId: device.id, code: facts.code, reason: facts.vendorMessage ?? messageOf(err) },
          'device seen in a push is unknown to the platform (or its key is wrong): not registered',
        );
      }
      return false;
    }
    const added = await registry.addIfMissing(device, origin);
    await redis.del(probe);
    return added;
  }
}
