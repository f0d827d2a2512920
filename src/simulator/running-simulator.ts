/**
 * A simulator that listens: what tests and the demo hold of it (its URL, devices, statistics and
 * faults), the pushes it sends on request, the changes they make to what it serves, and `close()`,
 * which stops the live feed, the pending setting results, the server and the push client, in that order.
 */
import type { Server } from 'node:http';
import { readPage } from './history.js';
import type { LiveFeed } from './live-feed.js';
import { servedTime } from './served-times.js';
import { servedValues } from './served-values.js';
import type { SimDeviceState, SimState } from './state.js';
import type { SimDevice, SimRow, Simulator, SimulatorFaults, SimulatorStats } from './types.js';

export class RunningSimulator implements Simulator {
  readonly devices: SimDevice[];
  readonly stats: SimulatorStats;
  readonly faults: SimulatorFaults;
  private feed: LiveFeed | undefined;
  private closed: Promise<void> | undefined;

  constructor(
    private readonly state: SimState,
    private readonly server: Server,
    readonly url: string,
  ) {
    this.devices = [...state.devices.values()].map((d) => d.device);
    this.stats = state.stats;
    this.faults = state.faults;
  }

  /** Pushes newly generated rows through `feed` until close(). */
  follow(feed: LiveFeed): void {
    this.feed = feed;
  }

  rows(deviceId: string, from = -Infinity, to = Infinity): SimRow[] {
    // everything the platform holds: no page cap applies to what a test compares against
    return readPage({ ...this.state, history: { ...this.state.history, pageCap: 0 } }, this.deviceOf(deviceId), {
      lo: from,
      hi: to,
      ascending: true,
      limit: Infinity,
    }).rows;
  }

  handshake(opts?: { token?: string; timestamp?: number; nonce?: string }): Promise<{ status: number; body: string }> {
    return this.state.push.handshake(opts);
  }

  pushStatus(deviceId: string, status: 0 | 1): Promise<{ status: number; body: string }> {
    const d = this.deviceOf(deviceId).device;
    return this.state.push.push(1, {
      device_id: d.id,
      device_key: d.key,
      device_sn: snOf(d.id),
      device_status: status,
    });
  }

  pushData(
    deviceId: string,
    rows: Array<{ time: number; values: Record<string, unknown> }>,
  ): Promise<{ status: number; body: string }> {
    const d = this.deviceOf(deviceId).device;
    const data = rows.map((r) => ({
      timestamp: servedTime(this.state.clock, this.state.timestampForm, r.time),
      ...servedValues(r.values, this.state.numericStrings),
    }));
    return this.state.push.push(2, { device_id: d.id, device_key: d.key, data });
  }

  addRows(deviceId: string, rows: Array<{ time: number; values: Record<string, unknown> }>): void {
    this.deviceOf(deviceId).series.add(rows);
  }

  setRange(from: number, to: number): void {
    if (!(from <= to)) throw new Error(`simulator setRange: from (${from}) must not be after to (${to})`);
    this.state.range = { from, to };
  }

  setOnline(deviceId: string, online: boolean): void {
    this.deviceOf(deviceId).device.online = online;
  }

  close(): Promise<void> {
    this.closed ??= this.stop();
    return this.closed;
  }

  private async stop(): Promise<void> {
    await this.feed?.close();
    for (const t of this.state.timers) clearTimeout(t);
    this.state.timers.clear();
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await stopped;
    await this.state.push.close();
  }

  private deviceOf(id: string): SimDeviceState {
    const d = this.state.devices.get(id);
    if (!d) throw new Error(`simulator: no device "${id}"`);
    return d;
  }
}

/** A stable serial number per device id, as msg_type 1 pushes carry one. */
function snOf(id: string): string {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (Math.imul(h, 31) + id.charCodeAt(i)) >>> 0;
  return `SN${h.toString(16).toUpperCase().padStart(8, '0')}`;
}
