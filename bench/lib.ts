/** What the benchmarks share: /proc readings, a free port, InfluxQL, the compiled build, the service as a child process. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { freshCompiledMain } from '../bin/compiled.js';
import { createRedis } from '../src/base/redis.js';

/** USER_HZ: /proc/PID/stat counts CPU time in these ticks (100 on Linux). */
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU seconds (user + system) a process has used so far, from /proc/PID/stat; undefined when it is gone. */
export function cpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // fields after the command (which may hold spaces) in parentheses; utime and stime are 14 and 15
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/** The pid of the oldest process whose command name is `comm` (influxd, redis-server), if any. */
export function pidOf(comm: string): number | undefined {
  const pids = readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .sort((a, b) => a - b);
  return pids.find((pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === comm;
    } catch {
      return false; // gone meanwhile
    }
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export interface InfluxSeries {
  name?: string;
  tags?: Record<string, string>;
  columns?: string[];
  values: unknown[][];
}

/** Runs one InfluxQL statement (1.x `/query`) and returns its series; throws naming the statement. */
export async function influxql(url: string, db: string, q: string): Promise<InfluxSeries[]> {
  const res = await fetch(`${url}/query?${new URLSearchParams({ db, q, epoch: 'ms' })}`, { method: 'POST' });
  const body = (await res.json()) as { results?: Array<{ error?: string; series?: InfluxSeries[] }> };
  const err = body.results?.[0]?.error;
  if (!res.ok || err) throw new Error(`InfluxQL "${q}" failed: ${err ?? res.status}`);
  return body.results?.[0]?.series ?? [];
}

/**
 * `npm run build` when dist/ is missing or stale, so that expeed-sync runs as users run it.
 * Throws when the build fails; returns whether dist/ is now a build of the current sources.
 */
export function buildIfStale(root: string): boolean {
  if (freshCompiledMain(root)) return true;
  const r = spawnSync(process.execPath, [join(root, 'bin/build.js')], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('npm run build failed');
  return freshCompiledMain(root) !== undefined;
}

/**
 * The webhook benchmark's load generator: `autocannon` only when BENCH_LOADGEN says so, otherwise
 * wrk, installed from Debian when missing (as `WITH_BENCH_TOOLS=1 bash scripts/setup.sh` does; sudo
 * when not root). Throws with one line naming what failed when wrk cannot be installed, rather than
 * measuring with another tool than the figures in docs/benchmarks.md.
 */
export function loadGenerator(choice = process.env.BENCH_LOADGEN): 'wrk' | 'autocannon' {
  if (choice === 'autocannon') return 'autocannon';
  if (choice !== undefined && choice !== '' && choice !== 'wrk')
    throw new Error(`BENCH_LOADGEN: wrk or autocannon (got "${choice}")`);
  const hasWrk = () => spawnSync('wrk', ['--version']).error === undefined;
  if (hasWrk()) return 'wrk';
  process.stderr.write("bench: wrk is not installed; installing Debian's wrk (apt-get install -y wrk)\n");
  const sudo = process.getuid?.() === 0 ? '' : 'sudo ';
  const r = spawnSync(
    'sh',
    [
      '-c',
      `${sudo}apt-get update -qq && DEBIAN_FRONTEND=noninteractive ${sudo}apt-get install -y -qq --no-install-recommends wrk`,
    ],
    { encoding: 'utf8' },
  );
  if (r.status === 0 && hasWrk()) return 'wrk';
  const why =
    `${r.error?.message ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-3).join(' / ') || `exit ${r.status}`;
  throw new Error(
    `wrk is not installed and installing it failed (apt-get install -y wrk: ${why}); install wrk, or set BENCH_LOADGEN=autocannon to measure with autocannon instead`,
  );
}

export function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(0)} MB`;
}

/** A field of /proc/PID/status in bytes (VmHWM: peak resident set, VmRSS: current). */
export function memory(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

export interface ServiceProcess {
  child: ChildProcess;
  pid: number;
  /** SIGTERM; resolves to the exit code */
  stop(): Promise<number | null>;
}

/**
 * `node bin/expeed-sync.js run --role R...` with the given environment, as a user runs it (node flags
 * from BENCH_NODE_OPTIONS); ready once its /readyz (on --ops-port) answers 200: Redis, InfluxDB and
 * every worker running. `onLine` receives its stdout (the JSON log) line by line; without it the
 * output is passed through. The worker role queues nothing by itself (catch-up, the first sync of
 * new devices and the status slot at start are the scheduler's).
 */
export async function startService(
  env: Record<string, string | undefined>,
  roles: string[],
  options: { args?: string[]; onLine?: (line: string) => void } = {},
): Promise<ServiceProcess> {
  const port = await freePort();
  const nodeArgs = (env.BENCH_NODE_OPTIONS ?? '').split(/\s+/).filter(Boolean);
  const roleArgs = roles.flatMap((r) => ['--role', r]);
  const args = [
    ...nodeArgs,
    'bin/expeed-sync.js',
    'run',
    ...roleArgs,
    '--ops-port',
    String(port),
    ...(options.args ?? []),
  ];
  const child = spawn(process.execPath, args, {
    env,
    stdio: ['ignore', options.onLine ? 'pipe' : 'inherit', 'inherit'],
  });
  if (options.onLine) createInterface({ input: child.stdout! }).on('line', options.onLine);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const what = `the service (${roles.join(', ')})`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${what} exited at start with code ${child.exitCode}`);
    const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${what} was not ready within 60 s`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    child,
    pid: child.pid!,
    stop: () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

export interface SimProcess {
  url: string;
  pid: number;
  /** the simulator's stats (requests per endpoint, token calls) */
  stats(): Promise<{ tokenCalls: number; requests: Record<string, number> } & Record<string, unknown>>;
  /** adds rows to a device's history at the platform (rows that arrive late) */
  addRows(deviceId: string, rows: Array<{ time: number; values: Record<string, unknown> }>): Promise<void>;
  close(): void;
}

/**
 * The simulator in its own process (test/fixtures/sim-server.ts), so that its CPU does not count as
 * ours: `options` are its SimulatorOptions; ready once it printed its url.
 */
export async function startSimProcess(options: Record<string, unknown>): Promise<SimProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/sim-server.ts', JSON.stringify(options)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  const waiting: Array<(l: string) => void> = [];
  lines.on('line', (l) => waiting.shift()?.(l));
  const next = () => new Promise<string>((r) => waiting.push(r));
  const first = await next();
  return {
    url: (JSON.parse(first) as { url: string }).url,
    pid: child.pid!,
    async stats() {
      const p = next();
      child.stdin!.write('stats\n');
      return JSON.parse(await p) as Awaited<ReturnType<SimProcess['stats']>>;
    },
    async addRows(deviceId, rows) {
      const p = next();
      child.stdin!.write(`add ${JSON.stringify({ deviceId, rows })}\n`);
      await p;
    },
    close: () => child.kill('SIGTERM'),
  };
}

/** Resolves once a BullMQ queue has no job waiting, active, delayed or prioritised (polled every 200 ms). */
export async function drained(queue: {
  getJobCounts(...types: string[]): Promise<Record<string, number>>;
}): Promise<void> {
  for (;;) {
    const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    if (c.waiting + c.active + c.delayed + c.prioritized === 0) return;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The 1-, 5- and 15-minute load averages, as `uptime` shows them. */
export function loadAverage(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

/** Deletes every Redis key under `<prefix>:` (a benchmark's own prefix, at its end). */
export async function removePrefix(redisUrl: string, prefix: string): Promise<void> {
  const redis = createRedis(redisUrl);
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== '0');
  await redis.quit();
}
