import type { CallOptions, DeviceRef, HistoryQuery, PlatformClient } from '../platform/api.js';
import type { Metrics } from './metrics.js';

function resultOf(err: unknown): string {
  const e = err as { code?: unknown; name?: string };
  return typeof e?.code === 'number' ? `code_${e.code}` : (e?.name ?? 'error');
}

/** Wraps a platform client so that every call is counted by endpoint and result, and timed. */
export function meterPlatformClient(client: PlatformClient, metrics: Metrics): PlatformClient {
  async function timed<T>(endpoint: string, call: () => Promise<T>): Promise<T> {
    const end = metrics.platformLatency.startTimer({ endpoint });
    try {
      const out = await call();
      metrics.platformRequests.inc({ endpoint, result: 'code_0' });
      return out;
    } catch (err) {
      metrics.platformRequests.inc({ endpoint, result: resultOf(err) });
      throw err;
    } finally {
      end();
    }
  }
  return {
    deviceStatus: (d: DeviceRef, o?: CallOptions) => timed('device_status', () => client.deviceStatus(d, o)),
    currentDatapoints: (d: DeviceRef, ids?: string[], o?: CallOptions) =>
      timed('current', () => client.currentDatapoints(d, ids, o)),
    history: async (d: DeviceRef, q: HistoryQuery, o?: CallOptions) => {
      const page = await timed('history', () => client.history(d, q, o));
      metrics.pagesFetched.inc();
      return page;
    },
    deviceSetting: (d: DeviceRef, s: Record<string, unknown>, o?: CallOptions) =>
      timed('device_setting', () => client.deviceSetting(d, s, o)),
  };
}

/** The PlatformPause's onThrottled: counts each 429/503 with Retry-After by endpoint and status. */
export function countThrottled(metrics: Metrics): (info: { endpoint: string; status: number }) => void {
  return ({ endpoint, status }) => metrics.platformThrottled.inc({ endpoint, status: String(status) });
}
