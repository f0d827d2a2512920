import { Writable } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { createLogger } from '../../src/base/log.js';
import { REDACTED, SecretScrubber } from '../../src/base/secrets.js';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { lines, destination };
}

describe('SecretScrubber', () => {
  test('replaces registered values, longest first, also URL-encoded', () => {
    const s = new SecretScrubber(['secret-1', 'secret-12', 'k €/1']);
    expect(s.scrub('a secret-12 b secret-1 c')).toBe(`a ${REDACTED} b ${REDACTED} c`);
    expect(s.scrub('GET /x?key=k%20%E2%82%AC%2F1')).toBe(`GET /x?key=${REDACTED}`);
  });

  test('ignores values too short to be secrets', () => {
    const s = new SecretScrubber(['ab', '']);
    expect(s.scrub('ab cd')).toBe('ab cd');
  });

  test('redacts secret-named keys and nested errors', () => {
    const s = new SecretScrubber(['tok-777']);
    const err = new Error('call failed with tok-777', { cause: new Error('inner tok-777') });
    const out = s.scrubValue({ headers: { access_token: 'anything', device_key: 'dk' }, err, n: 5 }) as Record<
      string,
      never
    >;
    expect(out).toMatchObject({ headers: { access_token: REDACTED, device_key: REDACTED }, n: 5 });
    expect(JSON.stringify(out)).not.toContain('tok-777');
    expect(JSON.stringify(out)).toContain('call failed with [REDACTED]');
  });
});

describe('SecretScrubber: secret fields inside text (push bodies kept as dead letters)', () => {
  const s = new SecretScrubber(['registered-key-1']);

  test('a pushed device_key in JSON text is redacted by field name, whatever its value', () => {
    expect(s.scrub('{"device_id":"d1","device_key":"pushed-k-9","data":[]}')).toBe(
      `{"device_id":"d1","device_key":"${REDACTED}","data":[]}`,
    );
    expect(s.scrub('{"device_key" : "a\\"b-secret", "x":1}')).toBe(`{"device_key" : "${REDACTED}", "x":1}`);
    expect(s.scrub('{"deviceKey":12345}')).toBe(`{"deviceKey":"${REDACTED}"}`);
  });

  test('a body cut short (kept head of a large letter) does not leak the tail of a key', () => {
    expect(s.scrub('{"device_id":"d1","device_key":"trunc-secr')).toBe(`{"device_id":"d1","device_key":"${REDACTED}"`);
  });

  test('query strings and registered values by value', () => {
    expect(s.scrub('POST /webhook?device_key=abc-secret&n=1')).toBe(`POST /webhook?device_key=${REDACTED}&n=1`);
    expect(s.scrub('{"note":"registered-key-1"}')).toBe(`{"note":"${REDACTED}"}`);
  });

  test('scrubValue reaches strings nested in objects (a letter whose raw is the body text)', () => {
    const out = JSON.stringify(s.scrubValue({ raw: '{"device_key":"pushed-k-10"}', reason: 'bad' }));
    expect(out).not.toContain('pushed-k-10');
  });
});

describe('logger', () => {
  test('no secret reaches the log: messages, objects, errors', () => {
    const scrubber = new SecretScrubber(['platform-key-XYZ']);
    const { lines, destination } = capture();
    const log = createLogger({ level: 'info', scrubber, destination });
    scrubber.add('fresh-token-abc');
    log.info(
      { url: 'https://x/v1/platform/token?platform_key=platform-key-XYZ', token: 'whatever' },
      'fetched fresh-token-abc',
    );
    log.error(new Error('bad secret fresh-token-abc'), 'failed');
    const text = lines.join('');
    expect(lines).toHaveLength(2);
    expect(text).not.toContain('platform-key-XYZ');
    expect(text).not.toContain('fresh-token-abc');
    expect(text).not.toContain('whatever');
    expect(JSON.parse(lines[0]).msg).toBe(`fetched ${REDACTED}`);
    expect(text).toContain(`bad secret ${REDACTED}`);
  });
});
