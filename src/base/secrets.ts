/**
 * Keeps secret values (platform key, secret key, tokens, device keys) out of logs and error
 * messages. Values are registered as they become known (config at start, tokens when fetched,
 * device keys when the registry loads) and every registered value is replaced in any text that
 * passes through `scrub`.
 */
export const REDACTED = '[REDACTED]';

/** Keys whose values are secret wherever they appear in a logged object. */
const SECRET_KEYS = [
  'platform_key',
  'platformKey',
  'secret_key',
  'secretKey',
  'access_token',
  'accessToken',
  'token',
  'device_key',
  'deviceKey',
  'key',
  'password',
  'authorization',
  'signature',
];

/**
 * Fields whose values are secret inside text that holds JSON or a query string: a push body kept
 * as a dead letter, a logged request. Their values are redacted by name, so a device key pushed by
 * a device we never registered is hidden too (its value is not known in advance).
 */
const SECRET_FIELDS = [
  'device_key',
  'deviceKey',
  'access_token',
  'accessToken',
  'secret_key',
  'secretKey',
  'platform_key',
  'platformKey',
  'password',
];

const names = SECRET_FIELDS.join('|');
/** `"device_key": "…"` up to the closing quote (escapes included) or the end of a truncated text; also numbers */
const JSON_FIELD = new RegExp(`("(?:${names})"\\s*:\\s*)(?:"(?:[^"\\\\]|\\\\.)*(?:"|\\\\?$)|-?[\\d.eE+-]+)`, 'g');
/** `device_key=…` in a query string or form body */
const QUERY_FIELD = new RegExp(`((?:^|[?&\\s])(?:${names})=)[^&\\s"]*`, 'g');

export class SecretScrubber {
  private readonly values = new Set<string>();
  private pattern: RegExp | undefined;

  constructor(initial: Iterable<string> = []) {
    for (const v of initial) this.add(v);
  }

  /** Registers a secret; values shorter than 4 characters are ignored (they would redact ordinary text). */
  add(value: string | undefined | null): void {
    if (typeof value !== 'string' || value.length < 4 || this.values.has(value)) return;
    this.values.add(value);
    this.pattern = undefined;
    // a value also appears URL-encoded in query strings and paths
    const encoded = encodeURIComponent(value);
    if (encoded !== value) this.values.add(encoded);
  }

  scrub(text: string): string {
    const byName = text.replace(JSON_FIELD, `$1"${REDACTED}"`).replace(QUERY_FIELD, `$1${REDACTED}`);
    return this.scrubValues(byName);
  }

  private scrubValues(text: string): string {
    if (this.values.size === 0) return text;
    this.pattern ??= new RegExp(
      [...this.values]
        .sort((a, b) => b.length - a.length)
        .map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
        .join('|'),
      'g',
    );
    return text.replace(this.pattern, REDACTED);
  }

  /** Deep copy of a value with every secret string scrubbed and every secret-named key redacted. */
  scrubValue(value: unknown, depth = 0): unknown {
    if (typeof value === 'string') return this.scrub(value);
    if (value === null || typeof value !== 'object' || depth > 8) return value;
    if (value instanceof Error) {
      const out: Record<string, unknown> = { type: value.name, message: this.scrub(value.message) };
      if (value.stack) out.stack = this.scrub(value.stack);
      for (const [k, v] of Object.entries(value)) out[k] = this.scrubEntry(k, v, depth);
      if ((value as { cause?: unknown }).cause !== undefined)
        out.cause = this.scrubValue((value as { cause?: unknown }).cause, depth + 1);
      return out;
    }
    if (Array.isArray(value)) return value.map((v) => this.scrubValue(v, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = this.scrubEntry(k, v, depth);
    return out;
  }

  private scrubEntry(key: string, value: unknown, depth: number): unknown {
    if (SECRET_KEYS.includes(key) && (typeof value === 'string' || typeof value === 'number')) return REDACTED;
    return this.scrubValue(value, depth + 1);
  }
}
