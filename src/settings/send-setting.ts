import { sleep } from '../base/backoff.js';
import { UnknownDeviceError } from '../base/failure.js';
import type { PointWriter } from '../influx/api.js';
import type { Logger } from '../base/log.js';
import type { PlatformClient } from '../platform/api.js';
import { SettingOutcomeUnknownError } from '../platform/errors.js';
import type { DeviceRegistry } from '../devices/registry.js';
import { settingPoint } from '../influx/points.js';
import type { PendingSettingsStore, SettingCommand, SettingState } from '../devices/pending-settings.js';

/**
 * A device setting's round trip: POST device_setting, remember the command (Redis), record each
 * state in `device_setting`; the result arrives later as a `msg_type` 3 push (src/push/ingest.ts),
 * or the command times out (`expireSettings`, run by SettingTimeoutSweep where the workers run and by `set --wait`).
 */

export interface SendSettingDeps {
  platform: Pick<PlatformClient, 'deviceSetting'>;
  registry: Pick<DeviceRegistry, 'get'>;
  pending: Pick<PendingSettingsStore, 'add' | 'get'>;
  writer: Pick<PointWriter, 'write'>;
  logger: Logger;
  /** a command still `sent` after this many ms becomes `timeout` */
  timeoutMs: number;
  now?: () => number;
}

export interface SentSetting {
  messageId: string;
  command: SettingCommand;
  /** false when the `sent` point could not be written (the command itself went out) */
  recorded: boolean;
}

const SETTING_SOURCE = 'setting';

/**
 * Sends a setting, once. Throws the platform's typed errors (DeviceOfflineError for code 3) before
 * anything is recorded; once the platform answered with a message id, the command is stored
 * before the `sent` point is written, so a result pushed right away finds it. When the request may
 * have reached the platform without an answer (SettingOutcomeUnknownError), a point with state
 * `unknown` and an empty message_id records the attempt, and the error is thrown: it is never sent
 * again automatically.
 */
export async function sendSetting(
  deps: SendSettingDeps,
  deviceId: string,
  settings: Record<string, unknown>,
): Promise<SentSetting> {
  const now = deps.now ?? Date.now;
  if (Object.keys(settings).length === 0) throw new Error('no settings given: pass at least one key=value');
  const device = await deps.registry.get(deviceId);
  if (!device) throw new UnknownDeviceError(deviceId);
  const sentAt = now();
  // an operator's command may spend the token reserve kept for manual work
  let messageId: string;
  try {
    ({ messageId } = await deps.platform.deviceSetting({ id: device.id, key: device.key }, settings, {
      useReserve: true,
    }));
  } catch (err) {
    if (err instanceof SettingOutcomeUnknownError)
      await recordUnknown(deps, { messageId: '', deviceId, settings, sentAt, resolvedAt: now(), state: 'unknown' });
    throw err;
  }
  await deps.pending.add({ messageId, deviceId, settings, sentAt, deadline: sentAt + deps.timeoutMs });
  const command: SettingCommand = {
    messageId,
    deviceId,
    settings,
    sentAt,
    deadline: sentAt + deps.timeoutMs,
    state: 'sent',
  };
  let recorded = true;
  try {
    await deps.writer.write([settingPoint(command)], { source: SETTING_SOURCE });
  } catch (err) {
    recorded = false;
    deps.logger.error(
      { err, messageId, deviceId },
      'setting sent, but its "sent" state could not be written to InfluxDB',
    );
  }
  return { messageId, command: (await deps.pending.get(messageId)) ?? command, recorded };
}

async function recordUnknown(deps: SendSettingDeps, command: SettingCommand): Promise<void> {
  try {
    await deps.writer.write([settingPoint(command)], { source: SETTING_SOURCE });
  } catch (err) {
    deps.logger.error(
      { err, deviceId: command.deviceId },
      'the "unknown" state of a setting could not be written to InfluxDB',
    );
  }
}

export interface ExpireDeps {
  pending: Pick<PendingSettingsStore, 'sweep' | 'acknowledge'>;
  writer: Pick<PointWriter, 'write'>;
  now?: () => number;
  logger?: Pick<Logger, 'info'>;
}

/**
 * Commands past their deadline become `timeout` and get their point. Several processes may run
 * this at once: the store's compare-and-set decides, and the point is the same whoever writes it.
 * Returns how many timeouts were recorded.
 */
export async function expireSettings(deps: ExpireDeps): Promise<number> {
  const now = (deps.now ?? Date.now)();
  const timedOut = await deps.pending.sweep(now);
  if (timedOut.length === 0) return 0;
  await deps.writer.write(timedOut.map(settingPoint), { source: SETTING_SOURCE });
  await deps.pending.acknowledge(timedOut.map((c) => c.messageId));
  for (const c of timedOut)
    deps.logger?.info({ messageId: c.messageId, deviceId: c.deviceId }, 'setting command timed out without a result');
  return timedOut.length;
}

export interface WaitOptions {
  /** how often the command's state is read, ms (default 250) */
  pollMs?: number;
  signal?: AbortSignal;
}

/**
 * Waits until the command leaves `sent`: applied or failed (the result push arrived) or timeout
 * (its deadline passed; this call records the timeout itself if no worker has yet).
 */
export async function waitForResult(
  deps: ExpireDeps & { pending: Pick<PendingSettingsStore, 'get' | 'sweep' | 'acknowledge'> },
  messageId: string,
  options: WaitOptions = {},
): Promise<SettingCommand> {
  const now = deps.now ?? Date.now;
  const pollMs = options.pollMs ?? 250;
  const final: SettingState[] = ['applied', 'failed', 'timeout'];
  for (;;) {
    options.signal?.throwIfAborted();
    const cmd = await deps.pending.get(messageId);
    if (!cmd)
      throw new Error(`setting command ${messageId} is not in Redis (expired, or sent by another installation)`);
    if (final.includes(cmd.state)) return cmd;
    let wait = pollMs;
    if (cmd.deadline !== undefined && now() >= cmd.deadline) await expireSettings(deps);
    else if (cmd.deadline !== undefined) wait = Math.max(1, Math.min(pollMs, cmd.deadline - now()));
    await sleep(wait, options.signal);
  }
}
