/**
 * What the history walks learned about the platform, kept in Redis under the prefix
 * (`<prefix>:platform:profile`, a hash) so that every later walk, in this process or any replica,
 * starts with it: the order pages come in (newest first whatever `first` asks, or as asked), the
 * platform's own page cap below `limit`, and the largest page served. `expeed-sync status` shows
 * it, so an operator on the real platform learns which reading it follows. A change in what the
 * platform does is logged (by the walk that saw it, once per change).
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../base/log.js';
import { redisKey } from '../base/redis.js';
import type { DeviceRef, PlatformClient } from './api.js';
import {
  walkHistory,
  type HistoryWalkOptions,
  type PlatformBehaviour,
  type WalkedPage,
  type WalkEnd,
} from './history-walker.js';

/** What is kept: the behaviour, and when it was last learned or changed (epoch ms). */
export interface PlatformProfile extends PlatformBehaviour {
  learnedAt: number;
}

export function platformProfileKey(prefix: string): string {
  return redisKey(prefix, 'platform', 'profile');
}

export interface PlatformProfileOptions {
  redis: Pick<Redis, 'hgetall' | 'hset' | 'hdel'>;
  prefix: string;
  log?: Pick<Logger, 'info' | 'warn'>;
  now?: () => number;
}

/**
 * What one walk saw merged into what was known: its order when it saw one; the cap it saw, or the
 * known one unless it served a larger page than that (then the platform no longer caps there).
 */
export function mergeBehaviour(known: PlatformBehaviour | undefined, seen: PlatformBehaviour): PlatformBehaviour {
  const largestPage = Math.max(known?.largestPage ?? 0, seen.largestPage ?? 0) || undefined;
  const knownCap =
    known?.pageCap !== undefined && !((seen.largestPage ?? 0) > known.pageCap) ? known.pageCap : undefined;
  const pageCap = seen.pageCap !== undefined ? Math.max(seen.pageCap, knownCap ?? 0) : knownCap;
  return { order: seen.order ?? known?.order, pageCap, largestPage };
}

export class PlatformProfileStore {
  private readonly key: string;

  constructor(private readonly o: PlatformProfileOptions) {
    this.key = platformProfileKey(o.prefix);
  }

  /** What earlier walks learned; undefined before any walk ended. */
  async get(): Promise<PlatformProfile | undefined> {
    const h = await this.o.redis.hgetall(this.key);
    if (!h.learnedAt) return undefined;
    const num = (v: string | undefined) => (v === undefined || v === '' ? undefined : Number(v));
    const order = h.order === 'newest-first' || h.order === 'asked' ? h.order : undefined;
    return { order, pageCap: num(h.pageCap), largestPage: num(h.largestPage), learnedAt: Number(h.learnedAt) };
  }

  /** Merges what one walk saw into `known` (what the walk started with) and stores it when it differs. */
  async record(known: PlatformProfile | undefined, seen: PlatformBehaviour): Promise<void> {
    const next = mergeBehaviour(known, seen);
    const changed = next.order !== known?.order || next.pageCap !== known?.pageCap;
    if (!changed && next.largestPage === known?.largestPage) return;
    const learnedAt = changed || known === undefined ? (this.o.now ?? Date.now)() : known.learnedAt;
    const fields: Record<string, string> = { learnedAt: String(learnedAt) };
    if (next.order !== undefined) fields.order = next.order;
    if (next.largestPage !== undefined) fields.largestPage = String(next.largestPage);
    if (next.pageCap !== undefined) fields.pageCap = String(next.pageCap);
    else if (known?.pageCap !== undefined) await this.o.redis.hdel(this.key, 'pageCap');
    await this.o.redis.hset(this.key, fields);
    if (!changed) return;
    const summary = { order: next.order, pageCap: next.pageCap, largestPage: next.largestPage };
    if (known === undefined || (known.order === undefined && known.pageCap === undefined))
      this.o.log?.info(summary, 'learned how the platform serves history pages');
    else
      this.o.log?.warn(
        { ...summary, was: { order: known.order, pageCap: known.pageCap } },
        'the platform serves history pages differently than earlier walks learned',
      );
  }
}

/**
 * walkHistory starting with what the profile holds, telling it what the walk saw once the walk
 * ended. A profile that cannot be read or stored does not fail the walk (it is only a start).
 */
export function learningWalk(
  client: Pick<PlatformClient, 'history'>,
  store: PlatformProfileStore,
  log?: Pick<Logger, 'warn'>,
) {
  return async function* walk(
    device: DeviceRef,
    options: Pick<HistoryWalkOptions, 'from' | 'to'> & Partial<HistoryWalkOptions>,
  ): AsyncGenerator<WalkedPage, WalkEnd, undefined> {
    const learned = await store
      .get()
      .catch((err: Error) => void log?.warn({ err: err.message }, 'the platform profile could not be read'));
    let seen: PlatformBehaviour | undefined;
    const end = yield* walkHistory(client, device, {
      ...options,
      learned: learned ?? undefined,
      observe: (s) => (seen = s),
    });
    if (seen)
      await store
        .record(learned ?? undefined, seen)
        .catch((err: Error) => log?.warn({ err: err.message }, 'the platform profile could not be stored'));
    return end;
  };
}
