import { Redis, type RedisOptions } from 'ioredis';

/**
 * One typed map of queue names to job payloads. Every producer and processor goes through these
 * names; BullMQ's `prefix` is the installation's EXPEED_PREFIX.
 */
export const QUEUE = {
  backfill: 'backfill',
  status: 'status',
  ingest: 'ingest',
  rollup: 'rollup',
} as const;

export type QueueName = (typeof QUEUE)[keyof typeof QUEUE];

/** A history window of one device, [from, to) in epoch ms. */
export interface BackfillJob {
  deviceId: string;
  from: number;
  to: number;
  /** what asked for it: nightly, catch-up, gap, manual */
  reason: 'nightly' | 'catch-up' | 'gap' | 'manual';
  /** the job may spend the operator's token reserve (manual commands only) */
  useReserve?: boolean;
}

export interface StatusJob {
  /** the devices to poll; all registered devices when omitted */
  deviceIds?: string[];
}

/** A push exactly as validated by the webhook, received at `receivedAt` (epoch ms). */
export type IngestJob =
  | { msgType: 1; receivedAt: number; body: StatusPush }
  | { msgType: 2; receivedAt: number; body: DataPush }
  | { msgType: 3; receivedAt: number; body: SettingResultPush };

export interface StatusPush {
  device_id: string;
  device_key?: string;
  device_sn?: string;
  device_status: number;
}

export interface DataPush {
  device_id: string;
  device_key?: string;
  data: Array<Record<string, unknown> & { timestamp: string }>;
}

export interface SettingResultPush {
  message_id: string;
  device_id: string;
  /** 0 = applied, 1 = failed */
  set_result: number;
}

/**
 * One `ingest` job: the pushes the webhook stored together (group commit — every push is answered
 * ok only once the job holding it is stored). One push per job at low load, many under load.
 */
export interface IngestBatchJob {
  pushes: IngestJob[];
}

/**
 * Settled dirty hours of one device to roll up, each with its dirty-set score when read (the hour
 * is cleared only if that score is unchanged after the rollup was written).
 */
export interface RollupJob {
  deviceId: string;
  hours: Array<[hour: number, score: string]>;
}

export interface JobTypes {
  [QUEUE.backfill]: BackfillJob;
  [QUEUE.status]: StatusJob;
  [QUEUE.ingest]: IngestBatchJob;
  [QUEUE.rollup]: RollupJob;
}

/** Redis key of shared state, under the installation's prefix: `redisKey('expeed', 'token')` -> `expeed:token`. */
export function redisKey(prefix: string, ...parts: string[]): string {
  return [prefix, ...parts].join(':');
}

/**
 * A Redis connection. BullMQ workers need `maxRetriesPerRequest: null` (blocking commands wait
 * through reconnects); commands that must fail fast (the webhook's enqueue) pass a number.
 */
export function createRedis(url: string, options: RedisOptions = {}): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true, ...options });
}
