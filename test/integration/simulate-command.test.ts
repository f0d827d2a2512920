import { spawn } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { BIN, runCli } from '../helpers/cli.js';

interface Started {
  out: () => string;
  url: string;
  stop: () => Promise<number | null>;
}

/** Starts `expeed-sync simulate` with the flags and resolves once its banner names the URL. */
async function startSimulate(flags: string[]): Promise<Started> {
  const child = spawn(process.execPath, [BIN, 'simulate', '--port', '0', '--devices', '1', '--days', '1', ...flags], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const stop = async () => {
    child.kill('SIGINT');
    return exited;
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no banner: ${out}`)), 30_000);
      child.stdout!.on('data', (d) => {
        out += d;
        if (out.includes('press Ctrl-C')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { out: () => out, url: /EXPEED_BASE_URL=(\S+)/.exec(out)![1], stop };
}

async function token(url: string): Promise<string> {
  const answer = (await (
    await fetch(`${url}/v1/platform/token?platform_key=demo-platform-key&secret_key=demo-secret-key`)
  ).json()) as { result_code: number; access_token: string };
  expect(answer.result_code).toBe(0);
  return answer.access_token;
}

describe('expeed-sync simulate: the vendor readings as flags', () => {
  test('starts with the reading it is told, says so, and answers', async () => {
    const sim = await startSimulate([
      '--cursor',
      'first-row',
      '--limit-unit',
      'datapoints',
      '--start-bound',
      'exclusive',
      '--end-bound',
      'inclusive',
      '--same-ms-rate',
      '0.2',
      '--fail-rate',
      '0.05',
      '--fail-kind',
      'reset',
      '--latency-ms',
      '5',
    ]);
    try {
      expect(sim.out()).toContain(
        'history paging: cursor first-row, limit counts datapoints, start exclusive, end inclusive, 0.2 of rows split at one millisecond, 0.05 of device calls fail (reset), +5 ms per answer',
      );
      expect(await token(sim.url)).toMatch(/\S/);
    } finally {
      expect(await sim.stop()).toBe(0);
    }
    expect(sim.out()).toMatch(/stopped \(SIGINT\): 1 token calls, .* failed on purpose/);
  });

  test('the platform shapes reach the served history: order, page cap, timestamp form, A,B,A in one millisecond', async () => {
    const sim = await startSimulate([
      '--order',
      'newest-first',
      '--page-cap',
      '7',
      '--timestamp-form',
      'epoch-ms',
      '--same-ms-rate',
      '1',
      '--same-ms-repeat',
    ]);
    try {
      expect(sim.out()).toContain(
        'history paging: cursor next, limit counts rows, start inclusive, end exclusive, pages newest-first, at most 7 rows a page, timestamps epoch-ms, 1 of rows split at one millisecond (A, B, A)',
      );
      const headers = { access_token: await token(sim.url), device_key: 'key-0001' };
      // first=1 asks for the oldest first: the platform serves the newest first all the same
      const answer = (await (
        await fetch(`${sim.url}/v1/devices/dev-0001/datapoints?first=1&limit=100`, { headers })
      ).json()) as {
        result_code: number;
        cursor?: number;
        data: Array<{ timestamp: unknown } & Record<string, unknown>>;
      };
      expect(answer.result_code).toBe(0);
      // at most 7 rows whatever `limit` asks, and a cursor: more rows remain
      expect(answer.data).toHaveLength(7);
      expect(typeof answer.cursor).toBe('number');
      const times = answer.data.map((r) => r.timestamp);
      // epoch milliseconds as JSON numbers, newest first
      for (const t of times) expect(Number.isSafeInteger(t)).toBe(true);
      expect([...times].sort((a, b) => (b as number) - (a as number))).toEqual(times);
      // every row split at its millisecond, and the first part repeated last: A, (B, C,) A
      const newest = answer.data.filter((r) => r.timestamp === times[0]);
      expect(newest.length).toBeGreaterThanOrEqual(3);
      expect(newest[newest.length - 1]).toEqual(newest[0]);
      expect(newest[1]).not.toEqual(newest[0]);
    } finally {
      expect(await sim.stop()).toBe(0);
    }
  });

  test('the timestamp forms of ISO 8601 and epoch seconds reach the served rows', async () => {
    const iso = await startSimulate(['--timestamp-form', 'iso-offset', '--timezone', 'Asia/Kathmandu']);
    try {
      const headers = { access_token: await token(iso.url), device_key: 'key-0001' };
      const answer = (await (
        await fetch(`${iso.url}/v1/devices/dev-0001/datapoints?first=1&limit=3`, { headers })
      ).json()) as { data: Array<{ timestamp: unknown }> };
      expect(answer.data).toHaveLength(3);
      for (const r of answer.data) expect(r.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+05:45$/);
    } finally {
      expect(await iso.stop()).toBe(0);
    }
    const seconds = await startSimulate(['--timestamp-form', 'epoch-s']);
    try {
      const headers = { access_token: await token(seconds.url), device_key: 'key-0001' };
      const answer = (await (
        await fetch(`${seconds.url}/v1/devices/dev-0001/datapoints?first=1&limit=3`, { headers })
      ).json()) as { data: Array<{ timestamp: unknown }> };
      expect(answer.data).toHaveLength(3);
      // seconds since 1970 (below 1e11), the milliseconds as decimals
      for (const r of answer.data)
        expect(typeof r.timestamp === 'number' && r.timestamp > 1.7e9 && r.timestamp < 1e11).toBe(true);
    } finally {
      expect(await seconds.stop()).toBe(0);
    }
  });

  test('a reading it does not know is refused, naming the flag and the choices', async () => {
    const bad = await runCli(['simulate', '--cursor', 'sideways'], { LOG_LEVEL: 'silent' });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain(
      '--cursor must be one of next, last-inclusive, last-exclusive, first-row, none, got "sideways"',
    );
    const rate = await runCli(['simulate', '--fail-rate', '2'], { LOG_LEVEL: 'silent' });
    expect(rate.code).not.toBe(0);
    expect(rate.stderr).toContain('--fail-rate must be a number from 0 to 0.99, got "2"');
    const form = await runCli(['simulate', '--timestamp-form', 'unix'], { LOG_LEVEL: 'silent' });
    expect(form.code).not.toBe(0);
    expect(form.stderr).toContain(
      '--timestamp-form must be one of documented, epoch-ms, epoch-s, epoch-ms-string, iso-z, iso-offset, iso-local, got "unix"',
    );
    const order = await runCli(['simulate', '--order', 'random'], { LOG_LEVEL: 'silent' });
    expect(order.stderr).toContain('--order must be one of asked, newest-first, inverted, unordered, got "random"');
    const repeat = await runCli(['simulate', '--same-ms-repeat'], { LOG_LEVEL: 'silent' });
    expect(repeat.code).not.toBe(0);
    expect(repeat.stderr).toContain('--same-ms-repeat repeats a part of the rows --same-ms-rate splits');
  });
});
