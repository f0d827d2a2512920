/**
 * The platform's side of notifications: the GET verification handshake to the registered URL,
 * then JSON POSTs of msg_type 1 (status), 2 (data) and 3 (setting result). Like the vendor's own
 * examples, msg_type (and set_result) go out as a string in some pushes and a number in others.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { SimLogger, SimulatorStats } from './types.js';

export interface PushClientOptions {
  pushUrl?: string;
  /** without it, pushes go out without a handshake (there is nothing to sign with) */
  webhookToken?: string;
  /** real time for handshake timestamps; default Date.now */
  wallClock: () => number;
  stats: SimulatorStats;
  logger?: SimLogger;
  /** per request, ms; default 10 s */
  timeoutMs?: number;
}

export interface HttpAnswer {
  status: number;
  body: string;
}

/** signature = md5( sha1(token + nonce + timestamp) as lowercase hex ) as lowercase hex */
export function handshakeSignature(token: string, nonce: string, timestamp: string): string {
  const sha1 = createHash('sha1')
    .update(token + nonce + timestamp, 'utf8')
    .digest('hex');
  return createHash('md5').update(sha1, 'utf8').digest('hex');
}

export class PushClient {
  private readonly verified = new Map<string, Promise<void>>();
  private readonly abort = new AbortController();
  private readonly inflight = new Set<Promise<unknown>>();
  private pushCount = 0;

  constructor(private readonly o: PushClientOptions) {}

  get url(): string | undefined {
    return this.o.pushUrl;
  }

  async handshake(opts: { token?: string; timestamp?: number; nonce?: string } = {}): Promise<HttpAnswer> {
    const url = this.requireUrl();
    const token = opts.token ?? this.o.webhookToken ?? '';
    const nonce = opts.nonce ?? randomBytes(8).toString('hex');
    // wall-clock seconds: the receiver checks freshness against its own clock, whatever the
    // simulator's injected clock (which only drives tokens and data) says
    const timestamp = String(opts.timestamp ?? Math.floor(this.o.wallClock() / 1000));
    const query = new URLSearchParams({ signature: handshakeSignature(token, nonce, timestamp), nonce, timestamp });
    return this.request(`${url}${url.includes('?') ? '&' : '?'}${query}`, { method: 'GET' });
  }

  /** POSTs a notification; the first push to the URL waits for a successful handshake. */
  async push(msgType: 1 | 2 | 3, fields: Record<string, unknown>): Promise<HttpAnswer> {
    const url = this.requireUrl();
    await this.ensureVerified(url);
    // alternate string and number, as the vendor's examples disagree
    const asString = this.pushCount++ % 2 === 0;
    const body: Record<string, unknown> = { msg_type: asString ? String(msgType) : msgType, ...fields };
    if ('set_result' in body && asString) body.set_result = String(body.set_result);
    const sent = JSON.stringify(body);
    let answer: HttpAnswer;
    try {
      answer = await this.request(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: sent });
    } catch (err) {
      this.o.stats.pushes.push({ msgType, status: 0, body: (err as Error).message, sent });
      throw err;
    }
    this.o.stats.pushes.push({ msgType, status: answer.status, body: answer.body, sent });
    return answer;
  }

  /** Fire-and-forget push (timers): failures are logged, never left as unhandled rejections. */
  pushInBackground(msgType: 1 | 2 | 3, fields: Record<string, unknown>): void {
    const p = this.push(msgType, fields).then(
      (a) => {
        if (a.status >= 300)
          this.o.logger?.warn({ msgType, status: a.status }, 'simulator push refused by the receiver');
      },
      (err: Error) => this.o.logger?.warn({ msgType, err: err.message }, 'simulator push failed'),
    );
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  async close(): Promise<void> {
    this.abort.abort();
    await Promise.allSettled([...this.inflight]);
  }

  private requireUrl(): string {
    if (!this.o.pushUrl)
      throw new Error('the simulator has no pushUrl: pass pushUrl in its options to send notifications');
    return this.o.pushUrl;
  }

  private ensureVerified(url: string): Promise<void> {
    if (this.o.webhookToken === undefined) return Promise.resolve();
    let done = this.verified.get(url);
    if (!done) {
      done = (async () => {
        const nonce = randomBytes(8).toString('hex');
        const a = await this.handshake({ nonce });
        if (a.status !== 200 || a.body !== nonce) {
          throw new Error(
            `handshake with ${url} failed (HTTP ${a.status}, body ${JSON.stringify(a.body.slice(0, 100))} is not the nonce): no push sent`,
          );
        }
        this.o.logger?.info({ url }, 'simulator handshake accepted');
      })();
      // a failed handshake is tried again on the next push
      done.catch(() => this.verified.delete(url));
      this.verified.set(url, done);
    }
    return done;
  }

  private async request(url: string, init: RequestInit): Promise<HttpAnswer> {
    const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.o.timeoutMs ?? 10_000)]);
    const p = (async () => {
      const res = await fetch(url, { ...init, signal });
      return { status: res.status, body: await res.text() };
    })();
    this.inflight.add(p);
    try {
      return await p;
    } finally {
      this.inflight.delete(p);
    }
  }
}
