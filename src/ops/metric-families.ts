import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/**
 * The service's Prometheus metrics. Components stay unaware of them: the platform client (src/ops/platform-metering.ts)
 * and the writer (here) are wrapped by decorators, and gauges that mirror Redis state (token budget, queue
 * depths, dead letters, the rollup backlog) are read at scrape time through `collectors`.
 */
export interface Metrics {
  registry: Registry;
  platformRequests: Counter<'endpoint' | 'result'>;
  platformLatency: Histogram<'endpoint'>;
  platformThrottled: Counter<'endpoint' | 'status'>;
  pagesFetched: Counter;
  pointsWritten: Counter<'source'>;
  writeErrors: Counter<'source'>;
  deadLettered: Counter<'source'>;
  sameTimeConflicts: Counter<'source'>;
  lastDataTime: Gauge<'device_id'>;
  /** 1 for each registered device `expeed-sync status` calls failing, 0 for the others (set at scrape time) */
  deviceFailing: Gauge<'device_id'>;
  gapsFound: Counter<'device_id'>;
  lateRows: Counter<'device_id'>;
  verifyHours: Counter<'result'>;
  jobDuration: Histogram<'queue' | 'outcome'>;
  /** nightly/catch-up windows complete without a walk: currentDatapoints showed nothing new */
  walksSkipped: Counter;
  statusSlotsSkipped: Counter;
  /** set by the scrape-time collectors */
  tokenCallsToday: Gauge;
  tokenBudget: Gauge;
  tokenRefreshes: Counter;
  tokenCooldown: Gauge<'reason'>;
  queueDepth: Gauge<'queue' | 'state'>;
  deadLetters: Gauge;
  /** the dead-letter budget, read from Redis at scrape time */
  deadLetterBytes: Gauge;
  deadLetterMaxBytes: Gauge;
  deadLettersNotKept: Gauge<'kind' | 'source'>;
  rollupBacklog: Gauge<'tier'>;
  rollupBacklogOldest: Gauge<'tier'>;
  /** requests the webhook refused, by reason (see RefusalReason) */
  webhookRefused: Counter<'reason'>;
}

/** Device hours the scheduled verification checked, by result. */
export function verifyMetrics(r: Registry[]): Pick<Metrics, 'verifyHours'> {
  const verifyHours = new Counter({
    name: 'expeed_verify_hours_total',
    help: 'Device hours checked by the scheduled verification, by result (equal, missing, extra, differing, repaired)',
    labelNames: ['result'],
    registers: r,
  });
  // every result at 0 from the start: increase() then counts the hours of the process's first verification too
  for (const result of ['equal', 'missing', 'extra', 'differing', 'repaired']) verifyHours.inc({ result }, 0);
  return { verifyHours };
}

/** The platform client's calls: requests, latency, throttling, history pages. */
export function platformMetrics(
  r: Registry[],
): Pick<Metrics, 'platformRequests' | 'platformLatency' | 'platformThrottled' | 'pagesFetched'> {
  return {
    platformRequests: new Counter({
      name: 'expeed_platform_requests_total',
      help: 'Platform API requests by endpoint and result code (or error class)',
      labelNames: ['endpoint', 'result'],
      registers: r,
    }),
    platformLatency: new Histogram({
      name: 'expeed_platform_request_seconds',
      help: 'Platform API request latency',
      labelNames: ['endpoint'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: r,
    }),
    platformThrottled: new Counter({
      name: 'expeed_platform_throttled_total',
      help: "Platform answers HTTP 429 or 503 with Retry-After (every process's platform calls then pause for that long, at most 5 min), by endpoint and status",
      labelNames: ['endpoint', 'status'],
      registers: r,
    }),
    pagesFetched: new Counter({ name: 'expeed_history_pages_total', help: 'History pages fetched', registers: r }),
  };
}

/** What the writer did with points, by source: written, failed, dead-lettered, same-time conflicts. */
export function writeMetrics(
  r: Registry[],
): Pick<Metrics, 'pointsWritten' | 'writeErrors' | 'deadLettered' | 'sameTimeConflicts'> {
  return {
    pointsWritten: new Counter({
      name: 'expeed_points_written_total',
      help: 'Points acknowledged by InfluxDB, by source (pull, push, poll, setting)',
      labelNames: ['source'],
      registers: r,
    }),
    writeErrors: new Counter({
      name: 'expeed_write_errors_total',
      help: 'Writes to InfluxDB that failed (retryably) after the writer gave up',
      labelNames: ['source'],
      registers: r,
    }),
    deadLettered: new Counter({
      name: 'expeed_dead_lettered_total',
      help: 'Points or pushes set aside as dead letters, by source',
      labelNames: ['source'],
      registers: r,
    }),
    sameTimeConflicts: new Counter({
      name: 'expeed_same_time_conflicts_total',
      help: 'Fields two rows of one device and millisecond both carried with different values (the later row won), by source',
      labelNames: ['source'],
      registers: r,
    }),
  };
}

/** Per-device series: failing or not, newest data, late rows, gaps. */
export function deviceMetrics(
  r: Registry[],
): Pick<Metrics, 'deviceFailing' | 'lastDataTime' | 'lateRows' | 'gapsFound'> {
  return {
    deviceFailing: new Gauge({
      name: 'expeed_device_failing',
      help: 'Per registered device: 1 when it is failing as expeed-sync status says (the platform refused it, or failed backfill jobs of it are kept), else 0',
      labelNames: ['device_id'],
      registers: r,
    }),
    lastDataTime: new Gauge({
      name: 'expeed_last_data_timestamp_seconds',
      help: 'Newest data point written per device (Unix seconds)',
      labelNames: ['device_id'],
      registers: r,
    }),
    lateRows: new Counter({
      name: 'expeed_late_rows_total',
      help: "Rows the lookback (the nightly's, before a device's checkpoint, and the re-read of an offline span after a reconnect) found at the platform that InfluxDB lacked (or held with other values), written",
      labelNames: ['device_id'],
      registers: r,
    }),
    gapsFound: new Counter({
      name: 'expeed_gaps_found_total',
      help: 'Gaps found in InfluxDB per device',
      labelNames: ['device_id'],
      registers: r,
    }),
  };
}

/** Job durations and the work the schedules skipped. */
export function jobMetrics(r: Registry[]): Pick<Metrics, 'jobDuration' | 'walksSkipped' | 'statusSlotsSkipped'> {
  return {
    jobDuration: new Histogram({
      name: 'expeed_job_seconds',
      help: 'BullMQ job durations by queue and outcome',
      labelNames: ['queue', 'outcome'],
      buckets: [0.01, 0.05, 0.25, 1, 5, 15, 60, 300, 1800],
      registers: r,
    }),
    walksSkipped: new Counter({
      name: 'expeed_walks_skipped_total',
      help: 'Nightly and catch-up windows marked complete without a history walk (currentDatapoints showed no newer row)',
      registers: r,
    }),
    statusSlotsSkipped: new Counter({
      name: 'expeed_status_slots_skipped_total',
      help: "Status poll slots skipped because the previous slot's poll was still running",
      registers: r,
    }),
  };
}

/** The token budget, mirrored at scrape time (see `setTokenUsage`), and this process's refreshes. */
export function tokenMetrics(
  r: Registry[],
): Pick<Metrics, 'tokenCallsToday' | 'tokenBudget' | 'tokenRefreshes' | 'tokenCooldown'> {
  return {
    tokenCallsToday: new Gauge({
      name: 'expeed_token_calls_today',
      help: 'Token endpoint calls made this platform day',
      registers: r,
    }),
    tokenBudget: new Gauge({
      name: 'expeed_token_daily_limit',
      help: 'Token endpoint calls allowed per platform day',
      registers: r,
    }),
    tokenRefreshes: new Counter({
      name: 'expeed_token_refreshes_total',
      help: 'Token refreshes made by this process',
      registers: r,
    }),
    tokenCooldown: new Gauge({
      name: 'expeed_token_cooldown_seconds',
      help: 'Seconds left of the pause of token calls, by reason: credentials_rejected (the token call was refused) or fresh_token_rejected (the platform rejected a token that had never worked); 0 when none',
      labelNames: ['reason'],
      registers: r,
    }),
  };
}

/** Redis state read at scrape time: queue depths, dead letters and their budget, the rollup backlog. */
export function backlogMetrics(
  r: Registry[],
): Pick<
  Metrics,
  | 'queueDepth'
  | 'deadLetters'
  | 'deadLetterBytes'
  | 'deadLetterMaxBytes'
  | 'rollupBacklog'
  | 'rollupBacklogOldest'
  | 'deadLettersNotKept'
> {
  return {
    queueDepth: new Gauge({
      name: 'expeed_queue_jobs',
      help: 'Jobs per queue and state',
      labelNames: ['queue', 'state'],
      registers: r,
    }),
    deadLetters: new Gauge({ name: 'expeed_dead_letters', help: 'Dead letters currently kept', registers: r }),
    deadLetterBytes: new Gauge({
      name: 'expeed_dead_letter_bytes',
      help: 'Bytes the kept dead letters take in Redis (accounted)',
      registers: r,
    }),
    deadLetterMaxBytes: new Gauge({
      name: 'expeed_dead_letter_max_bytes',
      help: 'The dead-letter budget (EXPEED_DEAD_LETTER_MAX_BYTES)',
      registers: r,
    }),
    rollupBacklog: new Gauge({
      name: 'expeed_rollup_backlog',
      help: 'Rollup buckets waiting to be (re)computed, by tier (hour: dirty device-hours; 1d: dirty device-days)',
      labelNames: ['tier'],
      registers: r,
    }),
    rollupBacklogOldest: new Gauge({
      name: 'expeed_rollup_backlog_oldest_seconds',
      help: 'Seconds since the longest-waiting dirty bucket of a tier became due (hour: ended or last touched; 1d: last touched; 0 without a backlog)',
      labelNames: ['tier'],
      registers: r,
    }),
    deadLettersNotKept: new Gauge({
      name: 'expeed_dead_letters_not_kept',
      help: 'Letters counted but not kept because the budget was spent, by kind and source (all processes, ever)',
      labelNames: ['kind', 'source'],
      registers: r,
    }),
  };
}

/** Requests the webhook refused. */
export function webhookMetrics(r: Registry[]): Pick<Metrics, 'webhookRefused'> {
  return {
    webhookRefused: new Counter({
      name: 'expeed_webhook_refused_total',
      help: 'Webhook requests refused, by reason: signature, replay, handshake (nothing kept), body (kept as a dead letter when readable), budget (not kept: dead-letter budget spent)',
      labelNames: ['reason'],
      registers: r,
    }),
  };
}
