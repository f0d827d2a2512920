/**
 * `npm run bench:lookback`: what the nightly lookback (EXPEED_LOOKBACK, default 2 days) adds to a
 * night, measured on BENCH_DEVICES (150) devices of BENCH_CADENCE_SEC (60) rows in the production
 * worker (`run --role worker`, compiled; the simulator in its own process) and scaled to
 * BENCH_FLEET (10,000) devices. Phases, each run to the end before the next, from a platform-local
 * midnight A and the lookback L:
 *
 * 1. seed: a backfill of [A, A+L) (the history the checkpoint already covers); then a 5-minute block
 *    of 10 s rows is added at the platform for every 10th device, between the held rows (late rows);
 * 2. nightly: the night's new history [A+L, A+L+1d), the part of a night without the lookback;
 * 3. lookback with late rows: the lookback windows the nightly slot queues (lookbackRequests, the
 *    scheduler's function) for a checkpoint at A+L; exactly the added rows must be written;
 * 4. lookback, nothing late: the same windows again (the usual night: compared, nothing written);
 * 5. rewrite: the same range as a plain backfill, which writes every row it reads: what the
 *    lookback would cost without comparing hour by hour first.
 *
 * Every phase at EXPEED_RATE_LIMIT (1000 here); the wall time at the default rate is computed from
 * the requests (requests x fleet / devices / default rate). The run fails unless phase 3 wrote
 * exactly the added rows, phase 4 none, phase 5 every row.
 */
import { lookbackRequests } from '../src/pull/lookback.js';
import type { Checkpoint } from '../src/pull/checkpoints.js';
import { localToEpoch } from '../src/platform/timestamp.js';
import { loadAverage, mb } from './lib.js';
import { peakRss, startPullBench, type PhaseResult } from './pull-bench.js';

const env = process.env;
const DEVICES = Number(env.BENCH_DEVICES ?? 150);
const FLEET = Number(env.BENCH_FLEET ?? 10_000);
const CADENCE = Number(env.BENCH_CADENCE_SEC ?? 60);
const TIMEZONE = env.EXPEED_TIMEZONE ?? 'Asia/Shanghai';
const DAY = 86_400_000;
const A = localToEpoch(Date.UTC(2025, 0, 1), TIMEZONE);
/** late rows per late device: a 5-minute block */
const BLOCK_MS = 5 * 60_000;

async function main(): Promise<void> {
  // history is generated lazily: 30 days cover any lookback the service's configuration gives
  const b = await startPullBench({
    name: 'lookback',
    devices: DEVICES,
    cadenceSec: CADENCE,
    from: A,
    to: A + 30 * DAY,
  });
  // EXPEED_LOOKBACK as the service reads it (default 2d)
  const L = b.config.lookbackMs;
  const say = (l: string) => process.stdout.write(`${l}\n`);
  try {
    if (!(L > 0)) throw new Error('EXPEED_LOOKBACK is 0: nothing to measure');
    const checkpoint = A + L;
    const rowsPerDevice = L / (CADENCE * 1000);
    say(
      `lookback benchmark: ${DEVICES} devices (${CADENCE} s cadence), lookback ${L / 3_600_000} h, window ${b.config.backfillWindowMs / 3_600_000} h, page ${b.config.pageLimit}, worker concurrency ${b.config.workerConcurrency}, rate ${b.config.platformRateLimit} req/s (default ${b.defaultRate}), ${b.entry}; scaled to ${FLEET} devices`,
    );
    say(`load average at start: ${loadAverage()}`);
    const w = await b.worker();
    const phases: Array<[string, PhaseResult]> = [];
    const run = async (name: string, p: Promise<PhaseResult>) => {
      const r = await p;
      if (r.failed) throw new Error(`${name}: ${r.failed} jobs failed`);
      phases.push([name, r]);
      say(
        `${name}: ${r.windows} windows, ${r.requests} history requests, ${r.points} points written (${r.lateRows} late rows), ${r.dirtyHours} hours marked for the rollups, in ${r.seconds.toFixed(1)} s; load average ${loadAverage()}`,
      );
      return r;
    };

    const seed = await run(
      'seed',
      b.phase(b.ids.map((deviceId) => ({ deviceId, from: A, to: checkpoint, reason: 'manual' }))),
    );
    if (seed.points !== DEVICES * rowsPerDevice)
      throw new Error(`the seed wrote ${seed.points} points, expected ${DEVICES * rowsPerDevice}`);
    // late rows: a 5-minute block of 10 s rows (between the held ones, 5 s after each slot) for every 10th device, added at the platform
    const late = b.ids.filter((_, i) => i % 10 === 0);
    const blockFrom = checkpoint - DAY - 2 * 3_600_000 + 5_000;
    const block = Array.from({ length: BLOCK_MS / 10_000 }, (_, k) => ({
      time: blockFrom + k * 10_000,
      values: { temp: 99.5 },
    }));
    for (const id of late) await b.sim.addRows(id, block);
    const added = late.length * block.length;
    say(
      `late rows: ${added} (a 5-minute block of 10 s rows for ${late.length} devices) added to the platform's history before the checkpoint`,
    );

    await run(
      'nightly (new history, 1 day)',
      b.phase(b.ids.map((deviceId) => ({ deviceId, from: checkpoint, to: checkpoint + DAY, reason: 'nightly' }))),
    );
    const checkpoints = new Map<string, Checkpoint>(
      b.ids.map((id) => [id, { upTo: checkpoint, updatedAt: Date.now() }]),
    );
    const withLate = await run('lookback, late rows', b.phase(lookbackRequests(b.ids, checkpoints, L)));
    if (withLate.lateRows !== added)
      throw new Error(`the lookback wrote ${withLate.lateRows} late rows, expected the ${added} added`);
    const clean = await run('lookback, nothing late', b.phase(lookbackRequests(b.ids, checkpoints, L)));
    if (clean.points !== 0) throw new Error(`the second lookback wrote ${clean.points} points, expected none`);
    const rewrite = await run(
      'rewrite (backfill of the lookback range)',
      b.phase(b.ids.map((deviceId) => ({ deviceId, from: A, to: checkpoint, reason: 'manual' }))),
    );
    if (rewrite.points !== DEVICES * rowsPerDevice + added)
      throw new Error(`the rewrite wrote ${rewrite.points} points, expected ${DEVICES * rowsPerDevice + added}`);

    const scale = FLEET / DEVICES;
    const ms = (s: number) => ((s * 1000) / DEVICES).toFixed(2);
    say('');
    say(
      `| phase (${DEVICES} devices) | windows / device | requests / device | points written | hours marked for rollups | wall | worker CPU ms / device | influxd CPU ms / device | simulator CPU ms / device | ${FLEET} devices at ${b.defaultRate} req/s |`,
    );
    say('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const [name, r] of phases.slice(1)) {
      const atDefault = (r.requests * scale) / b.defaultRate;
      say(
        `| ${name} | ${(r.windows / DEVICES).toFixed(2)} | ${(r.requests / DEVICES).toFixed(2)} | ${r.points} | ${r.dirtyHours} | ${r.seconds.toFixed(1)} s | ${ms(r.cpu.worker)} | ${ms(r.cpu.influxd)} | ${ms(r.cpu.simulator)} | ${(atDefault / 60).toFixed(1)} min (${Math.round(r.requests * scale)} requests) |`,
      );
    }
    const cost = (r: PhaseResult) => r.cpu.worker + r.cpu.influxd;
    say('');
    say(
      `compare before writing (nothing late) vs rewriting every row: worker + influxd CPU ${ms(cost(clean))} vs ${ms(cost(rewrite))} ms per device (${(cost(clean) / cost(rewrite)).toFixed(2)}×); points written 0 vs ${rewrite.points / DEVICES} and hours marked for the rollups ${clean.dirtyHours / DEVICES} vs ${rewrite.dirtyHours / DEVICES} per device`,
    );
    say(`worker peak RSS ${mb(peakRss(w))}; load average at the end: ${loadAverage()}`);
  } finally {
    await b.close();
  }
}

await main();
