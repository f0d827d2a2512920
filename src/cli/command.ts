import type { CommandContext } from './context.js';

/** One command: its usage line and what it does. Each lives in its own file under src/cli/commands. */
export interface Command {
  usage: string;
  summary: string;
  /** returns the process exit code */
  run(argv: string[], ctx: CommandContext): Promise<number>;
  /**
   * commands that never use Redis (simulate): no connection is made before they run. They still get
   * the context (configuration from the environment with its defaults, log, scrubber, output).
   */
  standalone?: boolean;
  /** the long-running service waits for Redis (logging each attempt); one-shot commands give up */
  waitsForRedis?: boolean;
}
