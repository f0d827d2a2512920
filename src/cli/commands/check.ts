/**
 * `expeed-sync check [--platform] [--json]`: validates the configuration and reaches every
 * dependency the service needs, one line per check, in the order the service meets them. Exits 1
 * naming the first failure; 0 when every check passed. The configuration is validated before any
 * check runs: an invalid one is refused with its one-line reason, as by every command.
 */
import { flag, parseArgs, UsageError } from '../args.js';
import type { Command } from '../command.js';
import {
  checkConfiguration,
  checkDevicesFile,
  checkInflux,
  checkPersistence,
  checkPlatform,
  checkRedis,
  checkWebhookPort,
  type CheckResult,
} from '../checks.js';

const USAGE = 'check [--platform] [--json]';

export const command: Command = {
  usage: USAGE,
  summary:
    "validate the configuration and reach Redis (and its persistence: a warning when none), InfluxDB, the devices file and the webhook's port; --platform also fetches a token (spends one of the day's calls)",
  // Redis is one of the checks: an unreachable one is reported as such, not refused before
  standalone: true,
  async run(argv, ctx) {
    const args = parseArgs(argv, { flags: ['platform', 'json'] });
    if (args.positionals.length) throw new UsageError(`check takes no arguments (got "${args.positionals[0]}")`);
    const json = flag(args, 'json');
    const { config, scrubber } = ctx;
    const results: CheckResult[] = [];
    const show = (r: CheckResult): void => {
      const line = { ...r, detail: scrubber.scrub(r.detail) };
      results.push(line);
      if (!json) ctx.out(`${!r.ok ? 'FAIL' : r.warning ? 'WARN' : 'ok  '}  ${r.name.padEnd(13)} ${line.detail}`);
    };
    show(checkConfiguration(config));
    const redis = ctx.redis();
    const redisResult = await checkRedis(config, redis);
    show(redisResult);
    if (redisResult.ok) show(await checkPersistence(redis));
    show(await checkInflux(config));
    show(await checkDevicesFile(config, scrubber));
    show(await checkWebhookPort(config));
    if (flag(args, 'platform')) {
      if (redisResult.ok)
        show(
          await checkPlatform(config, redis, scrubber, (line) =>
            json ? process.stderr.write(`${line}\n`) : ctx.out(line),
          ),
        );
      else
        show({
          name: 'platform',
          ok: false,
          detail: 'not tried: the token budget lives in Redis, which did not answer',
        });
    }
    const failed = results.find((r) => !r.ok);
    const warnings = results.filter((r) => r.warning).length;
    if (json) ctx.out(JSON.stringify({ ok: !failed, failed: failed?.name ?? null, checks: results }, null, 2));
    else
      ctx.out(
        failed
          ? `check failed: ${failed.name}: ${failed.detail}`
          : `all ${results.length} checks passed${warnings ? ` (${warnings} warning${warnings === 1 ? '' : 's'}: WARN lines)` : ''}`,
      );
    return failed ? 1 : 0;
  },
};
