/**
 * Deterministic, lazily generated history of one device. Time is cut into fixed slots of the
 * device's cadence; whether a slot has a row, the row's jitter and every value are hashes of
 * (seed, device, slot), so any range is computed on its own, cheaply, and always identically —
 * which is what lets `rows()` promise exactly what the history endpoint serves, and lets a
 * benchmark serve 100 devices x 100k rows without holding them. The values of each field come from
 * field-generators.ts, rows split within one millisecond from same-ms-rows.ts, and rows added from
 * outside (pushed data) are merged in from added-rows.ts.
 */
import { AddedRows, lowerBound } from './added-rows.js';
import { fieldGen, type FieldGen } from './field-generators.js';
import { hashString, mix, unit } from './prng.js';
import { sameMsParts } from './same-ms-rows.js';
import type { SimDevice, SimRow, SimValue } from './types.js';

export interface SeriesOptions {
  seed: number;
  /** probability a slot has no row; 64-slot holes happen at a third of it per block */
  gapRate: number;
  /** a full row at least every this many slots (and after a longer hole) */
  fullRowEvery: number;
  /** probability that a slot's row is served as 2-3 rows at the same millisecond (default 0) */
  sameMsRate?: number;
  /** a split row also repeats its first part last (A, B, A: the platform's last value is A's); default false */
  sameMsRepeat?: boolean;
}

const BLOCK = 64;
const MEMO = 4;
const SALT_SLOT_GAP = 0x51;
const SALT_BLOCK_GAP = 0xb1;
const SALT_JITTER = 0x71;
const SALT_SAME_MS = 0x93;

export class DeviceSeries {
  readonly cadMs: number;
  private readonly base: number;
  private readonly gens: FieldGen[];
  private readonly slotGap: number;
  private readonly blockGap: number;
  /** rows added from outside (pushed data) */
  private readonly added = new AddedRows();
  private readonly memoK: number[] = new Array<number>(MEMO).fill(Number.NaN);
  private readonly memoV: SimValue[][] = new Array<SimValue[]>(MEMO).fill([]);
  private memoNext = 0;

  constructor(
    readonly device: SimDevice,
    private readonly options: SeriesOptions,
  ) {
    this.cadMs = Math.max(1, Math.round(device.cadenceSec * 1000));
    this.base = mix(hashString(device.id), options.seed >>> 0, 0x5eed);
    this.gens = device.fields.map((f) => fieldGen(f, this.base));
    this.slotGap = options.gapRate;
    this.blockGap = options.gapRate / 3;
  }

  slotOf(t: number): number {
    return Math.floor(t / this.cadMs);
  }

  /** Row time of slot k: inside the slot, so slot order is time order. */
  timeOf(k: number): number {
    return k * this.cadMs + Math.floor(unit(mix(this.base, k, SALT_JITTER)) * this.cadMs * 0.4);
  }

  private inBlockGap(k: number): boolean {
    return this.blockGap > 0 && unit(mix(this.base, Math.floor(k / BLOCK), SALT_BLOCK_GAP)) < this.blockGap;
  }

  private offlineWindow(t: number): [number, number] | undefined {
    for (const w of this.device.offline) if (t >= w[0] && t < w[1]) return w;
    return undefined;
  }

  private present(k: number): boolean {
    if (this.inBlockGap(k)) return false;
    if (this.slotGap > 0 && unit(mix(this.base, k, SALT_SLOT_GAP)) < this.slotGap) return false;
    return this.offlineWindow(this.timeOf(k)) === undefined;
  }

  /** The generated row of a present slot: fields that changed since the previous row, or all of them. */
  private rowAt(k: number, knownPrev?: number): SimRow {
    const n = this.options.fullRowEvery;
    let prev: number | undefined;
    // an ascending scan knows the previous present slot: no need to search for it
    if (knownPrev !== undefined) {
      prev = k - knownPrev <= n ? knownPrev : undefined;
    } else {
      for (let j = k - 1; j >= k - n; j--) {
        if (this.present(j)) {
          prev = j;
          break;
        }
      }
    }
    const full = prev === undefined || k % n === 0;
    const before = full ? undefined : this.valuesAt(prev as number);
    const now = this.valuesAt(k);
    const values: Record<string, SimValue> = {};
    let any = false;
    for (let f = 0; f < this.gens.length; f++) {
      if (!before || now[f] !== before[f]) {
        values[this.gens[f].name] = now[f];
        any = true;
      }
    }
    // a row where nothing changed still reports something: the vendor sends no empty rows
    if (!any && this.gens.length > 0) values[this.gens[0].name] = now[0];
    return { time: this.timeOf(k), values };
  }

  /**
   * Every field's value at slot k. The last few slots are remembered: a scan in either direction
   * asks for each slot twice (as a row, and as the previous row of its neighbour).
   */
  private valuesAt(k: number): SimValue[] {
    for (let i = 0; i < MEMO; i++) if (this.memoK[i] === k) return this.memoV[i];
    const t = k * this.cadMs;
    const out = this.gens.map((g) => g.value(k, t));
    const at = this.memoNext++ % MEMO;
    this.memoK[at] = k;
    this.memoV[at] = out;
    return out;
  }

  /**
   * Visits the rows of [lo, hi) — generated rows only inside [genLo, genHi), added rows anywhere —
   * in time order (ascending or descending) until `visit` returns false.
   */
  scan(
    lo: number,
    hi: number,
    genLo: number,
    genHi: number,
    ascending: boolean,
    visitRow: (row: SimRow) => boolean,
  ): void {
    const rate = this.options.sameMsRate ?? 0;
    const visit = rate > 0 ? (row: SimRow) => this.visitSplit(row, ascending, rate, visitRow) : visitRow;
    const gLo = Math.max(lo, genLo);
    const gHi = Math.min(hi, genHi);
    const hasGen = gLo < gHi && Number.isFinite(gLo) && Number.isFinite(gHi);
    const extra = this.added.rows;
    if (ascending) {
      let k = hasGen ? this.slotOf(gLo) : 0;
      const kEnd = hasGen ? this.slotOf(gHi - 1) : -1;
      let i = lowerBound(extra, lo);
      let gen = hasGen ? this.nextAsc(k, kEnd, gLo, gHi) : undefined;
      for (;;) {
        const x = i < extra.length && extra[i].time < hi ? extra[i] : undefined;
        if (!gen && !x) return;
        let row: SimRow;
        if (gen && (!x || gen.row.time < x.time)) {
          row = gen.row;
        } else if (gen && x && gen.row.time === x.time) {
          row = { time: x.time, values: { ...gen.row.values, ...x.values } };
          i++;
        } else {
          row = x as SimRow;
          i++;
          if (!visit(row)) return;
          continue;
        }
        k = gen.k + 1;
        gen = this.nextAsc(k, kEnd, gLo, gHi, gen.k);
        if (!visit(row)) return;
      }
    } else {
      let k = hasGen ? this.slotOf(gHi - 1) : -1;
      const kEnd = hasGen ? this.slotOf(gLo) : 0;
      let i = lowerBound(extra, hi) - 1;
      let gen = hasGen ? this.nextDesc(k, kEnd, gLo, gHi) : undefined;
      for (;;) {
        const x = i >= 0 && extra[i].time >= lo ? extra[i] : undefined;
        if (!gen && !x) return;
        let row: SimRow;
        if (gen && (!x || gen.row.time > x.time)) {
          row = gen.row;
        } else if (gen && x && gen.row.time === x.time) {
          row = { time: x.time, values: { ...gen.row.values, ...x.values } };
          i--;
        } else {
          row = x as SimRow;
          i--;
          if (!visit(row)) return;
          continue;
        }
        k = gen.k - 1;
        gen = this.nextDesc(k, kEnd, gLo, gHi);
        if (!visit(row)) return;
      }
    }
  }

  /**
   * Serves a row as 2 or 3 rows at its millisecond when the (seed, time) hash says so. Descending
   * scans visit the parts in reverse, so "later" means the same in both directions.
   */
  private visitSplit(row: SimRow, ascending: boolean, rate: number, visit: (row: SimRow) => boolean): boolean {
    const h = mix(this.base, row.time, SALT_SAME_MS);
    if (unit(h) >= rate) return visit(row);
    const parts = sameMsParts(row, h);
    if (this.options.sameMsRepeat && parts.length > 1) parts.push({ time: row.time, values: { ...parts[0].values } });
    if (!ascending) parts.reverse();
    for (const p of parts) if (!visit(p)) return false;
    return true;
  }

  /** First present slot >= k (up to kEnd) whose row time is in [lo, hi). */
  private nextAsc(
    k: number,
    kEnd: number,
    lo: number,
    hi: number,
    prevK?: number,
  ): { k: number; row: SimRow } | undefined {
    while (k <= kEnd) {
      if (this.inBlockGap(k)) {
        k = (Math.floor(k / BLOCK) + 1) * BLOCK;
        continue;
      }
      const t = this.timeOf(k);
      const w = this.offlineWindow(t);
      if (w) {
        k = Math.max(k + 1, this.slotOf(w[1]));
        continue;
      }
      if (t >= hi) return undefined;
      if (t >= lo && this.present(k)) return { k, row: this.rowAt(k, prevK) };
      k++;
    }
    return undefined;
  }

  /** First present slot <= k (down to kEnd) whose row time is in [lo, hi). */
  private nextDesc(k: number, kEnd: number, lo: number, hi: number): { k: number; row: SimRow } | undefined {
    while (k >= kEnd) {
      if (this.inBlockGap(k)) {
        k = Math.floor(k / BLOCK) * BLOCK - 1;
        continue;
      }
      const t = this.timeOf(k);
      const w = this.offlineWindow(t);
      if (w) {
        k = Math.min(k - 1, this.slotOf(w[0]));
        continue;
      }
      if (t < lo) return undefined;
      if (t < hi && this.present(k)) return { k, row: this.rowAt(k) };
      k--;
    }
    return undefined;
  }

  /** Adds rows (merged into any row already at the same time). */
  add(rows: Array<{ time: number; values: Record<string, unknown> }>): void {
    this.added.add(rows);
  }
}
