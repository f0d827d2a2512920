/**
 * Proves the dashboard "Expeed sync service" (grafana/dashboards/expeed-service.json) against a
 * real Prometheus scraping a real `expeed-sync run`: the service backfills from the simulator into
 * a real InfluxDB while a private Prometheus (Debian's package, installed by
 * `WITH_TEST_TOOLS=1 bash scripts/setup.sh`) scrapes its /metrics every second. Then every panel
 * target and the template variable are interpolated the way Grafana's Prometheus data source does
 * it and run on Prometheus' HTTP API, as range or instant queries like Grafana sends them. A query
 * Prometheus refuses, an empty result, a wrong number or a macro left unreplaced fails the test.
 * One more device is registered that the simulator does not know: the platform answers "no such
 * device" for it, so it is the one failing device (`expeed_device_failing`, the fleet dashboard).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startSimulator, type Simulator } from '../../src/simulator/index.js';
import { runCli, startRun, type RunningService } from '../helpers/cli.js';
import {
  createTestDatabase,
  deleteRedisPrefix,
  freePort,
  REDIS_URL,
  testPrefix,
  until as waitUntil,
} from '../helpers/services.js';
import {
  dashboardCheck,
  panelTargets,
  specialRegexEscape,
  substituteVariables,
  type GrafanaVariable,
} from '../helpers/grafana.js';

const ROOT = new URL('../../', import.meta.url);
const dashboard = JSON.parse(readFileSync(new URL('grafana/dashboards/expeed-service.json', ROOT), 'utf8'));
const provisioned = parse(readFileSync(new URL('grafana/provisioning/datasources/prometheus.yml', ROOT), 'utf8'));
const DS_UID: string = provisioned.datasources[0].uid;
const hasPrometheus = spawnSync('prometheus', ['--version'], { stdio: 'ignore' }).status === 0;
// CI installs it (scripts/test.sh): there a missing tool is a failure, not a skip
if (!hasPrometheus && process.env.CI)
  throw new Error('prometheus is not installed: scripts/setup.sh with WITH_TEST_TOOLS=1 should have installed it');
if (!hasPrometheus) {
  console.warn(
    'service-dashboard.test.ts: prometheus is not installed, skipping (WITH_TEST_TOOLS=1 bash scripts/setup.sh installs it)',
  );
}

// ---- the dashboard's queries ----------------------------------------------------------------
interface Target {
  title: string;
  refId: string;
  expr: string;
  instant: boolean;
}
function dashboardTargets(): Target[] {
  const out: Target[] = [];
  const check = dashboardCheck('expeed-service.json');
  for (const { panel: p, target: t, where } of panelTargets(dashboard.panels, DS_UID, check)) {
    check(typeof t.expr === 'string' && t.expr.trim() !== '', `${where} has no expr`);
    out.push({ title: p.title, refId: t.refId, expr: t.expr, instant: t.instant === true && t.range !== true });
  }
  return out;
}
const TARGETS = dashboardTargets();
// the Prometheus panels of the fleet dashboard (its InfluxDB ones: fleet-dashboard.test.ts)
const fleet = JSON.parse(readFileSync(new URL('grafana/dashboards/expeed-fleet.json', ROOT), 'utf8'));
const FLEET_TARGETS: Target[] = panelTargets(
  fleet.panels.filter((p: { datasource?: { uid: string } }) => p.datasource?.uid === DS_UID),
  DS_UID,
  dashboardCheck('expeed-fleet.json'),
).map(({ panel: p, target: t }) => ({
  title: p.title,
  refId: t.refId,
  expr: t.expr,
  instant: t.instant === true && t.range !== true,
}));

// ---- Grafana's interpolation (public/app/plugins/datasource/prometheus/datasource.ts) --------
type Variable = GrafanaVariable;
const regularEscape = (v: string) => v.replace(/'/g, "\\\\'");

interface Selection {
  name: string;
  device: string[] | 'all';
}
interface Window {
  startS: number;
  endS: number;
  stepS: number;
  scrapeS: number;
}

function formatVariable(v: Variable, sel: string[] | 'all', every: string[]): string {
  if (sel === 'all' && v.allValue) return v.allValue;
  const values = sel === 'all' ? every : sel;
  if (!v.multi && !v.includeAll) return regularEscape(values[0]);
  const escaped = values.map(specialRegexEscape);
  return escaped.length === 1 ? escaped[0] : `(${escaped.join('|')})`;
}

/** Replaces every macro and variable; throws when anything that looks like one is left. */
function interpolate(expr: string, sel: Selection, w: Window, devices: string[]): string {
  const range = w.endS - w.startS;
  // $__rate_interval: max($__interval + scrape interval, 4 × scrape interval)
  const rateInterval = Math.max(w.stepS + w.scrapeS, 4 * w.scrapeS);
  const vars: Array<[string, string]> = [
    ['__rate_interval', `${rateInterval}s`],
    ['__interval_ms', String(w.stepS * 1000)],
    ['__interval', `${w.stepS}s`],
    ['__range_ms', String(range * 1000)],
    ['__range_s', String(range)],
    ['__range', `${range}s`],
  ];
  for (const v of dashboard.templating.list as Variable[]) vars.push([v.name, formatVariable(v, sel.device, devices)]);
  return substituteVariables(expr, vars);
}

// ---- Prometheus ---------------------------------------------------------------------------------
interface Series {
  metric: Record<string, string>;
  values: number[];
}
let promUrl = '';

async function promApi(path: string, params: Record<string, string>): Promise<any> {
  const res = await fetch(`${promUrl}${path}`, { method: 'POST', body: new URLSearchParams(params) });
  const body = (await res.json()) as { status: string; data: any; error?: string };
  if (body.status !== 'success') throw new Error(`Prometheus refused ${JSON.stringify(params)}: ${body.error}`);
  return body.data;
}

/** Runs a target the way Grafana does: a range query over the window, or an instant query at its end. */
async function runTarget(t: Target, sel: Selection, w: Window, devices: string[]): Promise<Series[]> {
  const query = interpolate(t.expr, sel, w, devices);
  if (t.instant) {
    const data = await promApi('/api/v1/query', { query, time: String(w.endS) });
    return (data.result as Array<{ metric: Record<string, string>; value: [number, string] }>).map((r) => ({
      metric: r.metric,
      values: [Number(r.value[1])],
    }));
  }
  const data = await promApi('/api/v1/query_range', {
    query,
    start: String(w.startS),
    end: String(w.endS),
    step: String(w.stepS),
  });
  return (data.result as Array<{ metric: Record<string, string>; values: Array<[number, string]> }>).map((r) => ({
    metric: r.metric,
    values: r.values.map((v) => Number(v[1])),
  }));
}

const finite = (s: Series) => s.values.filter((v) => Number.isFinite(v));

// ---- the service and Prometheus --------------------------------------------------------------
const DAY = 86_400_000;
const SCRAPE_S = 1;
const VERIFY_EVERY_S = 30;
const prefix = testPrefix('svcdash');
const to = Math.floor(Date.now() / 60_000) * 60_000 - 2 * DAY;
const from = to - 3 * DAY;
let sim: Simulator;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let servicePort: number;
let service: RunningService | undefined;
let prometheus: ChildProcess | undefined;
let promDir: string | undefined;
let promStartS = 0;
let window: Window;
let devices: string[];
/** registered in the service, unknown to the simulated platform */
const UNKNOWN = 'dev-unknown';

/** Waits as the shared helper does, with a longer default and the service's stderr on timeout. */
function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 90_000): Promise<T> {
  return waitUntil(what, fn, {
    timeoutMs,
    intervalMs: 500,
    detail: () => `service stderr (tail): ${(service?.stderr() ?? '').slice(-2000)}`,
  });
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

beforeAll(async () => {
  if (!hasPrometheus) return;
  db = await createTestDatabase('svcdash');
  sim = await startSimulator({ platformKey: 'dash-pk', secretKey: 'dash-sk-secret', devices: 2, from, to, seed: 11 });
  // slow pages spread the backfill over many scrapes, so rates and quantiles have samples
  sim.faults.latencyMs = 150;
  devices = sim.devices.map((d) => d.id).sort();
  servicePort = await freePort();
  const env = {
    EXPEED_BASE_URL: sim.url,
    EXPEED_PLATFORM_KEY: 'dash-pk',
    EXPEED_SECRET_KEY: 'dash-sk-secret',
    EXPEED_PREFIX: prefix,
    REDIS_URL,
    INFLUX_URL: db.url,
    INFLUX_BUCKET: db.name,
    INFLUX_API: 'v1',
    WEBHOOK_PORT: String(servicePort),
    EXPEED_BACKFILL_START: new Date(from).toISOString(),
    EXPEED_PAGE_LIMIT: '50',
    EXPEED_SCHEDULE_NIGHTLY: '',
    EXPEED_SCHEDULE_GAPS: '',
    EXPEED_SCHEDULE_STATUS: '',
    // the scheduled verification every 30 s (seconds field), so that its panel has real numbers
    EXPEED_SCHEDULE_VERIFY: `*/${VERIFY_EVERY_S} * * * * *`,
    LOG_LEVEL: 'warn',
  };
  for (const d of sim.devices) expect((await runCli(['devices', 'add', d.id, '--key', d.key], env)).code).toBe(0);
  expect((await runCli(['devices', 'add', UNKNOWN, '--key', 'key-of-no-device'], env)).code).toBe(0);

  // Prometheus first, so that it sees the backfill from its beginning
  const promPort = await freePort();
  promDir = mkdtempSync(join(tmpdir(), 'expeed-prometheus-'));
  writeFileSync(
    join(promDir, 'prometheus.yml'),
    `global:\n  scrape_interval: ${SCRAPE_S}s\n  scrape_timeout: ${SCRAPE_S}s\nscrape_configs:\n  - job_name: expeed-sync\n    metrics_path: /metrics\n    static_configs:\n      - targets: ["127.0.0.1:${servicePort}"]\n`,
  );
  promUrl = `http://127.0.0.1:${promPort}`;
  promStartS = Math.floor(Date.now() / 1000);
  prometheus = spawn(
    'prometheus',
    [
      `--config.file=${join(promDir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(promDir, 'data')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
      '--log.level=warn',
    ],
    { stdio: 'ignore' },
  );
  await until('Prometheus to be ready', async () => (await fetch(`${promUrl}/-/ready`)).ok);

  service = startRun(env);

  // every panel has data once Prometheus has scraped the backfill at work and a few finished jobs
  await until(
    'every dashboard query to return data',
    async () => {
      const w: Window = { startS: promStartS, endS: Math.floor(Date.now() / 1000), stepS: 2, scrapeS: SCRAPE_S };
      for (const t of TARGETS) {
        const series = await runTarget(t, { name: 'all', device: 'all' }, w, devices);
        if (!series.some((s) => finite(s).length > 0)) throw new Error(`no data yet for "${t.title}" ${t.refId}`);
      }
      const jobs = await runTarget(
        TARGETS.find((t) => t.title.startsWith('Job duration'))!,
        { name: 'all', device: 'all' },
        w,
        devices,
      );
      if (!jobs.some((s) => s.metric.queue === 'backfill' && finite(s).some((v) => v > 0))) return false;
      // and a scheduled verification has finished some windows (its jobs wait for the backfill: low priority)
      const verified = await runTarget(
        TARGETS.find((t) => t.title === 'Verified hours by result')!,
        { name: 'all', device: 'all' },
        w,
        devices,
      );
      if (!verified.some((s) => s.metric.result === 'equal' && finite(s).some((v) => v > 0))) return false;
      // and the unknown device's backfill has failed, so it is failing
      const failing = await runTarget(
        FLEET_TARGETS.find((t) => t.title === 'Failing devices')!,
        { name: 'all', device: 'all' },
        w,
        devices,
      );
      return failing.length > 0;
    },
    150_000,
  );
  window = { startS: promStartS, endS: Math.floor(Date.now() / 1000), stepS: 2, scrapeS: SCRAPE_S };
}, 240_000);

afterAll(async () => {
  await stop(service?.child);
  await stop(prometheus);
  if (promDir) rmSync(promDir, { recursive: true, force: true });
  await sim?.close();
  await db?.drop();
  if (hasPrometheus) await deleteRedisPrefix(prefix);
}, 60_000);

describe('provisioning', () => {
  test('the Prometheus data source has a fixed uid that every panel uses; the dashboard is well-formed', () => {
    expect(provisioned.datasources[0]).toMatchObject({
      uid: 'expeed-prometheus',
      type: 'prometheus',
      access: 'proxy',
      isDefault: false,
      jsonData: { timeInterval: '15s' },
    });
    expect(dashboard).toMatchObject({ uid: 'expeed-service', title: 'Expeed sync service' });
    const all = (panels: Array<Record<string, any>>): Array<Record<string, any>> =>
      panels.flatMap((p) => [p, ...all(p.panels ?? [])]);
    const ids = all(dashboard.panels).map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(TARGETS.length).toBe(17);
    expect(
      dashboard.templating.list.map((v: { name: string; datasource: { uid: string } }) => [v.name, v.datasource.uid]),
    ).toEqual([['device', DS_UID]]);
  });
  test('an unknown macro fails the check instead of reaching Prometheus', () => {
    const w: Window = { startS: 0, endS: 60, stepS: 2, scrapeS: 1 };
    expect(() => interpolate('rate(x[$__rate_interval]) + $__nope', { name: 'all', device: 'all' }, w, ['a'])).toThrow(
      /unsubstituted Grafana macro or variable "\$__nope"/,
    );
    expect(() => interpolate('x{a="[[nope]]"}', { name: 'all', device: 'all' }, w, ['a'])).toThrow(/"\[\[nope\]\]"/);
    expect(interpolate('x{d=~"$device"}[$__rate_interval]', { name: 'two', device: ['a', 'b'] }, w, ['a', 'b'])).toBe(
      'x{d=~"(a|b)"}[4s]',
    );
  });
});

describe.skipIf(!hasPrometheus)('against a real Prometheus scraping `expeed-sync run`', () => {
  test('$device lists the devices the service wrote data for (label_values through the labels API)', async () => {
    const v = dashboard.templating.list[0];
    const m = /^label_values\((\w+), *(\w+)\)$/.exec(v.query.query);
    expect(m).not.toBeNull();
    const res = await fetch(
      `${promUrl}/api/v1/label/${m![2]}/values?${new URLSearchParams({ 'match[]': m![1], start: String(window.startS), end: String(window.endS) })}`,
    );
    expect(((await res.json()) as { data: string[] }).data.sort()).toEqual(devices);
  });

  const SELECTIONS: Selection[] = [
    { name: 'All (allValue .*)', device: 'all' },
    { name: 'one device', device: ['dev-0002'] },
    { name: 'both devices picked, (a|b)', device: ['dev-0001', 'dev-0002'] },
  ];
  describe.each(SELECTIONS)('every target returns sensible values: $name', (sel) => {
    test.each(TARGETS)('$title $refId', async (t) => {
      const series = await runTarget(t, sel, window, devices);
      expect(series.length, `${t.title} ${t.refId} returned nothing`).toBeGreaterThan(0);
      const values = series.flatMap(finite);
      expect(values.length, `${t.title} ${t.refId} has no finite value`).toBeGreaterThan(0);
      const max = Math.max(...values);
      const by = (label: string) => series.map((s) => s.metric[label]).sort();
      const chosen = sel.device === 'all' ? devices : [...sel.device].sort();
      switch (`${t.title} ${t.refId}`) {
        case 'Token calls today A':
          expect(values).toEqual([1]);
          break;
        case 'Token calls today B':
          expect(values).toEqual([200]);
          break;
        case 'Platform requests/s by endpoint and result A': {
          // no faults injected: every request for the simulated devices succeeded; the first sync (reason
          // catch-up) asks currentDatapoints once per device before it walks the history. The unknown
          // device's calls are answered 2 (no such device), nothing else
          const results = series.map((s) => `${s.metric.endpoint} ${s.metric.result}`).sort();
          expect(results.filter((r) => r.endsWith(' code_0'))).toEqual(['current code_0', 'history code_0']);
          expect(results.filter((r) => !r.endsWith(' code_0')).length).toBeGreaterThan(0);
          for (const r of results) expect(r).toMatch(/^(current|history) code_[02]$/);
          expect(max).toBeGreaterThan(0);
          break;
        }
        case 'Platform request latency p50 / p99 A':
        case 'Platform request latency p50 / p99 B':
          expect(by('endpoint').sort()).toEqual(['current', 'history']);
          // the simulator answers after 150 ms: interpolated within the buckets above 0.1 s
          expect(Math.min(...values)).toBeGreaterThan(0.1);
          expect(max).toBeLessThan(10);
          break;
        case 'History pages/s A':
        case 'Points written/s by source A':
          expect(max).toBeGreaterThan(0);
          if (t.title.startsWith('Points')) expect(by('source')).toEqual(['pull']);
          break;
        case 'Rollup backlog A':
          expect(by('tier')).toEqual(['1d', 'hour']); // the daily tier has its own series
          expect(Math.min(...values)).toBeGreaterThanOrEqual(0);
          expect(values.every(Number.isInteger)).toBe(true);
          break;
        case 'Rollup backlog B':
          expect(Math.min(...values)).toBeGreaterThanOrEqual(0);
          // the oldest dirty hour was touched by this run's backfill
          expect(max).toBeLessThan(3600);
          break;
        case 'Write errors A':
        case 'Dead letters A':
        case 'Dead letters B':
          expect(values).toEqual([0]);
          break;
        case 'Queue jobs by state A': {
          expect([...new Set(by('queue'))].sort()).toEqual(['backfill', 'ingest', 'rollup', 'status']);
          expect(by('state')).not.toContain('completed');
          expect(new Set(by('state'))).toEqual(
            new Set(['active', 'delayed', 'failed', 'paused', 'prioritized', 'waiting', 'waiting-children']),
          );
          expect(Math.min(...values)).toBeGreaterThanOrEqual(0);
          // nothing is faulted: only the unknown device's backfill jobs failed
          const failed = series.filter((s) => s.metric.state === 'failed');
          expect(new Set(failed.filter((s) => s.metric.queue !== 'backfill').flatMap(finite))).toEqual(new Set([0]));
          expect(finite(failed.find((s) => s.metric.queue === 'backfill')!).at(-1)).toBeGreaterThan(0);
          break;
        }
        case 'Job duration p95 by queue A':
          expect(by('queue')).toContain('backfill');
          expect(Math.min(...values)).toBeGreaterThan(0);
          expect(max).toBeLessThanOrEqual(1800);
          break;
        case 'Last data age per device A':
          expect(by('device_id')).toEqual(chosen);
          // the newest point written is between `from` and `to`, so its age is within these bounds
          expect(Math.min(...values)).toBeGreaterThanOrEqual((window.startS * 1000 - to) / 1000);
          expect(max).toBeLessThanOrEqual((window.endS * 1000 - from) / 1000);
          break;
        case 'Gaps found A':
          // the gap schedule is off and no `gaps` command ran: the fallback 0, not "No data"
          expect(series).toEqual([{ metric: {}, values: [0] }]);
          break;
        case 'Verified hours by result A': {
          // every result is there from the start (at 0); the verified hours are equal or were repaired
          // (a verify job may meet a window the backfill is still writing), none still different
          expect(by('result')).toEqual(['differing', 'equal', 'extra', 'missing', 'repaired']);
          expect(series.find((s) => s.metric.result === 'equal')!.values[0]).toBeGreaterThan(0);
          for (const r of ['differing', 'extra', 'missing'])
            expect(series.find((s) => s.metric.result === r)!.values).toEqual([0]);
          expect(Math.min(...values)).toBeGreaterThanOrEqual(0);
          // each slot verifies 2 devices × 7 days (169 hours, the first and last partial), at most one slot per 30 s
          const slots = Math.ceil((window.endS - promStartS) / VERIFY_EVERY_S) + 1;
          expect(values.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(slots * 2 * 169 * 1.1);
          break;
        }
        default:
          throw new Error(`no expectation for panel "${t.title}" target ${t.refId}: add one`);
      }
    });
    // the simulated history ends two days ago, so every device with data is stale; only the unknown
    // device failed (it has no data, so it is in no selection but All); nothing came late
    test.each(FLEET_TARGETS)('fleet: $title $refId', async (t) => {
      const series = await runTarget(t, sel, window, devices);
      const chosen = sel.device === 'all' ? devices : [...sel.device].sort();
      const values = series.flatMap(finite);
      switch (`${t.title} ${t.refId}`) {
        case 'Stale devices (no new data for 2 h) A':
          expect(series.map((s) => s.metric.device_id).sort()).toEqual(chosen);
          expect(Math.min(...values)).toBeGreaterThan(2 * 86_400);
          break;
        case 'Failing devices A':
          // an instant table: each failing device once, at 1; the simulated devices are not failing
          expect(series.map((s) => [s.metric.device_id, s.values])).toEqual(
            sel.device === 'all' ? [[UNKNOWN, [1]]] : [],
          );
          break;
        case 'Stale / failing devices, failed jobs A':
          // 0 until the service's first write set the gauge, then every chosen device (the stat shows the last)
          expect(series.length).toBe(1);
          expect(values.at(-1)).toBe(chosen.length);
          expect(new Set(values).size).toBeLessThanOrEqual(2);
          expect(values.every((v) => v === 0 || v === chosen.length)).toBe(true);
          break;
        case 'Stale / failing devices, failed jobs B':
          // 0 until the first scrape after the unknown device's backfill failed, then 1 for All
          expect(series.length).toBe(1);
          expect(values.at(-1)).toBe(sel.device === 'all' ? 1 : 0);
          expect(values.every((v) => v === 0 || v === 1)).toBe(true);
          break;
        case 'Stale / failing devices, failed jobs C':
          // jobs of any queue (no device filter): the unknown device's failed jobs
          expect(series.length).toBe(1);
          expect(Math.min(...values)).toBeGreaterThanOrEqual(0);
          expect(values.at(-1)).toBeGreaterThan(0);
          break;
        case 'Late rows in the range A':
          expect(new Set(values)).toEqual(new Set([0]));
          break;
        case 'Late rows per interval by device A':
          expect(series).toEqual([]);
          break;
        default:
          throw new Error(`no expectation for fleet panel "${t.title}" target ${t.refId}: add one`);
      }
    });
  });
});
