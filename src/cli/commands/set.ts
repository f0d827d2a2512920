import { parseArgs, flag, UsageError } from '../args.js';
import type { Command } from '../command.js';
import type { CommandContext } from '../context.js';
import { DeviceOfflineError, SettingOutcomeUnknownError } from '../../platform/errors.js';
import { formatLocalTime } from '../../platform/time-format.js';
import { sendSetting, waitForResult } from '../../settings/send-setting.js';

/** Exit codes of `set`, so scripts can tell the outcomes apart. */
export const SET_EXIT = { ok: 0, error: 1, usage: 2, failed: 3, timeout: 4, offline: 5, unknown: 6 } as const;

/**
 * `key=value` -> settings. Values are read as JSON when they are JSON (`25`, `true`, `"25"`,
 * `[1,2]`), otherwise kept as text (`mode=eco`): the platform gets numbers as numbers.
 */
export function parseSettings(pairs: string[]): Record<string, unknown> {
  if (pairs.length === 0) throw new UsageError('set ID key=value...: give at least one key=value');
  const settings: Record<string, unknown> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`"${pair}" is not key=value`);
    const key = pair.slice(0, eq).trim();
    const text = pair.slice(eq + 1);
    if (key === '') throw new UsageError(`"${pair}" has an empty key`);
    if (key in settings) throw new UsageError(`setting "${key}" given twice`);
    let value: unknown = text;
    if (text.trim() !== '') {
      try {
        value = JSON.parse(text);
      } catch {
        value = text;
      }
    }
    settings[key] = value;
  }
  return settings;
}

async function run(argv: string[], ctx: CommandContext): Promise<number> {
  const args = parseArgs(argv, { flags: ['wait'] });
  const [deviceId, ...pairs] = args.positionals;
  if (!deviceId) throw new UsageError('set ID key=value... [--wait]: the device id is missing');
  const settings = parseSettings(pairs);
  const { config, log, scrubber } = ctx;
  // the app's client: the service's request rate and token budget apply to an operator's command too
  const { platform, registry, settings: pending, writer } = await ctx.app();

  let sent;
  try {
    sent = await sendSetting(
      { platform, registry, pending, writer, logger: log, timeoutMs: config.settingTimeoutMs },
      deviceId,
      settings,
    );
  } catch (err) {
    if (err instanceof DeviceOfflineError) {
      process.stderr.write(
        `expeed-sync set: ${scrubber.scrub(err.message)}; nothing was sent, try again when it is online\n`,
      );
      return SET_EXIT.offline;
    }
    if (err instanceof SettingOutcomeUnknownError) {
      process.stderr.write(
        `expeed-sync set: ${scrubber.scrub(err.message)}.\nThe setting MAY OR MAY NOT have been applied; it was recorded as "unknown" in device_setting. Check the device before sending it again.\n`,
      );
      return SET_EXIT.unknown;
    }
    throw err;
  }
  const deadline = formatLocalTime(sent.command.deadline ?? Date.now(), config.timezone);
  ctx.out(
    `sent ${JSON.stringify(settings)} to ${deviceId}: message_id ${sent.messageId}, result expected before ${deadline}`,
  );
  if (!sent.recorded) ctx.out('warning: the "sent" state could not be written to InfluxDB (see the log)');
  if (!flag(args, 'wait')) return SET_EXIT.ok;

  const result = await waitForResult({ pending, writer, logger: log }, sent.messageId);
  switch (result.state) {
    case 'applied':
      ctx.out(`applied: ${deviceId} reported the setting as applied`);
      return SET_EXIT.ok;
    case 'failed':
      process.stderr.write(
        `expeed-sync set: ${deviceId} reported that the setting failed (message_id ${sent.messageId})\n`,
      );
      return SET_EXIT.failed;
    default:
      process.stderr.write(
        `expeed-sync set: no result from ${deviceId} within ${Math.round(config.settingTimeoutMs / 1000)} s (message_id ${sent.messageId}); recorded as timeout — a late result is still recorded\n`,
      );
      return SET_EXIT.timeout;
  }
}

export const command: Command = {
  usage: 'set ID key=value... [--wait]',
  summary:
    'send a device setting, never twice; --wait waits for the pushed result (exit 0 applied, 3 failed, 4 timeout, 5 device offline, 6 outcome unknown)',
  run,
};
