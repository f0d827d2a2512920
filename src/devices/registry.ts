import { readFile } from 'node:fs/promises';
import type { Redis } from 'ioredis';
import { parse as parseYaml } from 'yaml';
import { redisKey } from '../base/redis.js';
import type { DeviceRef } from '../platform/api.js';

export interface Device extends DeviceRef {
  name?: string;
  /** epoch ms */
  addedAt: number;
  /** how it got here: file, cli, push */
  origin: 'file' | 'cli' | 'push';
  /** set when the platform said the device or its key is wrong; cleared by a successful call */
  failure?: { code: number; message: string; at: number };
}

export class DevicesFileError extends Error {
  constructor(file: string, problem: string) {
    super(`EXPEED_DEVICES_FILE (${file}): ${problem}`);
    this.name = 'DevicesFileError';
  }
}

/**
 * The devices this installation syncs, in one Redis hash shared by every process:
 * `<prefix>:devices` id -> JSON.
 */
export class DeviceRegistry {
  private readonly key: string;

  constructor(
    private readonly redis: Pick<Redis, 'hget' | 'hset' | 'hdel' | 'hgetall' | 'hsetnx'>,
    prefix: string,
    private readonly now: () => number = Date.now,
  ) {
    this.key = redisKey(prefix, 'devices');
  }

  async list(): Promise<Device[]> {
    const all = await this.redis.hgetall(this.key);
    return Object.values(all)
      .map((v) => JSON.parse(v) as Device)
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  async get(id: string): Promise<Device | undefined> {
    const v = await this.redis.hget(this.key, id);
    return v ? (JSON.parse(v) as Device) : undefined;
  }

  /** Adds or updates a device; keeps its `addedAt`; a new key clears a recorded failure. */
  async upsert(device: { id: string; key: string; name?: string }, origin: Device['origin']): Promise<Device> {
    validateDevice(device, 'device');
    const existing = await this.get(device.id);
    const next: Device = {
      id: device.id,
      key: device.key,
      name: device.name ?? existing?.name,
      addedAt: existing?.addedAt ?? this.now(),
      origin: existing?.origin ?? origin,
      failure: existing && existing.key === device.key ? existing.failure : undefined,
    };
    if (!next.name) delete next.name;
    if (!next.failure) delete next.failure;
    await this.redis.hset(this.key, device.id, JSON.stringify(next));
    return next;
  }

  /** Adds a device only if it is not registered yet (pushes must not overwrite an operator's entry). */
  async addIfMissing(device: { id: string; key: string }, origin: Device['origin']): Promise<boolean> {
    validateDevice(device, 'device');
    const entry: Device = { id: device.id, key: device.key, addedAt: this.now(), origin };
    return (await this.redis.hsetnx(this.key, device.id, JSON.stringify(entry))) === 1;
  }

  async remove(id: string): Promise<boolean> {
    return (await this.redis.hdel(this.key, id)) === 1;
  }

  async markFailure(id: string, failure: { code: number; message: string }): Promise<void> {
    const d = await this.get(id);
    if (!d) return;
    d.failure = { ...failure, at: this.now() };
    await this.redis.hset(this.key, id, JSON.stringify(d));
  }

  async clearFailure(id: string): Promise<void> {
    const d = await this.get(id);
    if (!d?.failure) return;
    delete d.failure;
    await this.redis.hset(this.key, id, JSON.stringify(d));
  }

  /** Merges the devices of EXPEED_DEVICES_FILE into the registry; returns how many it holds. */
  async mergeFile(file: string): Promise<number> {
    const devices = await readDevicesFile(file);
    for (const d of devices) await this.upsert(d, 'file');
    return devices.length;
  }
}

function validateDevice(d: { id?: unknown; key?: unknown; name?: unknown }, where: string): void {
  if (typeof d.id !== 'string' || d.id.length === 0) throw new Error(`${where}: "id" must be a non-empty string`);
  if (typeof d.key !== 'string' || d.key.length === 0)
    throw new Error(`${where} ${d.id}: "key" must be a non-empty string`);
  if (d.name !== undefined && typeof d.name !== 'string') throw new Error(`${where} ${d.id}: "name" must be a string`);
}

/** Reads a JSON or YAML list of `{id, key, name?}` (a top-level `devices:` list is accepted too). */
export async function readDevicesFile(file: string): Promise<Array<{ id: string; key: string; name?: string }>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new DevicesFileError(file, `cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  let doc: unknown;
  try {
    doc = /\.json$/i.test(file) ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new DevicesFileError(
      file,
      `is not valid ${/\.json$/i.test(file) ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  const list = Array.isArray(doc) ? doc : (doc as { devices?: unknown } | null)?.devices;
  if (!Array.isArray(list))
    throw new DevicesFileError(file, 'expected a list of {id, key, name?} (or a "devices:" list)');
  const seen = new Set<string>();
  return list.map((entry, i) => {
    if (entry === null || typeof entry !== 'object')
      throw new DevicesFileError(file, `entry ${i + 1} is not an object`);
    const e = entry as { id?: unknown; key?: unknown; name?: unknown };
    const id = typeof e.id === 'number' ? String(e.id) : e.id;
    try {
      validateDevice({ ...e, id }, `entry ${i + 1}`);
    } catch (err) {
      throw new DevicesFileError(file, (err as Error).message);
    }
    if (seen.has(id as string))
      throw new DevicesFileError(file, `entry ${i + 1}: device "${String(id)}" is listed twice`);
    seen.add(id as string);
    return { id: id as string, key: e.key as string, ...(e.name !== undefined ? { name: e.name as string } : {}) };
  });
}
