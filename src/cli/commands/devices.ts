import { one, parseArgs, UsageError } from '../args.js';
import type { Command } from '../command.js';
import { table } from '../table.js';

const USAGE = 'devices list [--json] | add ID --key KEY [--name N] | remove ID';

export const command: Command = {
  usage: USAGE,
  summary: 'the device registry (merged with EXPEED_DEVICES_FILE at start)',
  async run(argv, ctx) {
    const [sub, ...rest] = argv;
    const registry = ctx.registry();
    if (ctx.config.devicesFile) await registry.mergeFile(ctx.config.devicesFile);
    switch (sub) {
      case 'list': {
        const args = parseArgs(rest, { flags: ['json'] });
        if (args.positionals.length)
          throw new UsageError(`devices list takes no arguments (got "${args.positionals[0]}")`);
        const devices = await registry.list();
        if (args.options.has('json')) {
          // keys are secrets: never printed, not even in JSON
          ctx.out(
            JSON.stringify(
              devices.map(({ key: _key, ...d }) => d),
              null,
              2,
            ),
          );
          return 0;
        }
        if (devices.length === 0) {
          ctx.out('no devices registered (add one with: expeed-sync devices add ID --key KEY)');
          return 0;
        }
        const rows = devices.map((d) => [
          d.id,
          d.name ?? '',
          d.origin,
          new Date(d.addedAt).toISOString(),
          d.failure ? `code ${d.failure.code}: ${ctx.scrubber.scrub(d.failure.message)}` : 'ok',
        ]);
        ctx.out(table(['ID', 'NAME', 'ORIGIN', 'ADDED', 'STATE'], rows));
        return 0;
      }
      case 'add': {
        const args = parseArgs(rest, { values: ['key', 'name'] });
        const [id, extra] = args.positionals;
        if (!id) throw new UsageError('devices add ID --key KEY [--name N]');
        if (extra !== undefined) throw new UsageError(`devices add takes one ID (got also "${extra}")`);
        const key = one(args, 'key');
        if (!key) throw new UsageError('devices add needs --key KEY (the device_key the platform issued)');
        ctx.scrubber.add(key);
        const existed = await registry.get(id);
        await registry.upsert({ id, key, name: one(args, 'name') }, 'cli');
        ctx.out(`${existed ? 'updated' : 'added'} device ${id}`);
        return 0;
      }
      case 'remove': {
        const args = parseArgs(rest, {});
        if (args.positionals.length !== 1) throw new UsageError('devices remove ID');
        const id = args.positionals[0];
        if (!(await registry.remove(id))) {
          process.stderr.write(`expeed-sync devices: no device "${id}" in the registry\n`);
          return 1;
        }
        ctx.out(`removed device ${id}`);
        return 0;
      }
      default:
        throw new UsageError(sub ? `unknown devices subcommand "${sub}"; ${USAGE}` : USAGE);
    }
  },
};
