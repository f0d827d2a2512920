/**
 * `npm run bench:webhook`: wrk (autocannon when BENCH_LOADGEN=autocannon) POSTs msg_type 2 pushes (10 rows each, every push a new
 * device/time, so every point is distinct) at three receivers, one after the other, each in its
 * own process:
 *
 * - expeed-sync as users run it (`node bin/expeed-sync.js run`, the compiled build, default
 *   settings): the webhook (validate, group commit into the BullMQ `ingest` queue before the
 *   answer) and the ingest worker (batched writes) — in one process, in two (`--role webhook`,
 *   `--role worker`), and the webhook role alone with the worker started once the load is over
 *   (as when it runs on another machine); landed points/s is measured end to end, from the first
 *   request until the last acknowledged point is in InfluxDB;
 * - bare: Fastify answering ok without storing anything — the ceiling of the HTTP layer;
 * - Node-RED with node-red-contrib-influxdb (http in -> function -> influxdb batch, http response),
 *   installed into a temp folder by this script, not as a project dependency — the peer.
 *
 * Needs Redis and InfluxDB 1.x (`bash scripts/setup.sh`): REDIS_URL and INFLUX_URL as usual.
 * Options (environment): BENCH_DURATION seconds per target (default 10), BENCH_CONNECTIONS (20),
 * BENCH_NODERED_DIR (default /tmp/expeed-bench-nodered), BENCH_SKIP_NODERED=1, BENCH_LAYOUTS
 * (default "single,split,ack"), BENCH_LOADGEN (wrk | autocannon; default wrk, installed from Debian
 * when missing; the run stops naming the cause when it cannot be),
 * BENCH_CHILD_NODE_ARGS (node flags for the receivers, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"),
 * BENCH_VERBOSE=1 (the receivers' output). EXPEED_*, WORKER_* and WEBHOOK_* variables are passed
 * to expeed-sync, like a user's configuration.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { Redis } from 'ioredis';
import { buildIfStale, cpuSeconds, freePort, influxql, loadGenerator, pidOf } from './lib.js';

const SELF = fileURLToPath(import.meta.url);
const ROOT = join(dirname(SELF), '..');

/** The part of autocannon's API used here (the package ships no types). */
interface AutocannonResult {
  requests: { average: number };
  latency: { p50: number; p99: number };
  '2xx': number;
  non2xx: number;
  errors: number;
  timeouts: number;
}
type Autocannon = (options: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const INFLUX_URL = (process.env.INFLUX_URL ?? 'http://127.0.0.1:8086').replace(/\/+$/, '');
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 20);
const NODERED_DIR = process.env.BENCH_NODERED_DIR ?? '/tmp/expeed-bench-nodered';
const LAYOUT_LABEL: Record<string, string> = {
  single: 'expeed-sync, one process (webhook + ingest worker)',
  split: 'expeed-sync, two processes (webhook, ingest worker)',
  ack: 'expeed-sync, webhook role alone (worker drains after the load)',
};
const LAYOUTS = (process.env.BENCH_LAYOUTS ?? 'single,split,ack').split(',').filter((l) => l in LAYOUT_LABEL);
/** the load generator (far less CPU per request with wrk, left to the receivers), chosen in main() */
let LOADGEN: 'wrk' | 'autocannon' = 'wrk';
const ROWS = 10;
const DEVICES = 100;
const T0 = Date.UTC(2025, 0, 1) - 8 * 3_600_000; // 2025-01-01 00:00 in Asia/Shanghai

// ---------------------------------------------------------------------------------------------
// child processes: the receivers under test

/** The bare handler: Fastify answering ok without storing anything (the ceiling). */
async function bareChild(port: number): Promise<void> {
  const { default: Fastify } = await import('fastify');
  const app = Fastify({ bodyLimit: 5 * 1024 * 1024 });
  app.post('/webhook', async () => ({ result_code: 0, result_message: 'ok' }));
  await app.listen({ host: '127.0.0.1', port });
  process.stdout.write('READY\n');
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(0));
}

/**
 * expeed-sync as users run it: `expeed-sync run` with the given roles (no scheduler: nothing but
 * the pushes runs), its own prefix and database, the default settings.
 */
function expeedEnv(port: number, db: string, prefix: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    REDIS_URL,
    INFLUX_URL,
    INFLUX_API: 'v1',
    INFLUX_BUCKET: db,
    EXPEED_PREFIX: prefix,
    WEBHOOK_HOST: '127.0.0.1',
    WEBHOOK_PORT: String(port),
    EXPEED_WEBHOOK_TOKEN: 'bench-token',
    // credentials so that `run` does not start its demo simulator; no pull job runs in this bench
    EXPEED_PLATFORM_KEY: 'bench-platform-key',
    EXPEED_SECRET_KEY: 'bench-secret-key',
    EXPEED_BASE_URL: 'http://127.0.0.1:9',
    LOG_LEVEL: 'info',
    ...Object.fromEntries(
      Object.entries(process.env).filter(
        ([k]) => /^(EXPEED_|WORKER_|WEBHOOK_)/.test(k) && !['EXPEED_PREFIX', 'WEBHOOK_PORT'].includes(k),
      ),
    ),
  };
}

// ---------------------------------------------------------------------------------------------
// the load and the measurements

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** Vendor timestamp of epoch ms in UTC+8 (the platform zone; no DST there). */
function vendorTime(ms: number): string {
  const d = new Date(ms + 8 * 3_600_000);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}-${pad(d.getUTCMinutes())}-${pad(d.getUTCSeconds())}-${pad(d.getUTCMilliseconds(), 3)}`;
}

/** The vendor time text of a minute, without its seconds part: pushes of one minute share it. */
let minuteKey = Number.NaN;
let minuteText = '';
function minutePrefix(ms: number): string {
  if (ms !== minuteKey) {
    minuteKey = ms;
    minuteText = vendorTime(ms).slice(0, -6); // "YYYY-MM-DDTHH-MM-"
  }
  return minuteText;
}

/**
 * Push number `seq`: device seq % 100, ten rows in that device's own minute slot: all points
 * distinct. Built cheaply (one date format per 100 pushes): the load generator shares the 2 cores
 * with the receiver under test, and its cost per request should be as small as it can be.
 */
function pushBody(seq: number): string {
  const device = `bench-${pad(seq % DEVICES, 3)}`;
  const minute = minutePrefix(T0 + Math.floor(seq / DEVICES) * 60_000);
  let rows = '';
  for (let k = 0; k < ROWS; k++) {
    rows += `${k === 0 ? '' : ','}{"timestamp":"${minute}${pad(k * 6)}-000","temp":${((seq * 7 + k) % 400) / 10},"hum":${(seq + k) % 100},"on":${k % 2 === 0}}`;
  }
  return `{"msg_type":"2","device_id":"${device}","device_key":"key-${device}","data":[${rows}]}`;
}

/** The values of the first series an InfluxQL statement returns. */
async function influxValues(db: string, q: string): Promise<unknown[][]> {
  return (await influxql(INFLUX_URL, db, q))[0]?.values ?? [];
}

async function countPoints(db: string): Promise<number> {
  const rows = await influxValues(db, 'SELECT count(temp) FROM device_data');
  return Number(rows[0]?.[1] ?? 0);
}

function startChild(
  cmd: string,
  args: string[],
  readyLine: RegExp,
  cwd?: string,
  env?: NodeJS.ProcessEnv,
): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { cwd, env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let ready = false;
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${args.join(' ')} not ready after 60 s:\n${out.slice(-2000)}`));
    }, 60_000);
    const onData = (d: Buffer) => {
      if (process.env.BENCH_VERBOSE) process.stderr.write(d);
      if (ready) return; // read on (a full pipe would block the child), keep nothing
      out += d.toString();
      if (readyLine.test(out)) {
        ready = true;
        clearTimeout(timer);
        resolve(proc);
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${args.join(' ')} exited with ${code}:\n${out.slice(-2000)}`));
    });
  });
}

async function stop(proc: ChildProcess | undefined): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

/** CPU used by each named process between start() and stop(), in seconds. */
function cpuMeter(processes: Record<string, number | undefined>): () => Record<string, number> {
  const self0 = process.cpuUsage();
  const start = Object.fromEntries(Object.entries(processes).map(([k, pid]) => [k, cpuSeconds(pid)]));
  return () => {
    const used: Record<string, number> = {};
    for (const [k, pid] of Object.entries(processes)) {
      const a = start[k];
      const b = cpuSeconds(pid);
      if (a !== undefined && b !== undefined) used[k] = b - a;
    }
    const self = process.cpuUsage(self0);
    used['load generator'] = (self.user + self.system) / 1e6;
    return used;
  };
}

interface Figures {
  name: string;
  reqPerSec: number;
  p50: number;
  p99: number;
  ok: number;
  non2xx: number;
  errors: number;
  /** end to end, from the first request until the last acknowledged point was in InfluxDB */
  pointsPerSec?: number;
  landed?: number;
  drainSec?: number;
  /** pushes stored per BullMQ job by the webhook's group commit */
  pushesPerJob?: number;
  /** CPU seconds of the load generator when it is a process of its own (wrk) */
  loadgenCpu?: number;
  /** CPU seconds per process kind from the first request until everything landed */
  cpu?: Record<string, number>;
}

type LoadFigures = Omit<Figures, 'name'>;

async function runAutocannon(url: string): Promise<LoadFigures> {
  let seq = 0;
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    duration: DURATION,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    requests: [{ setupRequest: (req: Record<string, unknown>) => ({ ...req, body: pushBody(seq++) }) }],
  });
  return {
    reqPerSec: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}

/**
 * wrk, one thread, bodies built by bench/webhook-load.lua (the same pushes as pushBody). Its CPU
 * comes from bash's `times` (the CPU of the shell's finished children).
 */
async function runWrk(url: string): Promise<LoadFigures> {
  const script = join(dirname(SELF), 'webhook-load.lua');
  const cmd = `wrk -t1 -c${CONNECTIONS} -d${DURATION}s --timeout 10s -s '${script}' '${url}'; times`;
  const out = await new Promise<string>((resolve, reject) => {
    const proc = spawn('bash', ['-c', cmd], { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    proc.stdout!.on('data', (d: Buffer) => (text += d.toString()));
    proc.on('error', reject);
    proc.on('exit', (code) =>
      code === 0 ? resolve(text) : reject(new Error(`wrk exited with ${code}: ${text.slice(-500)}`)),
    );
  });
  const line = /^WRK (\{.*\})$/m.exec(out);
  if (!line) throw new Error(`wrk printed no summary:\n${out.slice(-1000)}`);
  const w = JSON.parse(line[1]) as Record<string, number>;
  const times = out
    .trim()
    .split('\n')
    .at(-1)!
    .split(/\s+/)
    .map((t) => {
      const m = /^(\d+)m([\d.]+)s$/.exec(t);
      return m ? Number(m[1]) * 60 + Number(m[2]) : 0;
    });
  const socketErrors = w.connect + w.read + w.write + w.timeout;
  return {
    reqPerSec: w.requests / (w.duration_us / 1e6),
    p50: w.p50_us / 1000,
    p99: w.p99_us / 1000,
    ok: w.requests - w.status,
    non2xx: w.status,
    errors: socketErrors,
    loadgenCpu: times[0] + times[1],
  };
}

interface LoadOptions {
  /** the database to count landed points in (none: nothing is stored) */
  db?: string;
  /** the receiver's processes, for the CPU figures */
  pids?: Record<string, number | undefined>;
  /** runs after the load, before waiting for the points to land (e.g. starts the worker) */
  afterLoad?: () => Promise<Record<string, number | undefined>>;
}

async function load(name: string, url: string, options: LoadOptions = {}): Promise<Figures> {
  const { db } = options;
  const pids: Record<string, number | undefined> = {
    ...options.pids,
    'redis-server': pidOf('redis-server'),
    influxd: pidOf('influxd'),
  };
  const meter = cpuMeter(pids);
  const started = performance.now();
  const figures: Figures = { name, ...(LOADGEN === 'wrk' ? await runWrk(url) : await runAutocannon(url)) };
  const loadEnd = performance.now();
  let lateMeter: (() => Record<string, number>) | undefined;
  if (options.afterLoad) lateMeter = cpuMeter(await options.afterLoad());
  if (db) {
    const expected = figures.ok * ROWS;
    let landed = 0;
    let landedAt = performance.now();
    let lastChange = performance.now();
    // bounded drain: stop when everything is in, or when nothing moved for 30 s
    while (performance.now() - lastChange < 30_000) {
      const n = await countPoints(db);
      const at = performance.now();
      if (n !== landed) {
        landed = n;
        landedAt = at;
        lastChange = at;
      }
      if (landed >= expected) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    figures.landed = landed;
    figures.pointsPerSec = landed / ((landedAt - started) / 1000);
    figures.drainSec = Math.max(0, (landedAt - loadEnd) / 1000);
    // requests still in flight when autocannon stops are not counted as 2xx but may be stored
    const slack = (CONNECTIONS + 1) * ROWS;
    if (name.startsWith('expeed') && (landed < expected || landed > expected + slack)) {
      process.stderr.write(`WARNING: ${name}: ${expected} points acknowledged but ${landed} in InfluxDB\n`);
    }
  }
  figures.cpu = meter();
  if (figures.loadgenCpu !== undefined) figures.cpu['load generator'] = figures.loadgenCpu;
  if (!db) delete figures.cpu['influxd'];
  // processes started after the load (the worker of the `ack` layout) are counted from their start
  for (const [k, v] of Object.entries(lateMeter?.() ?? {}))
    if (k !== 'load generator' && !(k in figures.cpu)) figures.cpu[k] = v;
  return figures;
}

// ---------------------------------------------------------------------------------------------
// Node-RED, installed into a temp folder (never a project dependency)

function installNodeRed(): string | undefined {
  const red = join(NODERED_DIR, 'node_modules', 'node-red', 'red.js');
  const plugin = join(NODERED_DIR, 'node_modules', 'node-red-contrib-influxdb', 'package.json');
  if (existsSync(red) && existsSync(plugin)) return red;
  mkdirSync(NODERED_DIR, { recursive: true });
  process.stderr.write(`installing node-red and node-red-contrib-influxdb into ${NODERED_DIR} ...\n`);
  const r = spawnSync(
    'npm',
    [
      'install',
      '--prefix',
      NODERED_DIR,
      '--no-audit',
      '--no-fund',
      '--loglevel=error',
      'node-red',
      'node-red-contrib-influxdb',
    ],
    { stdio: 'inherit', timeout: 600_000 },
  );
  return r.status === 0 && existsSync(red) && existsSync(plugin) ? red : undefined;
}

function nodeRedFlow(db: string): unknown[] {
  // http in -> function (push -> points) -> influxdb batch, and -> http response (ok) at once:
  // the usual Node-RED shape, which answers before anything is stored
  const toPoints = `
const b = msg.payload;
const points = [];
for (const row of b.data) {
  const m = /^\\s*(\\d{4})-(\\d{2})-(\\d{2})T(\\d{2})-(\\d{2})-(\\d{2})-(\\d{3})$/.exec(row.timestamp);
  const ts = Date.UTC(+m[1], m[2] - 1, +m[3], +m[4], +m[5], +m[6], +m[7]) - 8 * 3600000;
  const fields = {};
  for (const k in row) if (k !== 'timestamp') fields[k] = row[k];
  points.push({ measurement: 'device_data', tags: { device_id: b.device_id }, fields, timestamp: new Date(ts) });
}
return [{ payload: points }, { req: msg.req, res: msg.res, payload: { result_code: 0, result_message: 'ok' } }];`;
  return [
    { id: 'tab1', type: 'tab', label: 'bench' },
    { id: 'in1', type: 'http in', z: 'tab1', url: '/webhook', method: 'post', upload: false, wires: [['fn1']] },
    { id: 'fn1', type: 'function', z: 'tab1', func: toPoints, outputs: 2, wires: [['db1'], ['res1']] },
    {
      id: 'db1',
      type: 'influxdb batch',
      z: 'tab1',
      influxdb: 'cfg1',
      precision: 'ms',
      retentionPolicy: '',
      name: '',
      wires: [],
    },
    { id: 'res1', type: 'http response', z: 'tab1', statusCode: '200', wires: [] },
    {
      id: 'cfg1',
      type: 'influxdb',
      hostname: '127.0.0.1',
      port: new URL(INFLUX_URL).port || '8086',
      protocol: 'http',
      database: db,
      name: 'bench',
      usetls: false,
      influxdbVersion: '1.x',
    },
  ];
}

async function startNodeRed(red: string, port: number, db: string): Promise<ChildProcess> {
  const dir = join(NODERED_DIR, `user-${randomBytes(4).toString('hex')}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'flows.json'), JSON.stringify(nodeRedFlow(db)));
  writeFileSync(
    join(dir, 'settings.js'),
    `module.exports = { uiPort: ${port}, uiHost: '127.0.0.1', flowFile: 'flows.json', httpAdminRoot: false, httpNodeRoot: '/', apiMaxLength: '5mb',
      logging: { console: { level: 'info', metrics: false, audit: false } }, editorTheme: { tours: false }, telemetry: { enabled: false } };\n`,
  );
  writeFileSync(join(dir, 'package.json'), '{"name":"bench-userdir","version":"1.0.0"}');
  // NODE_PATH lets the runtime find node-red-contrib-influxdb installed beside it
  const proc = await startChild(
    process.execPath,
    [red, '-u', dir, '-s', join(dir, 'settings.js')],
    /Started flows/,
    NODERED_DIR,
  );
  return proc;
}

// ---------------------------------------------------------------------------------------------

async function createDb(name: string): Promise<void> {
  await influxql(INFLUX_URL, name, `CREATE DATABASE "${name}"`);
}

async function dropDb(name: string): Promise<void> {
  await influxql(INFLUX_URL, name, `DROP DATABASE "${name}"`).catch(() => undefined);
}

async function main(): Promise<void> {
  const tag = `${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const results: Figures[] = [];
  const notes: string[] = [];
  const children: ChildProcess[] = [];
  const dbs: string[] = [];
  const prefix = `bench-webhook-${tag}`;
  const nodeArgs = (process.env.BENCH_CHILD_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const tsxArgs = [...nodeArgs, '--import', 'tsx', SELF];
  try {
    LOADGEN = loadGenerator();
  } catch (err) {
    process.stderr.write(`bench:webhook: ${(err as Error).message}\n`);
    process.exit(1);
  }
  if (!buildIfStale(ROOT)) throw new Error('npm run build failed');
  try {
    // 1. expeed-sync: webhook + ingest worker in one process (the `run` default), and the same
    //    roles in two processes (`run --role webhook` + `run --role worker`)
    for (const layout of LAYOUTS) {
      const db = `bench_webhook_${layout}_${tag}`;
      dbs.push(db);
      await createDb(db);
      const port = await freePort();
      const layoutPrefix = `${prefix}-${layout}`;
      const spawnRole = async (role: string) => {
        const roleArgs =
          role === 'expeed'
            ? ['--role', 'webhook', '--role', 'worker']
            : ['--role', role, ...(role === 'worker' ? ['--ops-port', '0'] : [])];
        const proc = await startChild(
          process.execPath,
          [...nodeArgs, join(ROOT, 'bin/expeed-sync.js'), 'run', ...roleArgs],
          /expeed-sync running/,
          undefined,
          expeedEnv(port, db, layoutPrefix),
        );
        children.push(proc);
        return proc;
      };
      const roles = layout === 'single' ? ['expeed'] : ['webhook', ...(layout === 'split' ? ['worker'] : [])];
      const procs: ChildProcess[] = [];
      const pids: Record<string, number | undefined> = {};
      for (const role of roles) {
        const proc = await spawnRole(role);
        procs.push(proc);
        pids[role === 'expeed' ? 'expeed-sync' : role] = proc.pid;
      }
      // the `ack` layout: the worker runs elsewhere (here: it starts once the load is over and
      // drains what the webhook stored) — the webhook role's own capacity, as on a machine of its own
      const afterLoad =
        layout === 'ack'
          ? async () => {
              const worker = await spawnRole('worker');
              procs.push(worker);
              return { worker: worker.pid };
            }
          : undefined;
      if (layout !== 'ack')
        await fetch(`http://127.0.0.1:${port}/webhook`, { method: 'POST', body: pushBody(-1 >>> 0) }).catch(
          () => undefined,
        );
      const figures = await load(LAYOUT_LABEL[layout], `http://127.0.0.1:${port}/webhook`, { db, pids, afterLoad });
      // BullMQ numbers jobs from one counter per queue: jobs made by the group commit
      const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
      const jobs = Number(await redis.get(`${layoutPrefix}:ingest:id`));
      redis.disconnect();
      if (jobs > 0) figures.pushesPerJob = figures.ok / jobs;
      results.push(figures);
      for (const proc of procs) await stop(proc);
    }

    // 2. bare Fastify: the ceiling
    const barePort = await freePort();
    const bare = await startChild(process.execPath, [...tsxArgs, '--child', 'bare', String(barePort), '', ''], /READY/);
    children.push(bare);
    results.push(
      await load('bare Fastify (answers ok, stores nothing)', `http://127.0.0.1:${barePort}/webhook`, {
        pids: { bare: bare.pid },
      }),
    );
    await stop(bare);

    // 3. Node-RED: the peer
    if (process.env.BENCH_SKIP_NODERED === '1') {
      notes.push('Node-RED skipped (BENCH_SKIP_NODERED=1)');
    } else {
      const red = installNodeRed();
      if (!red) {
        notes.push(`Node-RED could not be installed into ${NODERED_DIR}: no Node-RED figures`);
      } else {
        const rdb = `bench_nodered_${tag}`;
        dbs.push(rdb);
        await createDb(rdb);
        const rport = await freePort();
        try {
          const nr = await startNodeRed(red, rport, rdb);
          children.push(nr);
          results.push(
            await load('Node-RED + node-red-contrib-influxdb', `http://127.0.0.1:${rport}/webhook`, {
              db: rdb,
              pids: { 'node-red': nr.pid },
            }),
          );
          await stop(nr);
        } catch (err) {
          notes.push(`Node-RED did not run: ${(err as Error).message.split('\n')[0]}`);
        }
      }
    }
  } finally {
    for (const c of children) await stop(c);
    for (const db of dbs) await dropDb(db);
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
    redis.disconnect();
  }

  const f = (n: number | undefined, d = 0) =>
    n === undefined || Number.isNaN(n)
      ? '—'
      : n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  console.log(
    `\nwebhook benchmark: ${DURATION} s per target, ${CONNECTIONS} connections (${LOADGEN}), msg_type 2 pushes of ${ROWS} rows\n`,
  );
  console.log('| receiver | req/s | p50 ack ms | p99 ack ms | 2xx | non-2xx | errors | landed points/s (end to end) |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    console.log(
      `| ${r.name} | ${f(r.reqPerSec)} | ${f(r.p50, 1)} | ${f(r.p99, 1)} | ${f(r.ok)} | ${f(r.non2xx)} | ${f(r.errors)} | ${r.pointsPerSec === undefined ? 'n/a' : `${f(r.pointsPerSec)} (${f(r.landed)} points, drained ${f(r.drainSec, 1)} s after the load)`} |`,
    );
  }
  // where the CPU went: µs per acknowledged request, per process, load and drain together
  console.log('\nCPU per acknowledged request (µs), from the first request until every point landed:\n');
  console.log(
    '| receiver | receiver processes | redis-server | influxd | load generator | total | pushes per BullMQ job |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    if (!r.cpu || r.ok === 0) continue;
    const per = (sec: number | undefined) => (sec === undefined ? undefined : (sec * 1e6) / r.ok);
    const own = Object.entries(r.cpu).filter(([k]) => !['redis-server', 'influxd', 'load generator'].includes(k));
    const ownText = own.map(([k, v]) => `${k} ${f(per(v))}`).join(' + ');
    const total = Object.values(r.cpu).reduce((a, b) => a + b, 0);
    console.log(
      `| ${r.name} | ${ownText} | ${f(per(r.cpu['redis-server']))} | ${f(per(r.cpu.influxd))} | ${f(per(r.cpu['load generator']))} | ${f(per(total))} | ${r.pushesPerJob === undefined ? '—' : f(r.pushesPerJob, 1)} |`,
    );
  }
  const [bare, red] = [
    results.find((r) => r.name.startsWith('bare')),
    results.find((r) => r.name.startsWith('Node-RED')),
  ];
  console.log('');
  for (const ours of results.filter((r) => r.name.startsWith('expeed'))) {
    if (bare)
      console.log(
        `${ours.name}: req/s = ${f((100 * ours.reqPerSec) / bare.reqPerSec)} % of the bare handler (target >= 50 %)`,
      );
    if (ours.pointsPerSec && red?.pointsPerSec)
      console.log(
        `${ours.name}: landed points/s = ${f(ours.pointsPerSec / red.pointsPerSec, 2)}x Node-RED (target >= 3x)`,
      );
  }
  for (const n of notes) console.log(`note: ${n}`);
}

const i = process.argv.indexOf('--child');
if (i !== -1) await bareChild(Number(process.argv[i + 2]));
else await main();
