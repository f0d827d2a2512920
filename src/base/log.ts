import { pino, type Logger, type DestinationStream } from 'pino';
import type { SecretScrubber } from './secrets.js';

export type { Logger } from 'pino';

export interface LoggerOptions {
  level: string;
  scrubber: SecretScrubber;
  name?: string;
  /** defaults to stderr, so that command output on stdout stays clean */
  destination?: DestinationStream;
}

/**
 * pino logger whose every record passes through the secret scrubber: secret-named keys are
 * redacted and any registered secret value is replaced, in messages, objects and errors alike.
 */
export function createLogger(options: LoggerOptions): Logger {
  const { scrubber } = options;
  return pino(
    {
      level: options.level,
      name: options.name ?? 'expeed-sync',
      hooks: {
        logMethod(args, method) {
          const scrubbed = args.map((a) => scrubber.scrubValue(a)) as Parameters<typeof method>;
          return method.apply(this, scrubbed);
        },
      },
    },
    options.destination ?? pino.destination(2),
  );
}
