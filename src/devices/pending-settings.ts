import type { Redis } from 'ioredis';
import { redisKey } from '../base/redis.js';
import { withDefaults } from '../base/options.js';

/**
 * Setting commands sent to devices, in Redis so every process sees them: the CLI that sent a
 * command, the ingest worker that receives its `msg_type` 3 result and the sweep that times it
 * out. One hash per command (`<prefix>:setting:<message_id>`) and one sorted set of commands
 * still waiting for their result, scored by deadline (`<prefix>:settings:due`).
 *
 * Every state change is a compare-and-set in a Lua script, so the result push, the CLI's `--wait`
 * and several sweeping workers can race without a command ending in two states.
 */

/**
 * `unknown` is never stored here (the platform gave no message id to key it by): it is the state
 * of the `device_setting` point written when a request may have reached the platform unanswered.
 */
const SETTING_STATE = {
  sent: 'sent',
  applied: 'applied',
  failed: 'failed',
  timeout: 'timeout',
  unknown: 'unknown',
} as const;
export type SettingState = (typeof SETTING_STATE)[keyof typeof SETTING_STATE];

export interface SettingCommand {
  messageId: string;
  deviceId: string;
  /** the settings as sent; `undefined` when a result arrived for a command we have no record of */
  settings?: Record<string, unknown>;
  /** epoch ms the command was sent */
  sentAt?: number;
  /** epoch ms after which a command still `sent` becomes `timeout` */
  deadline?: number;
  state: SettingState;
  /** epoch ms of the first transition out of `sent` */
  resolvedAt?: number;
}

export interface PendingStoreOptions {
  /** how long a command's record is kept after its deadline or result, ms (default 7 days) */
  retentionMs: number;
}

export const DEFAULT_PENDING_STORE_OPTIONS: PendingStoreOptions = { retentionMs: 7 * 86_400_000 };

// KEYS: record, due  ARGV: messageId, deviceId, settingsJson, sentAt, deadline, ttlMs
const ADD = `
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'deviceId', ARGV[2], 'settings', ARGV[3], 'sentAt', ARGV[4], 'deadline', ARGV[5])
  return redis.call('HGET', KEYS[1], 'state')
end
redis.call('HSET', KEYS[1], 'messageId', ARGV[1], 'deviceId', ARGV[2], 'settings', ARGV[3], 'sentAt', ARGV[4], 'deadline', ARGV[5], 'state', 'sent')
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
return 'sent'`;

// A result moves `sent` or `timeout` (a late result is still the truth) to applied/failed; a
// second, different result for a command already applied/failed is ignored (the first wins).
// KEYS: record, due  ARGV: messageId, deviceId, state, now, ttlMs  -> {changed, state}
const RESOLVE = `
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  redis.call('HSET', KEYS[1], 'messageId', ARGV[1], 'deviceId', ARGV[2], 'state', ARGV[3], 'resolvedAt', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return {1, ARGV[3]}
end
redis.call('ZREM', KEYS[2], ARGV[1])
if state == 'sent' or state == 'timeout' then
  redis.call('HSET', KEYS[1], 'state', ARGV[3], 'resolvedAt', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return {1, ARGV[3]}
end
return {0, state}`;

// Commands past their deadline: `sent` becomes `timeout`. A command stays in the due set until
// `acknowledge` (its timeout point written), so a failed write is repeated by the next sweep.
// KEYS: due  ARGV: now, recordPrefix, ttlMs, limit  -> message ids now in state timeout
const SWEEP = `
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[4]))
local out = {}
for _, id in ipairs(ids) do
  local key = ARGV[2] .. id
  local state = redis.call('HGET', key, 'state')
  if state == 'sent' then
    redis.call('HSET', key, 'state', 'timeout', 'resolvedAt', ARGV[1])
    redis.call('PEXPIRE', key, ARGV[3])
    table.insert(out, id)
  elseif state == 'timeout' then
    table.insert(out, id)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out`;

function toCommand(h: Record<string, string>): SettingCommand | undefined {
  if (!h.messageId || !h.state) return undefined;
  const num = (v: string | undefined) => (v === undefined || v === '' ? undefined : Number(v));
  const cmd: SettingCommand = { messageId: h.messageId, deviceId: h.deviceId ?? '', state: h.state as SettingState };
  if (h.settings) cmd.settings = JSON.parse(h.settings) as Record<string, unknown>;
  const sentAt = num(h.sentAt);
  const deadline = num(h.deadline);
  const resolvedAt = num(h.resolvedAt);
  if (sentAt !== undefined) cmd.sentAt = sentAt;
  if (deadline !== undefined) cmd.deadline = deadline;
  if (resolvedAt !== undefined) cmd.resolvedAt = resolvedAt;
  return cmd;
}

export type PendingRedis = Pick<Redis, 'eval' | 'hgetall' | 'zrem' | 'zrange'>;

export class PendingSettingsStore {
  private readonly options: PendingStoreOptions;
  private readonly due: string;
  private readonly recordPrefix: string;

  constructor(
    private readonly redis: PendingRedis,
    prefix: string,
    options: Partial<PendingStoreOptions> = {},
  ) {
    this.options = withDefaults(DEFAULT_PENDING_STORE_OPTIONS, options);
    this.due = redisKey(prefix, 'settings', 'due');
    this.recordPrefix = `${redisKey(prefix, 'setting')}:`;
  }

  private key(messageId: string): string {
    return this.recordPrefix + messageId;
  }

  /** Records a command just sent; returns its state (not `sent` when its result already arrived). */
  async add(cmd: {
    messageId: string;
    deviceId: string;
    settings: Record<string, unknown>;
    sentAt: number;
    deadline: number;
  }): Promise<SettingState> {
    const ttl = Math.max(1, cmd.deadline - cmd.sentAt) + this.options.retentionMs;
    const state = await this.redis.eval(
      ADD,
      2,
      this.key(cmd.messageId),
      this.due,
      cmd.messageId,
      cmd.deviceId,
      JSON.stringify(cmd.settings),
      cmd.sentAt,
      cmd.deadline,
      ttl,
    );
    return state as SettingState;
  }

  async get(messageId: string): Promise<SettingCommand | undefined> {
    return toCommand(await this.redis.hgetall(this.key(messageId)));
  }

  /**
   * Applies a pushed result. `changed` is false when the command already had a final state (a
   * repeated push, or a contradicting one); `command` is the record as it now stands.
   */
  async resolve(
    messageId: string,
    deviceId: string,
    state: 'applied' | 'failed',
    at: number,
  ): Promise<{ changed: boolean; command: SettingCommand }> {
    const [changed] = (await this.redis.eval(
      RESOLVE,
      2,
      this.key(messageId),
      this.due,
      messageId,
      deviceId,
      state,
      at,
      this.options.retentionMs,
    )) as [number, string];
    const command = await this.get(messageId);
    if (!command)
      throw new Error(
        `setting command ${messageId} vanished from Redis right after it was resolved (evicted? Redis needs maxmemory-policy noeviction)`,
      );
    return { changed: changed === 1, command };
  }

  /** Commands past their deadline, now `timeout`, whose timeout point is still to be written. */
  async sweep(now: number, limit = 500): Promise<SettingCommand[]> {
    const ids = (await this.redis.eval(
      SWEEP,
      1,
      this.due,
      now,
      this.recordPrefix,
      this.options.retentionMs,
      limit,
    )) as string[];
    const out: SettingCommand[] = [];
    for (const id of ids) {
      const cmd = await this.get(id);
      if (cmd) out.push(cmd);
    }
    return out;
  }

  /** The timeout of these commands is recorded: they leave the due set. */
  async acknowledge(messageIds: string[]): Promise<void> {
    if (messageIds.length > 0) await this.redis.zrem(this.due, ...messageIds);
  }

  /** Message ids of commands still waiting for a result (or for their timeout to be recorded). */
  async waiting(limit = 1000): Promise<string[]> {
    return this.redis.zrange(this.due, 0, limit - 1);
  }
}
