/**
 * The vendor's timestamp format, `YYYY-MM-DDTHH-mm-ss-SSS` in the platform's local zone (no zone
 * in the text). Formatting runs for every served row, so the zone offset is looked up once per
 * hour through Intl and cached; the digits are then built by hand.
 */

const VENDOR_FORMAT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2})-(\d{2})-(\d{2})-(\d{3})$/;
const HOUR_MS = 3_600_000;

export class VendorClock {
  private readonly offsets = new Map<number, number>();
  private readonly prefixes = new Map<number, string>();
  private readonly parts: Intl.DateTimeFormat;

  constructor(readonly timezone: string) {
    // throws RangeError for an unknown zone: the caller learns it at construction, not per row
    this.parts = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
  }

  /** Offset of the zone from UTC at instant `t` (ms), e.g. +8h for Asia/Shanghai. */
  offsetAt(t: number): number {
    const hour = Math.floor(t / HOUR_MS);
    let off = this.offsets.get(hour);
    if (off === undefined) {
      const p: Record<string, number> = {};
      for (const { type, value } of this.parts.formatToParts(new Date(hour * HOUR_MS))) {
        if (type !== 'literal') p[type] = Number(value);
      }
      off = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - hour * HOUR_MS;
      if (this.offsets.size > 100_000) this.offsets.clear();
      this.offsets.set(hour, off);
    }
    return off;
  }

  /** epoch ms -> `2017-02-13T12-00-00-000` in the zone */
  format(t: number): string {
    const local = t + this.offsetAt(t);
    const hour = Math.floor(local / HOUR_MS);
    // the `YYYY-MM-DDTHH-` part is shared by every row of a local hour
    let prefix = this.prefixes.get(hour);
    if (prefix === undefined) {
      const d = new Date(hour * HOUR_MS);
      prefix = `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}T${pad2(d.getUTCHours())}-`;
      if (this.prefixes.size > 100_000) this.prefixes.clear();
      this.prefixes.set(hour, prefix);
    }
    const inHour = local - hour * HOUR_MS;
    const ms = inHour % 1000;
    const sec = Math.floor(inHour / 1000);
    return `${prefix}${pad2(Math.floor(sec / 60))}-${pad2(sec % 60)}-${pad3(ms)}`;
  }

  /** `YYYY-MM-DD` of the platform day containing `t` (the token budget's day). */
  day(t: number): string {
    return this.format(t).slice(0, 10);
  }

  /** Vendor text -> epoch ms, or undefined when it is not exactly the vendor format or not a real time. */
  parse(text: string): number | undefined {
    const m = VENDOR_FORMAT.exec(text);
    if (!m) return undefined;
    const [y, mo, d, h, mi, s, ms] = m.slice(1).map(Number);
    const local = Date.UTC(y, mo - 1, d, h, mi, s, ms);
    const check = new Date(local);
    if (check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d || h > 23 || mi > 59 || s > 59) return undefined;
    // two passes settle the offset around DST changes (a no-op for zones without DST)
    let t = local - this.offsetAt(local);
    t = local - this.offsetAt(t);
    return t;
  }
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : `${n}`;
}

function pad3(n: number): string {
  return n < 10 ? `00${n}` : n < 100 ? `0${n}` : `${n}`;
}
