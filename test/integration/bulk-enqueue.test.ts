/**
 * The nightly and gap-check slots for a fleet: checkpoints read in pipelines, windows queued with
 * addBulk. A slot for hundreds of devices creates exactly the windows the one-device path would
 * (same job ids, same deduplication), once however many schedulers fire it, and queuing the same
 * windows again creates nothing. Runs on one Redis node and, when it answers, on the local
 * 3-master Redis Cluster (pipelines and addBulk must stay in the prefix's slot there).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createApp, type App } from '../../src/app/app.js';
import { splitWindows, windowKey } from '../../src/pull/windows.js';
import { zoneOffsetMs } from '../../src/platform/timestamp.js';
import type { Config } from '../../src/base/config.js';
import type { BackfillJob } from '../../src/base/jobs.js';
import {
  clusterNodes,
  createTestDatabase,
  deleteRedisPrefix,
  hasRedisCluster,
  INFLUX_URL,
  REDIS_URL,
  TEST_CLUSTER_NODES,
  testPrefix,
} from '../helpers/services.js';
import { scrubber, silentLogger, stackScheduler, testConfig } from '../fixtures/pull-env.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const FLEET = 500;
const clusterUp = await hasRedisCluster();
const targets = [
  { name: 'one Redis node', cluster: false },
  ...(clusterUp ? [{ name: 'a Redis Cluster', cluster: true }] : []),
];

describe.each(targets)('bulk enqueue of schedule slots on $name', ({ cluster }) => {
  let stack: App;
  let config: Config;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  const prefix = testPrefix('bulk');
  // a slot on a whole minute, in the past: nothing here depends on the wall clock
  const slot = Date.UTC(2026, 2, 10, 18, 30);
  const backfillStart = slot - 2 * DAY;
  const ids = Array.from({ length: FLEET }, (_, i) => `bulk-${String(i).padStart(4, '0')}`);

  beforeAll(async () => {
    db = await createTestDatabase('bulk');
    // nothing here calls the platform: the URL only has to parse
    config = testConfig({
      simUrl: 'http://127.0.0.1:9',
      prefix,
      db: db.name,
      influxUrl: INFLUX_URL,
      env: cluster ? { REDIS_CLUSTER_NODES: TEST_CLUSTER_NODES } : {},
    });
    stack = createApp(config, { logger: silentLogger(), scrubber: scrubber() });
    for (const id of ids) await stack.registry.upsert({ id, key: `k-${id}` }, 'cli');
  });

  afterAll(async () => {
    await stack?.close();
    await db?.drop();
    await deleteRedisPrefix(config.prefix, cluster ? clusterNodes() : REDIS_URL);
  });

  /** the windows the one-device path queues for a request: same grid, same keys */
  function expectedKeys(requests: BackfillJob[]): string[] {
    return requests
      .flatMap((r) =>
        splitWindows(r.from, r.to, config.backfillWindowMs, (t) => zoneOffsetMs(t, config.timezone)).map((w) =>
          windowKey(r.deviceId, w),
        ),
      )
      .sort();
  }

  async function queuedKeys(): Promise<string[]> {
    const jobs = await stack.backfillQueue.getJobs(['waiting', 'delayed', 'prioritized']);
    return jobs.map((j) => j.id!.split('|').slice(0, 4).join('|')).sort();
  }

  test(`a nightly slot for ${FLEET} devices queues every window once, however often it is fired or queued`, async () => {
    // half the fleet has a checkpoint (30 h before the slot, or 5 h for every tenth), half starts at EXPEED_BACKFILL_START
    const from = new Map<string, number>();
    const seeded = ids
      .filter((_, i) => i % 2 === 0)
      .map((id, i) => ({ deviceId: id, from: slot - (i % 10 === 0 ? 5 : 30) * HOUR }));
    await stack.checkpoints.initialiseMany(seeded);
    for (const s of seeded) from.set(s.deviceId, s.from);
    const got = await stack.checkpoints.getMany(ids);
    expect(got.size).toBe(seeded.length);
    for (const s of seeded) expect(got.get(s.deviceId)?.upTo).toBe(s.from);
    expect(await stack.checkpoints.get(ids[0]!)).toEqual(got.get(ids[0]!));

    const requests = ids.map((id): BackfillJob => ({
      deviceId: id,
      from: from.get(id) ?? backfillStart,
      to: slot,
      reason: 'nightly',
    }));
    const want = expectedKeys(requests);
    // 2 days from the start: 2 or 3 windows; 30 h: 2; 5 h: 1 (one-day windows on the Shanghai grid)
    expect(want.length).toBeGreaterThan(FLEET * 1.5);

    const a = stackScheduler(stack, config.prefix, backfillStart);
    const b = stackScheduler(stack, config.prefix, backfillStart);
    const [ra, rb] = await Promise.all([a.fire('nightly', new Date(slot)), b.fire('nightly', new Date(slot))]);
    expect([ra.ran, rb.ran].sort()).toEqual([false, true]);
    expect(ra.jobs + rb.jobs).toBe(want.length);
    expect(await queuedKeys()).toEqual(want);
    expect((await a.fire('nightly', new Date(slot))).ran).toBe(false);

    // every job carries what the worker needs, named after its device, with the default job options
    const jobs = await stack.backfillQueue.getJobs(['waiting']);
    const sample = jobs.find((j) => j.data.deviceId === ids[1])!;
    expect(sample.name).toBe(ids[1]);
    expect(sample.data).toMatchObject({ deviceId: ids[1], reason: 'nightly' });
    expect(sample.opts.attempts).toBe(40);
    // the devices without a checkpoint got one at EXPEED_BACKFILL_START; the others kept theirs
    const after = await stack.checkpoints.getMany(ids);
    expect(after.size).toBe(FLEET);
    for (const id of ids) expect(after.get(id)?.upTo).toBe(from.get(id) ?? backfillStart);

    // a second replica's enqueue of the same windows (a slot it did not see claimed) creates nothing new
    const again = await stack.backfills.enqueueMany(requests);
    expect(again).toHaveLength(want.length);
    expect(again.every((w) => w.deduplicated)).toBe(true);
    const byKey = new Map(jobs.map((j) => [j.id!.split('|').slice(0, 4).join('|'), j.id]));
    for (const w of again) expect(w.jobId).toBe(byKey.get(windowKey(w.deviceId, w)));
    expect(await queuedKeys()).toEqual(want);
    await Promise.all([a.close(), b.close()]);
    await stack.backfillQueue.obliterate({ force: true });
  }, 60_000);

  test('a gap-check slot scans the fleet in chunks, a few at once, queues their gaps together, and one failed chunk hides no other', async () => {
    // 40 devices with a point every 10 minutes over the 26 h before the slot; every fourth has a 3 h hole
    const fleet = ids.slice(0, 40);
    const to = slot - 10 * 60_000;
    const hole = [to - 8 * HOUR, to - 5 * HOUR];
    const lines: string[] = [];
    fleet.forEach((id, i) => {
      for (let t = slot - 26 * HOUR; t < slot; t += 10 * 60_000)
        if (i % 4 !== 0 || t < hole[0]! || t >= hole[1]!) lines.push(`device_data,device_id=${id} v=${i} ${t}`);
    });
    const res = await fetch(`${INFLUX_URL}/write?db=${db.name}&precision=ms`, {
      method: 'POST',
      body: lines.join('\n'),
    });
    expect(res.status).toBe(204);

    const broken = fleet[8]!; // has a hole, but the scan of its chunk fails
    const warned: unknown[] = [];
    const chunks: string[][] = [];
    let inFlight = 0;
    let most = 0;
    const scheduler = (log: unknown[]) =>
      stackScheduler(stack, config.prefix, backfillStart, {
        gapChunkSize: 10,
        gapConcurrency: 4,
        logger: { info: () => undefined, error: () => undefined, warn: (o: unknown) => void log.push(o) } as never,
        gapFinder: {
          scanMany: async (chunk, f, t) => {
            chunks.push([...chunk]);
            most = Math.max(most, ++inFlight);
            try {
              if (chunk.includes(broken)) throw new Error('InfluxDB answered 500 for this chunk');
              return await stack.gapFinder.scanMany(chunk, f, t);
            } finally {
              inFlight--;
            }
          },
        },
      });
    const a = scheduler(warned);
    const b = scheduler(warned);
    const [ra, rb] = await Promise.all([a.fire('gaps', new Date(slot)), b.fire('gaps', new Date(slot))]);
    expect([ra.ran, rb.ran].sort()).toEqual([false, true]);
    // every registered device was scanned once (the 460 without data say so and queue nothing), in 50 chunks of 10, at most 4 chunks at a time
    expect(chunks.flat().sort()).toEqual(ids);
    expect(chunks.map((c) => c.length)).toEqual(Array.from({ length: FLEET / 10 }, () => 10));
    expect(most).toBe(4);
    const lost = chunks.find((c) => c.includes(broken))!;
    expect(warned).toEqual([
      expect.objectContaining({
        devices: 10,
        first: lost[0],
        last: lost[9],
        err: 'InfluxDB answered 500 for this chunk',
      }),
    ]);
    // the failed chunk held other holed devices too; the holed devices of the other chunks are all queued
    const holedAll = fleet.filter((_, i) => i % 4 === 0);
    expect(holedAll.filter((id) => lost.includes(id)).length).toBeGreaterThan(1);
    expect(holedAll.filter((id) => !lost.includes(id)).length).toBeGreaterThan(3);

    const jobs = await stack.backfillQueue.getJobs(['waiting']);
    const holed = holedAll.filter((id) => !lost.includes(id)).sort();
    expect([...new Set(jobs.map((j) => j.data.deviceId))].sort()).toEqual(holed);
    expect(jobs).toHaveLength(ra.jobs + rb.jobs);
    for (const id of holed) {
      const mine = jobs.filter((j) => j.data.deviceId === id);
      expect(mine.every((j) => j.data.reason === 'gap' && j.data.useReserve === undefined)).toBe(true);
      // the gap covers the hole (widened by a bucket either side), nothing else
      expect(Math.min(...mine.map((j) => j.data.from))).toBeLessThanOrEqual(hole[0]!);
      expect(Math.min(...mine.map((j) => j.data.from))).toBeGreaterThan(hole[0]! - HOUR);
      expect(Math.max(...mine.map((j) => j.data.to))).toBeGreaterThanOrEqual(hole[1]!);
      expect(Math.max(...mine.map((j) => j.data.to))).toBeLessThan(hole[1]! + HOUR);
    }
    await Promise.all([a.close(), b.close()]);
    await stack.backfillQueue.obliterate({ force: true });
  }, 60_000);
});
