/**
 * The contract of the Expeed platform client: what workers, the webhook and the CLI depend on.
 * The implementation is `client.ts`; the vendor API itself is described in docs/platform-api.md.
 */

/** A device as the platform knows it: every device call carries its id (path) and key (header). */
export interface DeviceRef {
  id: string;
  key: string;
}

/** One history or current row: epoch ms plus the datapoints it carries (rows are sparse). */
export interface DataRow {
  time: number;
  /** datapoint name -> value exactly as the platform sent it (not yet type-normalised) */
  values: Record<string, unknown>;
}

/** A row the platform sent that could not be read (e.g. an unparseable timestamp). Kept, never dropped. */
export interface UnreadableRow {
  reason: string;
  raw: unknown;
}

export interface HistoryQuery {
  /** datapoint names; all when omitted */
  ids?: string[];
  /** epoch ms; start and end are sent together or not at all */
  start?: number;
  end?: number;
  /** 1 = oldest first (what backfills use), 0 = newest first (the platform's default) */
  first?: 0 | 1;
  /** 1–6000 */
  limit?: number;
  /** epoch ms position returned by the previous page */
  cursor?: number;
}

export interface HistoryPage {
  rows: DataRow[];
  unreadable: UnreadableRow[];
  /** absent when the platform returned no cursor */
  cursor?: number;
}

export interface DeviceStatus {
  online: boolean;
  /** the code as received (device_status endpoint: 1 = online, 0 = offline) */
  raw: number;
}

/** Options of a single platform call. */
export interface CallOptions {
  /** the call may spend the token reserve kept for operators (manual commands) */
  useReserve?: boolean;
  signal?: AbortSignal;
}

export interface PlatformClient {
  deviceStatus(device: DeviceRef, options?: CallOptions): Promise<DeviceStatus>;
  currentDatapoints(
    device: DeviceRef,
    ids?: string[],
    options?: CallOptions,
  ): Promise<{ row: DataRow | undefined; unreadable: UnreadableRow[] }>;
  history(device: DeviceRef, query: HistoryQuery, options?: CallOptions): Promise<HistoryPage>;
  deviceSetting(
    device: DeviceRef,
    settings: Record<string, unknown>,
    options?: CallOptions,
  ): Promise<{ messageId: string }>;
}

/** Where device calls get their access token: the shared token budget in production. */
export interface TokenSource {
  /** a valid token, fetched (within the daily budget) only when none is cached */
  get(options?: { useReserve?: boolean }): Promise<string>;
  /** the platform rejected `token` (code 1): drop it from the cache, but only if it is still the cached one */
  invalidate(token: string): Promise<void>;
  /** the platform accepted `token` (optional: lets a later code 1 on it read as expiry) */
  accepted?(token: string): Promise<void>;
  /**
   * the platform answered code 1 to `token` (optional; replaces invalidate): drops it, or throws a
   * retry-later error when the token had never worked and token calls must pause
   */
  rejected?(token: string, vendorMessage?: string): Promise<void>;
}
