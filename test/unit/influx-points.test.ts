import { describe, expect, test } from 'vitest';
import { settingPoint, statusPoint } from '../../src/influx/points.js';
import type { SettingCommand } from '../../src/devices/pending-settings.js';

describe('the points of the measurements we name the fields of', () => {
  test.each([
    [true, 1, 'poll'],
    [false, 0, 'poll'],
    [true, 0, 'push'],
    [false, 7, 'push'],
  ] as const)('device_status online %s, raw %i, from %s', (online, raw, source) => {
    expect(statusPoint('d1', 1234, online, raw, source)).toEqual({
      measurement: 'device_status',
      deviceId: 'd1',
      time: 1234,
      fields: { online, raw_status: raw, source },
    });
  });

  test('a setting state becomes a device_setting point at the time of that state', () => {
    const base: Omit<SettingCommand, 'state'> = {
      messageId: 'm1',
      deviceId: 'd1',
      settings: { temp: 25 },
      sentAt: 100,
      deadline: 200,
    };
    expect(settingPoint({ ...base, state: 'sent' })).toEqual({
      measurement: 'device_setting',
      deviceId: 'd1',
      time: 100,
      fields: { message_id: 'm1', state: 'sent', settings: '{"temp":25}' },
    });
    expect(settingPoint({ ...base, state: 'applied', resolvedAt: 150 })).toEqual({
      measurement: 'device_setting',
      deviceId: 'd1',
      time: 150,
      fields: { message_id: 'm1', state: 'applied', settings: '{"temp":25}' },
    });
    expect(settingPoint({ messageId: 'm2', deviceId: 'd1', state: 'failed', resolvedAt: 7 }).fields).toEqual({
      message_id: 'm2',
      state: 'failed',
    });
    // `unknown`: the request may have reached the platform unanswered, so there is no message id
    expect(
      settingPoint({
        messageId: '',
        deviceId: 'd1',
        settings: { temp: 25 },
        sentAt: 100,
        resolvedAt: 120,
        state: 'unknown',
      }),
    ).toEqual({
      measurement: 'device_setting',
      deviceId: 'd1',
      time: 120,
      fields: { message_id: '', state: 'unknown', settings: '{"temp":25}' },
    });
  });
});
