import { spawn } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { BIN, runCli } from '../helpers/cli.js';

describe('expeed-sync simulate: the vendor readings as flags', () => {
  test('starts with the reading it is told, says so, and answers', async () => {
    const child = spawn(process.execPath, [BIN, 'simulate', '--port', '0', '--devices', '1', '--days', '1', '--cursor', 'first-row', '--limit-unit', 'datapoints', '--start-bound', 'exclusive', '--end-bound', 'inclusive', '--same-ms-rate', '0.2', '--fail-rate', '0.05', '--fail-kind', 'reset', '--latency-ms', '5'], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
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
      expect(out).toContain('history paging: cursor first-row, limit counts datapoints, start exclusive, end inclusive, 0.2 of rows split at one millisecond, 0.05 of device calls fail (reset), +5 ms per answer');
      const url = /EXPEED_BASE_URL=(\S+)/.exec(out)![1];
      const token = (await (await fetch(`${url}/v1/platform/token?platform_key=demo-platform-key&secret_key=demo-secret-key`)).json()) as { access_token?: string; data?: { access_token?: string } };
      expect(JSON.stringify(token)).toContain('result_code":0');
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).toBe(0);
    expect(out).toMatch(/stopped \(SIGINT\): 1 token calls, .* failed on purpose/);
  });

  test('a reading it does not know is refused, naming the flag and the choices', async () => {
    const bad = await runCli(['simulate', '--cursor', 'sideways'], { LOG_LEVEL: 'silent' });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('--cursor must be one of next, last-inclusive, last-exclusive, first-row, none, got "sideways"');
    const rate = await runCli(['simulate', '--fail-rate', '2'], { LOG_LEVEL: 'silent' });
    expect(rate.code).not.toBe(0);
    expect(rate.stderr).toContain('--fail-rate must be a number from 0 to 0.99, got "2"');
  });
});
