/**
 * `npm run bench:scale`: what a fleet costs, at 1,000 and 10,000 devices (BENCH_DEVICES=1000,10000),
 * against the simulator in its own process with a 100 ms round trip (BENCH_LATENCY_MS) and the
 * default request rate (EXPEED_RATE_LIMIT, 20/s unless set). For each size, on a fresh Redis prefix
 * and InfluxDB database:
 *
 * - nightly: one nightly slot's enqueue (app.scheduler().fire, the code the scheduler role runs),
 *   its time and the Redis memory it adds (INFO used_memory delta, per device); every device has a
 *   checkpoint one day old, as after the previous night, so a slot queues the night's window and
 *   the EXPEED_LOOKBACK windows before the checkpoint (3 per device with the defaults);
 * - gaps: one gap-check slot (chunks of GAP_CHUNK_SIZE devices, each scanned by GapFinder.scanMany)
 *   against InfluxDB holding 26 h of data every 10 minutes per device, every tenth device with a
 *   3 h hole (the slot must queue exactly those);
 * - status: the service (`run --role worker --role scheduler`, compiled, a child process) polls the
 *   status slot it queues at start; device_status calls counted by the simulator over whole seconds
 *   of steady polling (BENCH_STATUS_SECONDS, 20), as requests/s against the rate; the whole slot's
 *   wall time when it ends within BENCH_STATUS_MAX_SECONDS (90), otherwise projected at that rate
 *   (10k devices at 20/s: 6000 calls, 300 s: the slot is bounded by the rate, measured in part);
 * - `expeed-sync status`: the built CLI spawned as a user runs it, wall time including start-up;
 * - the service's RSS (VmRSS after the poll, VmHWM peak).
 *
 * Redis: a private redis-server (started here, so used_memory is this benchmark's alone) unless
 * REDIS_URL names one (then the delta includes whatever else writes to it). INFLUX_URL as usual.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { loadConfig } from '../src/base/load-config.js';
import { SecretScrubber } from '../src/base/secrets.js';
import { createApp, type App } from '../src/app/app.js';
import { generatedDevices } from '../src/simulator/index.js';
import { zoneOffsetMs } from '../src/platform/timestamp.js';
import { buildIfStale, cpuSeconds, influxql, mb, memory, pidOf, startService } from './lib.js';
import { cpus, loadavg } from 'node:os';
import { createRedis, redisKey } from '../src/base/redis.js';
import { startRedisServer } from '../test/helpers/services.js';

const env = process.env;
const SIZES = (env.BENCH_DEVICES ?? '1000,10000').split(',').map((s) => Number(s.trim()));
const LATENCY_MS = Number(env.BENCH_LATENCY_MS ?? 100);
const STATUS_SECONDS = Number(env.BENCH_STATUS_SECONDS ?? 20);
const STATUS_MAX_SECONDS = Number(env.BENCH_STATUS_MAX_SECONDS ?? 90);
const INFLUX = (env.INFLUX_URL ?? 'http://127.0.0.1:8086').replace(/\/+$/, '');
const PK = 'bench-platform-key';
const SK = 'bench-secret-key';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const CADENCE = 10 * 60_000;
for (const n of SIZES)
  if (!Number.isInteger(n) || n < 10)
    throw new Error(`BENCH_DEVICES: whole numbers >= 10, comma-separated (got "${env.BENCH_DEVICES}")`);

interface Figures {
  devices: number;
  fleetBytes: number;
  nightly: { seconds: number; jobs: number; bytes: number };
  gaps: { seconds: number; jobs: number; points: number; influxdCpu: number };
  status: { planned: number; perSecond: number; rate: number; slotSeconds: number; measured: boolean; said?: string };
  cli: { seconds: number; startup: number; lines: number; code: number | null };
  rss: { now: number; peak: number };
}

const say = (l: string) => process.stdout.write(`${l}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function startSim(
  devices: number,
): Promise<{ url: string; requests(): Promise<Record<string, number>>; close(): void }> {
  const now = Date.now();
  const options = {
    platformKey: PK,
    secretKey: SK,
    devices,
    from: now - 2 * DAY,
    to: now + HOUR,
    seed: 1,
    gapRate: 0,
    latencyMs: LATENCY_MS,
  };
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/sim-server.ts', JSON.stringify(options)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const waiting: Array<(l: string) => void> = [];
  createInterface({ input: child.stdout! }).on('line', (l) => waiting.shift()?.(l));
  const next = () => new Promise<string>((r) => waiting.push(r));
  return next().then((first) => ({
    url: (JSON.parse(first) as { url: string }).url,
    async requests() {
      const p = next();
      child.stdin!.write('stats\n');
      return (JSON.parse(await p) as { requests: Record<string, number> }).requests;
    },
    close: () => child.kill('SIGTERM'),
  }));
}

async function usedMemory(stack: App): Promise<number> {
  const info = await stack.redis.info('memory');
  return Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? NaN);
}

/** 26 h of a point every 10 minutes before `slot` per device; every tenth device misses [hole). Returns the points written. */
async function writeGapData(db: string, ids: string[], slot: number, hole: [number, number]): Promise<number> {
  let points = 0;
  let lines: string[] = [];
  const flush = async () => {
    const res = await fetch(`${INFLUX}/write?db=${db}&precision=ms`, { method: 'POST', body: lines.join('\n') });
    if (res.status !== 204) throw new Error(`InfluxDB write failed: HTTP ${res.status} ${await res.text()}`);
    points += lines.length;
    lines = [];
  };
  for (let i = 0; i < ids.length; i++) {
    for (let t = slot - 26 * HOUR; t < slot; t += CADENCE)
      if (i % 10 !== 0 || t < hole[0] || t >= hole[1])
        lines.push(`device_data,device_id=${ids[i]} temp=${20 + (i % 7)} ${t}`);
    if (lines.length >= 5000) await flush();
  }
  if (lines.length) await flush();
  return points;
}

async function runSize(n: number, redisUrl: string): Promise<Figures> {
  const tag = randomBytes(3).toString('hex');
  const prefix = `bench-scale-${tag}`;
  const db = `bench_scale_${tag}`;
  const sim = await startSim(n);
  const serviceEnv: Record<string, string | undefined> = {
    ...env,
    EXPEED_BASE_URL: sim.url,
    EXPEED_PLATFORM_KEY: PK,
    EXPEED_SECRET_KEY: SK,
    EXPEED_PREFIX: prefix,
    REDIS_URL: redisUrl,
    INFLUX_URL: INFLUX,
    INFLUX_API: env.INFLUX_API ?? 'v1',
    INFLUX_BUCKET: db,
    // the service runs the status poll only: the other slots are measured here, where they can be timed
    EXPEED_SCHEDULE_NIGHTLY: '',
    EXPEED_SCHEDULE_GAPS: '',
    EXPEED_SCHEDULE_STATUS: '*/5 * * * *',
    LOG_LEVEL: env.LOG_LEVEL ?? 'warn',
  };
  const config = loadConfig(serviceEnv);
  const logger = pino({ level: config.logLevel }, pino.destination(2));
  const stack = createApp(config, { logger, scrubber: new SecretScrubber([PK, SK]) });
  let service: Awaited<ReturnType<typeof startService>> | undefined;
  try {
    await influxql(INFLUX, db, `CREATE DATABASE "${db}"`);
    const ids = generatedDevices(n).map((d) => d.id);
    // the last platform-local midnight: a nightly slot; every checkpoint one day before it
    const now = Date.now();
    const off = zoneOffsetMs(now, config.timezone);
    const slot = Math.floor((now + off) / DAY) * DAY - off;
    say(
      `\n${n} devices: rate ${config.platformRateLimit} req/s, round trip ${LATENCY_MS} ms, slot ${new Date(slot).toISOString()} (${config.timezone} midnight)`,
    );

    const m0 = await usedMemory(stack);
    for (let i = 0; i < n; i += 200)
      await Promise.all(
        generatedDevices(n)
          .slice(i, i + 200)
          .map((d) => stack.registry.upsert(d, 'cli')),
      );
    await stack.checkpoints.initialiseMany(ids.map((id) => ({ deviceId: id, from: slot - DAY })));
    const m1 = await usedMemory(stack);
    const fleetBytes = (m1 - m0) / n;
    say(`  fleet:    registry + checkpoints ${mb(m1 - m0)} in Redis = ${Math.round(fleetBytes)} B/device`);

    const scheduler = stack.scheduler({ schedules: {}, logger });
    let t = performance.now();
    const nightly = await scheduler.fire('nightly', new Date(slot));
    const nightlySeconds = (performance.now() - t) / 1000;
    const m2 = await usedMemory(stack);
    // per device: the night's window, and the EXPEED_LOOKBACK re-read before the checkpoint in backfill windows
    const perDevice = 1 + Math.ceil(config.lookbackMs / config.backfillWindowMs);
    if (nightly.jobs !== n * perDevice)
      throw new Error(
        `the nightly slot queued ${nightly.jobs} windows, expected ${perDevice} per device (${n * perDevice}: the night and the lookback)`,
      );
    say(
      `  nightly:  ${nightly.jobs} windows queued in ${nightlySeconds.toFixed(2)} s (${Math.round(n / nightlySeconds)} devices/s, ${perDevice} windows each: the night and the lookback); Redis +${mb(m2 - m1)} = ${Math.round((m2 - m1) / n)} B/device (waiting jobs)`,
    );
    await stack.backfillQueue.obliterate({ force: true });

    const to = slot - 10 * 60_000;
    const hole: [number, number] = [to - 8 * HOUR, to - 5 * HOUR];
    t = performance.now();
    const points = await writeGapData(db, ids, slot, hole);
    say(
      `  data:     ${points} points of 26 h written to InfluxDB in ${((performance.now() - t) / 1000).toFixed(1)} s (every tenth device with a 3 h hole)`,
    );
    const influxd = pidOf('influxd');
    const cpu0 = { influxd: cpuSeconds(influxd) ?? NaN, self: cpuSeconds(process.pid) ?? NaN };
    t = performance.now();
    const gaps = await scheduler.fire('gaps', new Date(slot));
    const gapSeconds = (performance.now() - t) / 1000;
    const gapCpu = {
      influxd: (cpuSeconds(influxd) ?? NaN) - cpu0.influxd,
      self: (cpuSeconds(process.pid) ?? NaN) - cpu0.self,
    };
    const holed = Math.ceil(n / 10);
    if (gaps.jobs !== holed)
      throw new Error(`the gap check queued ${gaps.jobs} windows, expected one per device with a hole (${holed})`);
    say(
      `  gaps:     ${n} devices scanned in ${gapSeconds.toFixed(1)} s (${(n / gapSeconds).toFixed(0)} devices/s), ${gaps.jobs} gap windows queued (every holed device, nothing else)`,
    );
    say(
      `            CPU: influxd ${gapCpu.influxd.toFixed(1)} s = ${((gapCpu.influxd * 1000) / n).toFixed(1)} ms/device, scheduler (this process) ${gapCpu.self.toFixed(1)} s = ${((gapCpu.self * 1000) / n).toFixed(1)} ms/device; load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores`,
    );
    await stack.backfillQueue.obliterate({ force: true });
    await scheduler.close();

    // the service polls the status slot it queues at start
    let said: string | undefined;
    service = await startService(serviceEnv, ['worker', 'scheduler'], {
      args: ['--shutdown-grace', '5s'],
      onLine: (line) => {
        if (line.includes('cannot be polled within one interval')) said = (JSON.parse(line) as { msg: string }).msg;
        else process.stderr.write(`${line}\n`);
      },
    });
    const pollStart = performance.now();
    const counts = stack.statusQueue.getJobs(['waiting', 'active', 'delayed', 'prioritized']);
    const planned = (await counts).reduce((s, j) => s + (j.data.deviceIds?.length ?? 0), 0);
    const calls = async () => (await sim.requests()).device_status ?? 0;
    while ((await calls()) === 0) await sleep(50);
    // the window must end before the slot's calls run out (a small fleet is polled within seconds)
    const expectSeconds = planned / config.platformRateLimit;
    const window = Math.max(2, Math.min(STATUS_SECONDS, Math.floor(expectSeconds) - 4));
    // the shared rate's own count, per second (<prefix>:rate:platform:<second>, INCR per attempt, so
    // min(count, rate) calls were let through in that second); read every 200 ms, keys live 2 s
    const rate = config.platformRateLimit;
    const permits = new Map<number, number>();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const now = Math.floor(Date.now() / 1000);
        for (const sec of [now - 1, now - 2]) {
          const v = await stack.redis.get(redisKey(config.prefix, 'rate', 'platform', String(sec)));
          if (v !== null) permits.set(sec, Math.max(permits.get(sec) ?? 0, Math.min(Number(v), rate)));
        }
        await sleep(200);
      }
    })();
    // whole seconds of steady polling: snapshots half-way through a second, when the second's calls have started
    await sleep(1500 - (Date.now() % 1000));
    const c0 = await calls();
    const s0 = Date.now();
    await sleep(window * 1000 - 200);
    await sleep(Math.max(0, 500 - (Date.now() % 1000)));
    const c1 = await calls();
    const s1 = Date.now();
    await sleep(1500);
    sampling = false;
    await sampler;
    const seconds = (s1 - s0) / 1000;
    const simPerSecond = (c1 - c0) / seconds;
    // the whole seconds between the snapshots
    const first = Math.ceil(s0 / 1000);
    const last = Math.floor(s1 / 1000) - 1;
    let passed = 0;
    for (let sec = first; sec <= last; sec++) passed += permits.get(sec) ?? 0;
    const perSecond = passed / (last - first + 1);
    let slotSeconds = NaN;
    let measured = false;
    for (;;) {
      const c = await stack.statusQueue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
      if (c.waiting + c.active + c.delayed + c.prioritized === 0) {
        slotSeconds = (performance.now() - pollStart) / 1000;
        measured = true;
        break;
      }
      // a slot the rate stretches past the limit is not waited for: projected below
      if (expectSeconds > STATUS_MAX_SECONDS || (performance.now() - pollStart) / 1000 > STATUS_MAX_SECONDS) break;
      await sleep(200);
    }
    if (!measured) slotSeconds = planned / perSecond;
    const pct = (perSecond / rate) * 100;
    say(
      `  status:   ${planned} devices in the slot (of ${n}), ${Math.ceil(planned / 100)} chunk jobs; over ${last - first + 1} whole seconds of steady polling the rate let ${passed} calls through = ${perSecond.toFixed(1)}/s = ${pct.toFixed(0)} % of EXPEED_RATE_LIMIT ${rate}`,
    );
    say(
      `            (the simulator counted ${c1 - c0} device_status calls in those ${seconds.toFixed(1)} s = ${simPerSecond.toFixed(1)}/s; a call late at a second's edge lands in the next)`,
    );
    say(
      `            slot ${measured ? `polled in ${slotSeconds.toFixed(0)} s (wall time from the service being ready)` : `would take ${slotSeconds.toFixed(0)} s at that rate (${planned} calls at ${config.platformRateLimit}/s is over BENCH_STATUS_MAX_SECONDS ${STATUS_MAX_SECONDS}: the rate bounds it; measured over the window above)`}`,
    );
    if (said) say(`            the service said at start: "${said}"`);
    const rss = { now: memory(service.pid, 'VmRSS'), peak: memory(service.pid, 'VmHWM') };
    say(`  service:  RSS ${mb(rss.now)} after the poll, peak ${mb(rss.peak)} (run --role worker --role scheduler)`);
    await service.stop();
    service = undefined;

    // what the CLI costs before it reads anything: start-up of the same built entry
    t = performance.now();
    const help = spawn(process.execPath, ['bin/expeed-sync.js', '--help'], { env: serviceEnv, stdio: 'ignore' });
    await new Promise((r) => help.on('exit', r));
    const startupSeconds = (performance.now() - t) / 1000;
    t = performance.now();
    const cli = spawn(process.execPath, ['bin/expeed-sync.js', 'status'], {
      env: serviceEnv,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let lines = 0;
    createInterface({ input: cli.stdout! }).on('line', () => lines++);
    const code = await new Promise<number | null>((r) => cli.on('exit', r));
    const cliSeconds = (performance.now() - t) / 1000;
    say(
      `  status:   \`expeed-sync status\` (built CLI, spawned) ${cliSeconds.toFixed(2)} s, ${lines} lines, exit code ${code} (\`expeed-sync --help\`: ${startupSeconds.toFixed(2)} s: start-up on this machine)`,
    );
    return {
      devices: n,
      fleetBytes,
      nightly: { seconds: nightlySeconds, jobs: nightly.jobs, bytes: (m2 - m1) / n },
      gaps: { seconds: gapSeconds, jobs: gaps.jobs, points, influxdCpu: gapCpu.influxd },
      status: { planned, perSecond, rate: config.platformRateLimit, slotSeconds, measured, said },
      cli: { seconds: cliSeconds, startup: startupSeconds, lines, code },
      rss,
    };
  } finally {
    if (service) await service.stop();
    await stack.close();
    sim.close();
    await influxql(INFLUX, db, `DROP DATABASE "${db}"`).catch(() => undefined);
    const redis = createRedis(redisUrl);
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
    await redis.quit();
  }
}

async function main(): Promise<void> {
  const entry = buildIfStale(process.cwd()) ? 'compiled (dist/)' : 'tsx (dist/ stale)';
  const own = env.REDIS_URL ? undefined : await startRedisServer();
  const redisUrl = env.REDIS_URL ?? own!.url;
  say(
    `scale benchmark: ${SIZES.join(', ')} devices; service ${entry}; Redis ${own ? 'private redis-server (used_memory is ours alone)' : redisUrl.replace(/\/\/[^@]*@/, '//')}; InfluxDB ${INFLUX}`,
  );
  const all: Figures[] = [];
  try {
    for (const n of SIZES) all.push(await runSize(n, redisUrl));
  } finally {
    await own?.close();
  }
  if (all.length < 2) return;
  const [a, b] = [all[0]!, all[all.length - 1]!];
  const x = b.devices / a.devices;
  const row = (name: string, va: number, vb: number, unit: string, digits = 2) =>
    say(
      `${name.padEnd(34)}${`${va.toFixed(digits)} ${unit}`.padStart(14)}${`${vb.toFixed(digits)} ${unit}`.padStart(14)}${`x ${(vb / va).toFixed(1)}`.padStart(10)}`,
    );
  say(
    `\n${'growth'.padEnd(34)}${`${a.devices} dev`.padStart(14)}${`${b.devices} dev`.padStart(14)}${`(x ${x})`.padStart(10)}`,
  );
  row('nightly enqueue', a.nightly.seconds, b.nightly.seconds, 's');
  row('Redis per device (waiting job)', a.nightly.bytes, b.nightly.bytes, 'B', 0);
  row('Redis per device (registry+ckpt)', a.fleetBytes, b.fleetBytes, 'B', 0);
  row('gap-check slot', a.gaps.seconds, b.gaps.seconds, 's', 1);
  row(
    '  influxd CPU per device',
    (a.gaps.influxdCpu * 1000) / a.devices,
    (b.gaps.influxdCpu * 1000) / b.devices,
    'ms',
    1,
  );
  row('status poll, requests/s', a.status.perSecond, b.status.perSecond, '/s', 1);
  row(
    `status slot (${a.status.measured ? 'wall' : 'projected'} / ${b.status.measured ? 'wall' : 'projected'})`,
    a.status.slotSeconds,
    b.status.slotSeconds,
    's',
    0,
  );
  row('expeed-sync status', a.cli.seconds, b.cli.seconds, 's');
  row('  of which start-up (--help)', a.cli.startup, b.cli.startup, 's');
  row('service RSS after the poll', a.rss.now / 2 ** 20, b.rss.now / 2 ** 20, 'MB', 0);
  row('service peak RSS', a.rss.peak / 2 ** 20, b.rss.peak / 2 ** 20, 'MB', 0);
  const worst = Math.min(...all.map((f) => (f.status.perSecond / f.status.rate) * 100));
  say(`result: status polling at ${worst.toFixed(0)} % of EXPEED_RATE_LIMIT or more (target >= 90 %)`);
}

await main();
