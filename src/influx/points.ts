import { MEASUREMENT, type SinkPoint } from './api.js';

/**
 * The points of the measurements whose fields we name ourselves: `device_status` (from pushes and
 * from status polls) and `device_setting` (from `set`, its result push and its timeout). Every
 * flow that records a status or a setting state builds it here, so the field names and types the
 * dashboards query are decided once. (`device_data` points carry the platform's datapoints as
 * they are, `device_data_1h` is built by src/rollup/rollup-query.ts from its query.)
 */

/** Where a status came from: the `source` field of `device_status`. */
export type StatusSource = 'push' | 'poll';

/** One `device_status` point: `online` as we read it, the code as received, and where it came from. */
export function statusPoint(
  deviceId: string,
  time: number,
  online: boolean,
  rawStatus: number,
  source: StatusSource,
): SinkPoint {
  return { measurement: MEASUREMENT.status, deviceId, time, fields: { online, raw_status: rawStatus, source } };
}

/**
 * What a `device_setting` point records of a setting command (src/devices/pending-settings.ts keeps
 * the commands themselves; its SettingCommand is one of these).
 */
export interface SettingRecord {
  messageId: string;
  deviceId: string;
  state: string;
  settings?: Record<string, unknown>;
  /** epoch ms the command was sent: the time of the `sent` point */
  sentAt?: number;
  /** epoch ms it left `sent`: the time of every later state's point */
  resolvedAt?: number;
}

/** A setting command's state as a `device_setting` point, at the time of that state. */
export function settingPoint(cmd: SettingRecord): SinkPoint {
  const time = cmd.state === 'sent' ? cmd.sentAt : cmd.resolvedAt;
  const fields: Record<string, unknown> = { message_id: cmd.messageId, state: cmd.state };
  if (cmd.settings !== undefined) fields.settings = JSON.stringify(cmd.settings);
  return { measurement: MEASUREMENT.setting, deviceId: cmd.deviceId, time: time ?? Date.now(), fields };
}
