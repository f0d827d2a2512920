/** What the benchmarks share: /proc readings, a free port, InfluxQL, and the compiled build. */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { freshCompiledMain } from '../bin/compiled.js';

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
