/**
 * The queue names every producer and processor goes through; BullMQ's `prefix` is the
 * installation's EXPEED_PREFIX. Each queue's payload is one of the job types below, named where
 * the queue or worker is made (`Queue<BackfillJob>`, `Worker<RollupJob>`...).
 */
export const QUEUE = {
  backfill: 'backfill',
  status: 'status',
  ingest: 'ingest',
  rollup: 'rollup',
} as const;

/** A history window of one device, [from, to) in epoch ms. */
export interface BackfillJob {
  deviceId: string;
  from: number;
  to: number;
  /**
   * what asked for it: nightly, catch-up, gap, manual; lookback: re-read of held history, only late
   * rows written; verify: the scheduled verification (repairs); reconnect: a device's offline span,
   * [offline observed, online observed), re-read as lookback windows once it has settled (src/pull/reconnect.ts)
   */
  reason: 'nightly' | 'catch-up' | 'gap' | 'manual' | 'lookback' | 'verify' | 'reconnect';
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
  data: Array<Record<string, unknown> & { timestamp: string | number }>;
  /** rows of the push that cannot be read, with the reason: the ingest worker keeps them as dead letters */
  unreadable?: Array<{ reason: string; raw: unknown }>;
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
 * is cleared only if that score is unchanged after the rollup was written). With `tier: '1d'` the
 * entries are dirty days instead (each the epoch ms of a platform-local midnight).
 */
export interface RollupJob {
  deviceId: string;
  hours: Array<[hour: number, score: string]>;
  /** absent: hours (`device_data_1h`); '1d': days (`device_data_1d`) */
  tier?: '1d';
}
