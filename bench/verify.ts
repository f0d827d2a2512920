/**
 * `npm run bench:verify`: `expeed-sync verify` of BENCH_DEVICES (100) devices x BENCH_DAYS (30)
 * days against the simulator (in its own process, BENCH_CADENCE_SEC rows, default 60 s: the
 * simulator's own default; no holes). InfluxDB is seeded by a real backfill of the same range in the
 * production worker (`run --role worker`, compiled): that backfill is the baseline the verify is
 * set against in the same run. Then the built CLI runs `verify --from --to --json` as a user runs it,
 * under GNU time (`/usr/bin/time`: CPU seconds and peak RSS of the verify process). Both at
 * EXPEED_RATE_LIMIT (1000 here, so that the run ends in minutes); the wall time at the default rate
 * is computed from the requests made (requests / default rate), and with BENCH_VERIFY_AT_DEFAULT=1
 * the verify runs a second time at the default rate, measured. BENCH_LATENCY_MS (0) makes the simulator
 * wait that long before each answer (a platform round trip: the verify has one request in flight). The run fails unless the backfill
 * wrote every generated row and the verify found every hour equal.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localToEpoch } from '../src/platform/timestamp.js';
import { loadAverage, pidOf, cpuSeconds, mb } from './lib.js';
import { peakRss, startPullBench, type PullBench } from './pull-bench.js';

const env = process.env;
const DEVICES = Number(env.BENCH_DEVICES ?? 100);
const DAYS = Number(env.BENCH_DAYS ?? 30);
const CADENCE = Number(env.BENCH_CADENCE_SEC ?? 60);
const LATENCY = Number(env.BENCH_LATENCY_MS ?? 0);
const TIMEZONE = env.EXPEED_TIMEZONE ?? 'Asia/Shanghai';
/** platform-local midnight: the range is DAYS whole windows of the backfill grid */
const FROM = localToEpoch(Date.UTC(2025, 0, 1), TIMEZONE);
const TO = FROM + DAYS * 86_400_000;

interface VerifyRun {
  seconds: number;
  requests: number;
  /** history requests the CLI counted itself (pages, every device) */
  pages: number;
  cpu: number;
  peakRss: number;
  influxd: number;
  simulator: number;
  equalHours: number;
  equal: boolean;
}

/** `node bin/expeed-sync.js verify --from --to --json` under GNU time, with the bench's environment. */
async function runVerify(b: PullBench, rate?: number): Promise<VerifyRun> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-verify-'));
  const timeFile = join(dir, 'time');
  const args = [
    '-f',
    '%e %U %S %M',
    '-o',
    timeFile,
    process.execPath,
    'bin/expeed-sync.js',
    'verify',
    '--from',
    new Date(FROM).toISOString(),
    '--to',
    new Date(TO).toISOString(),
    '--json',
  ];
  const influxd = pidOf('influxd');
  const h0 = (await b.sim.stats()).requests.history ?? 0;
  const i0 = cpuSeconds(influxd) ?? NaN;
  const s0 = cpuSeconds(b.sim.pid) ?? NaN;
  const started = performance.now();
  const child = spawn('/usr/bin/time', args, {
    env: { ...b.env, ...(rate ? { EXPEED_RATE_LIMIT: String(rate) } : {}) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  const seconds = (performance.now() - started) / 1000;
  const h1 = (await b.sim.stats()).requests.history ?? 0;
  const [, user, sys, maxKb] = readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  rmSync(dir, { recursive: true, force: true });
  const line = out.split('\n').find((l) => l.startsWith('{"from"'));
  if (!line) throw new Error(`verify printed no JSON summary (exit code ${code}): ${out.slice(0, 500)}`);
  const report = JSON.parse(line) as { equal: boolean; totals: { equal: number }; devices: Array<{ pages: number }> };
  return {
    seconds,
    requests: h1 - h0,
    pages: report.devices.reduce((s, d) => s + d.pages, 0),
    cpu: user + sys,
    peakRss: maxKb * 1024,
    influxd: (cpuSeconds(influxd) ?? NaN) - i0,
    simulator: (cpuSeconds(b.sim.pid) ?? NaN) - s0,
    equalHours: report.totals.equal,
    equal: report.equal && code === 0,
  };
}

const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;

async function main(): Promise<void> {
  const b = await startPullBench({
    name: 'verify',
    devices: DEVICES,
    cadenceSec: CADENCE,
    from: FROM,
    to: TO,
    latencyMs: LATENCY,
  });
  const say = (l: string) => process.stdout.write(`${l}\n`);
  try {
    const rate = b.config.platformRateLimit;
    say(
      `verify benchmark: ${DEVICES} devices x ${DAYS} days (${CADENCE} s cadence, ${(DEVICES * DAYS * 86_400) / CADENCE} rows), round trip +${LATENCY} ms, window ${b.config.backfillWindowMs / 3_600_000} h, page ${b.config.pageLimit}, rate ${rate} req/s (default ${b.defaultRate}), ${b.entry}`,
    );
    say(`load average at start: ${loadAverage()}`);
    // 1. the baseline: a real backfill of the range, which also seeds InfluxDB
    const w = await b.worker();
    const backfill = await b.phase(b.ids.map((deviceId) => ({ deviceId, from: FROM, to: TO, reason: 'manual' })));
    const workerPeak = peakRss(w);
    const rows = (DEVICES * DAYS * 86_400) / CADENCE;
    if (backfill.points !== rows || backfill.failed)
      throw new Error(
        `the backfill wrote ${backfill.points} points (expected ${rows}), ${backfill.failed} jobs failed`,
      );
    say(
      `backfill:  ${backfill.points} points, ${backfill.windows} windows, ${backfill.requests} history requests in ${backfill.seconds.toFixed(1)} s; load average ${loadAverage()}`,
    );
    await w.stop();

    // 2. verify, the built CLI
    const v = await runVerify(b);
    const hours = DEVICES * DAYS * 24;
    say(
      `verify:    ${v.equalHours} of ${hours} hours equal, ${v.requests} history requests (the CLI counted ${v.pages}) in ${v.seconds.toFixed(1)} s, CPU ${v.cpu.toFixed(1)} s, peak RSS ${mb(v.peakRss)}; load average ${loadAverage()}`,
    );
    if (!v.equal || v.equalHours !== hours)
      throw new Error(`verify did not find the copy equal: ${v.equalHours} of ${hours} hours equal`);

    let atDefault: VerifyRun | undefined;
    if (env.BENCH_VERIFY_AT_DEFAULT === '1') {
      atDefault = await runVerify(b, b.defaultRate);
      say(
        `verify at the default ${b.defaultRate} req/s: ${atDefault.requests} requests in ${atDefault.seconds.toFixed(1)} s (${(atDefault.requests / atDefault.seconds).toFixed(1)} req/s), CPU ${atDefault.cpu.toFixed(1)} s, peak RSS ${mb(atDefault.peakRss)}; load average ${loadAverage()}`,
      );
      if (!atDefault.equal) throw new Error('verify at the default rate did not find the copy equal');
    }

    const wallAt = (requests: number) => requests / b.defaultRate;
    say('');
    say(`| figure | backfill (baseline) | verify | verify / backfill |`);
    say(`|---|---:|---:|---:|`);
    say(`| history requests | ${backfill.requests} | ${v.requests} | ${ratio(v.requests, backfill.requests)} |`);
    say(
      `| requests per device-day | ${(backfill.requests / DEVICES / DAYS).toFixed(2)} | ${(v.requests / DEVICES / DAYS).toFixed(2)} | |`,
    );
    say(
      `| wall at ${rate} req/s (measured) | ${backfill.seconds.toFixed(1)} s | ${v.seconds.toFixed(1)} s | ${ratio(v.seconds, backfill.seconds)} |`,
    );
    say(
      `| wall at the default ${b.defaultRate} req/s (requests / rate) | ${wallAt(backfill.requests).toFixed(0)} s | ${wallAt(v.requests).toFixed(0)} s${atDefault ? ` (measured ${atDefault.seconds.toFixed(0)} s)` : ''} | ${ratio(v.requests, backfill.requests)} |`,
    );
    say(
      `| CPU of the process | worker ${backfill.cpu.worker.toFixed(1)} s | verify ${v.cpu.toFixed(1)} s | ${ratio(v.cpu, backfill.cpu.worker)} |`,
    );
    say(
      `| CPU per row | ${((backfill.cpu.worker * 1e6) / rows).toFixed(2)} µs | ${((v.cpu * 1e6) / rows).toFixed(2)} µs | |`,
    );
    say(
      `| peak RSS of the process | worker ${mb(workerPeak)} | verify ${mb(v.peakRss)} | ${ratio(v.peakRss, workerPeak)} |`,
    );
    say(
      `| influxd CPU | ${backfill.cpu.influxd.toFixed(1)} s | ${v.influxd.toFixed(1)} s | ${ratio(v.influxd, backfill.cpu.influxd)} |`,
    );
    say(
      `| simulator CPU | ${backfill.cpu.simulator.toFixed(1)} s | ${v.simulator.toFixed(1)} s | ${ratio(v.simulator, backfill.cpu.simulator)} |`,
    );
    say(`load average at the end: ${loadAverage()}`);
  } finally {
    await b.close();
  }
}

await main();
