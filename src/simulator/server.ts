/**
 * The simulator's HTTP server (node:http, to stay lean under benchmark load). Routes match the
 * RAW path, and only then is the device id segment decoded, so ids containing '/' (sent as %2F),
 * spaces or Chinese characters reach the right device.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { authorize, currentEndpoint, deviceStatusEndpoint, settingEndpoint, tokenEndpoint } from './endpoints.js';
import { historyEndpoint } from './history.js';
import { CODE, MESSAGE, messageOf } from './result-codes.js';
import { violation, type Answer, type SimDeviceState, type SimRequest, type SimState } from './state.js';

const MAX_BODY = 1024 * 1024;

type DeviceHandler = (state: SimState, req: SimRequest, dev: SimDeviceState) => Answer;

interface Route {
  endpoint: string;
  method: 'GET' | 'POST';
  deviceId?: string;
}

/** Which endpoint a raw path names; `undefined` for none, a string for a malformed device id. */
function route(rawPath: string): Route | string | undefined {
  const seg = rawPath.split('/');
  if (rawPath === '/v1/platform/token') return { endpoint: 'token', method: 'GET' };
  if (seg.length !== 5 || seg[0] !== '' || seg[1] !== 'v1' || seg[2] !== 'devices') return undefined;
  const [raw, leaf] = seg[3] === 'device_status' ? [seg[4], 'device_status'] : [seg[3], seg[4]];
  const endpoint = {
    device_status: 'device_status',
    currentDatapoints: 'current',
    datapoints: 'history',
    device_setting: 'setting',
  }[leaf];
  if (!endpoint) return undefined;
  let deviceId: string;
  try {
    deviceId = decodeURIComponent(raw);
  } catch {
    return `device id segment is not valid URL encoding: ${JSON.stringify(raw)}`;
  }
  if (deviceId === '') return 'empty device id';
  return { endpoint, method: endpoint === 'setting' ? 'POST' : 'GET', deviceId };
}

const DEVICE_HANDLERS: Record<string, DeviceHandler> = {
  device_status: (_s, _r, dev) => deviceStatusEndpoint(dev),
  current: currentEndpoint,
  history: historyEndpoint,
  setting: settingEndpoint,
};

function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => resolve(size > MAX_BODY ? undefined : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, json: Record<string, unknown>): void {
  // one UTF-8 encoding, whose length is the header (a 6000-row page is ~400 KB)
  const body = Buffer.from(JSON.stringify(json), 'utf8');
  res.writeHead(status, { 'content-type': 'application/json;charset=UTF-8', 'content-length': body.length });
  res.end(body);
}

async function handle(state: SimState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const rawPath = q === -1 ? url : url.slice(0, q);
  const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
  const r = route(rawPath);
  if (typeof r !== 'object') {
    state.stats.requests.unknown = (state.stats.requests.unknown ?? 0) + 1;
    violation(state, 'unknown', r ?? `no such endpoint: ${req.method} ${rawPath}`);
    return send(res, 404, { result_code: CODE.urlParams, result_message: MESSAGE.urlParams });
  }
  state.stats.requests[r.endpoint] = (state.stats.requests[r.endpoint] ?? 0) + 1;
  // every token call counts against the day, whatever happens to it next
  const withinLimit = r.endpoint === 'token' ? state.tokens.countCall() : true;
  const body = r.method === 'POST' ? await readBody(req) : '';
  if (state.faults.latencyMs > 0) await new Promise((done) => setTimeout(done, state.faults.latencyMs));
  if (req.method !== r.method) {
    violation(state, r.endpoint, `method ${req.method} (the endpoint takes ${r.method})`);
    return send(res, 405, { result_code: CODE.urlParams, result_message: MESSAGE.urlParams });
  }
  if (state.faults.draw5xx()) {
    res.writeHead(503, { 'content-type': 'text/html' });
    res.end('<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>');
    return;
  }
  if (r.endpoint !== 'token') {
    const failure = state.faults.drawDeviceFailure();
    if (failure) state.stats.deviceFailures[failure]++;
    if (failure === '502') {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html><body><h1>502 Bad Gateway</h1></body></html>');
      return;
    }
    // a connection reset: no answer at all
    if (failure === 'reset') return void req.socket.destroy();
  }
  const throttled = state.faults.takeThrottle(r.endpoint);
  if (throttled) {
    res.writeHead(throttled.status, { 'content-type': 'text/html', 'retry-after': throttled.retryAfter });
    res.end(
      `<html><body><h1>${throttled.status === 429 ? '429 Too Many Requests' : '503 Service Temporarily Unavailable'}</h1></body></html>`,
    );
    return;
  }
  const storm = state.faults.takeStorm(r.endpoint);
  if (storm !== undefined) return send(res, 200, { result_code: storm, result_message: messageOf(storm) });
  if (body === undefined) {
    violation(state, r.endpoint, `body larger than ${MAX_BODY} bytes`);
    return send(res, 413, { result_code: CODE.bodyParams, result_message: MESSAGE.bodyParams });
  }
  const request: SimRequest = { method: req.method ?? 'GET', query, headers: req.headers, body, deviceId: r.deviceId };
  if (r.endpoint === 'token') {
    const a = tokenEndpoint(state, request, withinLimit);
    return send(res, a.status ?? 200, a.json);
  }
  const auth = authorize(state, request, r.endpoint);
  if ('json' in auth) return send(res, auth.status ?? 200, auth.json);
  const a = DEVICE_HANDLERS[r.endpoint](state, request, auth);
  send(res, a.status ?? 200, a.json);
}

export function createSimServer(state: SimState): Server {
  return createServer((req, res) => {
    handle(state, req, res).catch((err: Error) => {
      state.logger?.warn({ err: err.message, url: req.url }, 'simulator failed to answer');
      if (!res.headersSent) send(res, 500, { result_code: -1, result_message: `simulator error: ${err.message}` });
      else res.destroy();
    });
  });
}
