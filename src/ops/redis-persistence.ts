/**
 * Whether Redis keeps what the installation stores there across a restart: its persistence mode
 * (AOF, RDB snapshots, both, none; "unknown" when CONFIG is refused, as on managed Redis), read
 * from every master of a cluster, and a marker key that tells a Redis that came back empty. The
 * watch logs one warning naming what resets, at start and on every reconnect, when Redis has no
 * persistence or the marker is gone.
 */
import { Cluster, type Redis } from 'ioredis';
import { redisKey, type RedisConnection } from '../base/redis.js';

export type PersistenceMode = 'aof+rdb' | 'aof' | 'rdb' | 'none' | 'unknown';

export interface NodePersistence {
  /** host:port of the node */
  node: string;
  mode: PersistenceMode;
  /** CONFIG GET appendonly ("yes"/"no"), absent when refused */
  appendonly?: string;
  /** CONFIG GET save (the RDB snapshot rules, "" = off), absent when refused */
  save?: string;
  /** why CONFIG could not be read */
  error?: string;
}

export interface RedisPersistence {
  /** the weakest mode over the nodes (none < unknown < rdb < aof < aof+rdb) */
  mode: PersistenceMode;
  nodes: NodePersistence[];
}

/** What a Redis restart without persistence (or an emptied Redis) takes with it. */
export const RESETS_WITHOUT_PERSISTENCE = [
  'the checkpoints (devices are walked again from EXPEED_BACKFILL_START)',
  'the token count of the platform day',
  'the device registry',
  'pushes acknowledged but not yet written to InfluxDB',
] as const;

const WEAKEST_FIRST: readonly PersistenceMode[] = ['none', 'unknown', 'rdb', 'aof', 'aof+rdb'];

function nodeName(node: Redis): string {
  return `${node.options.host ?? '127.0.0.1'}:${node.options.port ?? 6379}`;
}

async function configGet(node: Redis, name: string): Promise<string> {
  const reply = (await node.config('GET', name)) as unknown as string[];
  const i = reply.indexOf(name);
  if (i < 0 || i + 1 >= reply.length) throw new Error(`CONFIG GET ${name} returned no value`);
  return reply[i + 1];
}

/** The persistence of one node, from CONFIG GET appendonly and save. */
export async function readNodePersistence(node: Redis): Promise<NodePersistence> {
  const name = nodeName(node);
  try {
    const [appendonly, save] = await Promise.all([configGet(node, 'appendonly'), configGet(node, 'save')]);
    const aof = appendonly === 'yes';
    const rdb = save.trim() !== '';
    return { node: name, appendonly, save, mode: aof && rdb ? 'aof+rdb' : aof ? 'aof' : rdb ? 'rdb' : 'none' };
  } catch (err) {
    return { node: name, mode: 'unknown', error: err instanceof Error ? err.message : String(err) };
  }
}

/** The persistence of a single Redis, or of every master of a cluster. */
export async function readPersistence(redis: RedisConnection): Promise<RedisPersistence> {
  // a cluster knows its masters only once connected: the PING waits for that (offline queue)
  if (redis instanceof Cluster && redis.status !== 'ready') await redis.ping();
  const nodes = await Promise.all(
    (redis instanceof Cluster ? redis.nodes('master') : [redis]).map(readNodePersistence),
  );
  const mode = WEAKEST_FIRST.find((m) => nodes.some((n) => n.mode === m)) ?? 'unknown';
  return { mode, nodes };
}

/** One line for `status`: the mode, per node when the nodes differ. */
export function describePersistence(p: RedisPersistence): string {
  const what: Record<PersistenceMode, string> = {
    'aof+rdb': 'AOF and RDB snapshots',
    aof: 'AOF',
    rdb: 'RDB snapshots only (writes since the last snapshot are lost on a crash)',
    none: 'NONE: a restart resets the checkpoints, the token count, the device registry and pushes not yet written',
    unknown: 'unknown (CONFIG refused; ask the provider whether AOF or snapshots are on)',
  };
  const differ = new Set(p.nodes.map((n) => n.mode)).size > 1;
  return `${what[p.mode]}${differ ? ` [${p.nodes.map((n) => `${n.node} ${n.mode}`).join(', ')}]` : ''}`;
}

export interface PersistenceWatchOptions {
  redis: RedisConnection;
  prefix: string;
  logger: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
  now?: () => number;
}

/** What one check found: the mode, and whether the marker was gone (Redis came back empty). */
export interface PersistenceCheck {
  persistence: RedisPersistence;
  emptied: boolean;
  warned: boolean;
}

/**
 * At start, and after every reconnect of the connection it watches: reads the persistence mode
 * and the marker, logs one warning when there is no persistence or the marker is gone, and sets
 * the marker again.
 */
export class RedisPersistenceWatch {
  readonly markerKey: string;
  private started = false;
  private running: Promise<PersistenceCheck | undefined> = Promise.resolve(undefined);
  private readonly onReady = () => void this.recheck();
  /** the newest check */
  last?: PersistenceCheck;
  /** checks done so far (the start check is the first) */
  checks = 0;

  constructor(private readonly options: PersistenceWatchOptions) {
    this.markerKey = redisKey(options.prefix, 'redis-marker');
  }

  /** The check at start (the marker is set if missing: a first start is not a loss), then one per reconnect. */
  async start(): Promise<PersistenceCheck> {
    this.options.redis.on('ready', this.onReady);
    const check = await this.check('start');
    this.started = true;
    return check;
  }

  /** Resolves once the reconnect checks begun so far are done. */
  async idle(): Promise<void> {
    await this.running;
  }

  stop(): void {
    this.options.redis.off('ready', this.onReady);
  }

  /** The check after a reconnect; overlapping reconnects make one check at a time. */
  recheck(): Promise<PersistenceCheck | undefined> {
    // the connection's first 'ready' belongs to the start check
    if (!this.started) return this.running;
    this.running = this.running.then(() => this.check('reconnect').catch(() => undefined));
    return this.running;
  }

  private async check(when: 'start' | 'reconnect'): Promise<PersistenceCheck> {
    const { redis, logger } = this.options;
    const persistence = await readPersistence(redis);
    const at = String((this.options.now ?? Date.now)());
    // at start a missing marker is a first start; after a reconnect it means Redis lost our keys
    const set = await redis.set(this.markerKey, at, 'NX');
    const emptied = when === 'reconnect' && set === 'OK';
    const warned = emptied || persistence.mode === 'none';
    if (warned) {
      const why = emptied
        ? 'Redis came back empty (the marker key is gone)'
        : 'Redis has no persistence (AOF and RDB snapshots both off)';
      logger.warn(
        {
          when,
          persistence: persistence.mode,
          nodes: persistence.nodes.map((n) => `${n.node} ${n.mode}`),
          emptied,
          resets: RESETS_WITHOUT_PERSISTENCE,
          marker: this.markerKey,
        },
        `${why}: ${emptied ? 'these were reset' : 'a Redis restart resets'} ${RESETS_WITHOUT_PERSISTENCE.join(', ')}; turn on appendonly (docs/security.md)`,
      );
    } else if (when === 'start' && persistence.mode === 'unknown') {
      logger.info(
        { persistence: persistence.mode, nodes: persistence.nodes.map((n) => `${n.node}: ${n.error ?? n.mode}`) },
        'Redis persistence could not be read (CONFIG refused); make sure AOF or snapshots are on',
      );
    }
    this.checks++;
    return (this.last = { persistence, emptied, warned });
  }
}
