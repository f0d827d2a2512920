/**
 * The scheduler's options and their defaults (./scheduler.ts runs the schedules, ./schedule-slots.ts
 * holds what each slot does; both read these).
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { PLATFORM_DEFAULTS, type SchedulesConfig } from '../base/config.js';
import type { Logger } from '../base/log.js';
import type { StatusJob } from '../base/jobs.js';
import type { DeviceRegistry } from '../devices/registry.js';
import type { BackfillQueue } from './backfill-queue.js';
import type { Checkpoints } from './checkpoints.js';
import type { GapFinder } from './gap-finder.js';
import { GAP_CHUNK_SIZE } from './gap-chunks.js';
import type { VerifyLedger } from './verify-run.js';
import { DEFAULT_STATUS_SLOT } from './status-slot.js';

export type ScheduleName = keyof SchedulesConfig;

export interface SchedulerOptions {
  redis: Pick<Redis, 'set' | 'get' | 'eval' | 'hgetall' | 'hdel'>;
  prefix: string;
  /** IANA zone the cron expressions are read in (EXPEED_TIMEZONE) */
  timezone: string;
  schedules: SchedulesConfig;
  registry: Pick<DeviceRegistry, 'list'>;
  checkpoints: Pick<Checkpoints, 'getMany'>;
  backfills: Pick<BackfillQueue, 'enqueueMany'>;
  statusQueue: Pick<Queue<StatusJob>, 'addBulk' | 'getJobCounts'>;
  gapFinder: Pick<GapFinder, 'scanMany'>;
  /** where the scheduled verification's totals are kept (status shows them) */
  verifyLedger?: Pick<VerifyLedger, 'start'>;
  /** EXPEED_LOOKBACK, ms: the nightly slot also re-reads this much before each checkpoint (0 = off) */
  lookbackMs?: number;
  /** where a device without a checkpoint starts (EXPEED_BACKFILL_START) */
  backfillStart: number;
  logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** the gap check looks this far back (ms, default 24 h) */
  gapLookbackMs: number;
  /** and leaves out the newest ms, which pushes and the nightly run may still fill (default 10 min) */
  gapSettleMs: number;
  /** devices per GapFinder.scanMany call in a gap check: a failed call loses only its chunk (default GAP_CHUNK_SIZE, 250) */
  gapChunkSize: number;
  /** chunks whose InfluxDB scans run at once in a gap check (default 2) */
  gapConcurrency: number;
  /** platform requests a second (EXPEED_RATE_LIMIT): how many devices one status slot can poll */
  statusRatePerSecond: number;
  /** devices per status job */
  statusChunkSize: number;
  /** the status interval; default: the shortest gap between runs of the status cron expression */
  statusIntervalMs?: number;
  /** a status slot was skipped because the previous slot's poll still runs (expeed_status_slots_skipped_total) */
  onStatusSkipped?: () => void;
}

export const DEFAULT_SCHEDULER: Pick<
  SchedulerOptions,
  'gapLookbackMs' | 'gapSettleMs' | 'gapChunkSize' | 'gapConcurrency' | 'statusRatePerSecond' | 'statusChunkSize'
> = {
  gapLookbackMs: 86_400_000,
  gapSettleMs: 10 * 60_000,
  gapChunkSize: GAP_CHUNK_SIZE,
  gapConcurrency: 2,
  statusRatePerSecond: PLATFORM_DEFAULTS.requestRate,
  statusChunkSize: DEFAULT_STATUS_SLOT.chunkSize,
};

/** What a caller gives: every option, those with a default optional. */
export type SchedulerInput = Omit<SchedulerOptions, keyof typeof DEFAULT_SCHEDULER> & Partial<SchedulerOptions>;
