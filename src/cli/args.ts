/** A small, strict argument parser: `--flag`, `--opt value`, `--opt=value`, repeated options, positionals. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface ParsedArgs {
  positionals: string[];
  /** every value of each option, in order; flags hold `'true'` */
  options: Map<string, string[]>;
}

export interface ArgSpec {
  /** options that take a value */
  values?: string[];
  /** options without a value */
  flags?: string[];
}

export function parseArgs(argv: string[], spec: ArgSpec): ParsedArgs {
  const values = new Set(spec.values ?? []);
  const flags = new Set([...(spec.flags ?? []), 'help']);
  const options = new Map<string, string[]>();
  const positionals: string[] = [];
  const push = (k: string, v: string) => options.set(k, [...(options.get(k) ?? []), v]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('--')) {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq === -1 ? undefined : eq);
    if (flags.has(name)) {
      if (eq !== -1) throw new UsageError(`--${name} takes no value`);
      push(name, 'true');
    } else if (values.has(name)) {
      const v = eq !== -1 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined || (eq === -1 && v.startsWith('--'))) throw new UsageError(`--${name} needs a value`);
      push(name, v);
    } else {
      throw new UsageError(`unknown option --${name}`);
    }
  }
  return { positionals, options };
}

export function one(args: ParsedArgs, name: string): string | undefined {
  const v = args.options.get(name);
  if (v && v.length > 1) throw new UsageError(`--${name} given more than once`);
  return v?.[0];
}

export function all(args: ParsedArgs, name: string): string[] {
  return args.options.get(name) ?? [];
}

export function flag(args: ParsedArgs, name: string): boolean {
  return args.options.has(name);
}
