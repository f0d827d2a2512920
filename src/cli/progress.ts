import type { Job, Queue } from 'bullmq';
import type { BackfillJob } from '../base/jobs.js';
import type { BackfillProgress } from '../pull/backfill-runner.js';

/** Where one device's backfill stands, summed over its windows. */
export interface DeviceProgress {
  deviceId: string;
  windows: number;
  completed: number;
  failed: number;
  /** ms of the device's windows already walked */
  covered: number;
  /** ms of all its windows */
  span: number;
  points: number;
  pages: number;
  /** rows set aside as dead letters, and why (reason -> rows) */
  unreadable: number;
  setAside: Record<string, number>;
}

export interface BackfillFailure {
  deviceId: string;
  from: number;
  to: number;
  jobId: string;
  reason: string;
}

export interface ProgressSnapshot {
  devices: DeviceProgress[];
  total: DeviceProgress;
  failures: BackfillFailure[];
  /** every job has ended */
  finished: boolean;
}

interface Tracked {
  jobId: string;
  deviceId: string;
  from: number;
  to: number;
  state: 'pending' | 'completed' | 'failed';
  progress?: BackfillProgress;
}

/**
 * Follows a set of backfill jobs by polling their state in Redis: cheap, works across processes
 * (the jobs may run on any worker) and needs no event stream that could miss an event.
 */
export class BackfillTracker {
  private readonly jobs: Tracked[];
  private readonly failures: BackfillFailure[] = [];

  constructor(
    private readonly queue: Pick<Queue<BackfillJob>, 'getJob'>,
    jobs: Array<{ jobId: string; deviceId: string; from: number; to: number }>,
    /** jobs read per poll at most, so that thousands of windows do not flood Redis */
    private readonly batch = 200,
  ) {
    const seen = new Set<string>();
    this.jobs = jobs.filter((j) => !seen.has(j.jobId) && seen.add(j.jobId)).map((j) => ({ ...j, state: 'pending' }));
  }

  async poll(): Promise<ProgressSnapshot> {
    const pending = this.jobs.filter((j) => j.state === 'pending');
    // the running ones first: they are the ones whose progress moves
    const reads = pending.slice(0, this.batch);
    const found = await Promise.all(reads.map((t) => this.queue.getJob(t.jobId)));
    reads.forEach((t, i) => this.update(t, found[i]));
    return this.snapshot();
  }

  private update(t: Tracked, job: Job<BackfillJob, BackfillProgress> | undefined): void {
    if (!job) {
      t.state = 'failed';
      this.failures.push({
        deviceId: t.deviceId,
        from: t.from,
        to: t.to,
        jobId: t.jobId,
        reason: 'the job disappeared from the queue (removed by hand?)',
      });
      return;
    }
    if (job.progress && typeof job.progress === 'object') t.progress = job.progress as BackfillProgress;
    if (!job.finishedOn) return;
    if (job.returnvalue && typeof job.returnvalue === 'object') {
      t.state = 'completed';
      t.progress = job.returnvalue;
    } else {
      t.state = 'failed';
      this.failures.push({
        deviceId: t.deviceId,
        from: t.from,
        to: t.to,
        jobId: t.jobId,
        reason: job.failedReason || 'failed without a reason',
      });
    }
  }

  private snapshot(): ProgressSnapshot {
    const byDevice = new Map<string, DeviceProgress>();
    const total: DeviceProgress = {
      deviceId: '*',
      windows: 0,
      completed: 0,
      failed: 0,
      covered: 0,
      span: 0,
      points: 0,
      pages: 0,
      unreadable: 0,
      setAside: {},
    };
    for (const t of this.jobs) {
      let d = byDevice.get(t.deviceId);
      if (!d)
        byDevice.set(
          t.deviceId,
          (d = {
            deviceId: t.deviceId,
            windows: 0,
            completed: 0,
            failed: 0,
            covered: 0,
            span: 0,
            points: 0,
            pages: 0,
            unreadable: 0,
            setAside: {},
          }),
        );
      const span = t.to - t.from;
      const covered =
        t.state === 'pending' ? Math.max(0, Math.min(span, (t.progress?.position ?? t.from) - t.from)) : span;
      for (const p of [d, total]) {
        p.windows++;
        if (t.state === 'completed') p.completed++;
        if (t.state === 'failed') p.failed++;
        p.span += span;
        p.covered += covered;
        p.points += t.progress?.points ?? 0;
        p.pages += t.progress?.pages ?? 0;
        p.unreadable += t.progress?.unreadable ?? 0;
        for (const [reason, n] of Object.entries(t.progress?.setAside ?? {}))
          p.setAside[reason] = (p.setAside[reason] ?? 0) + n;
      }
    }
    return {
      devices: [...byDevice.values()],
      total,
      failures: [...this.failures],
      finished: this.jobs.every((j) => j.state !== 'pending'),
    };
  }
}
