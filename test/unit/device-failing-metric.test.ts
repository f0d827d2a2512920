import { describe, expect, test } from 'vitest';
import { createMetrics, setDeviceFailing } from '../../src/ops/metrics.js';
import { failedJobsPerDevice, isFailing } from '../../src/status/failing-devices.js';

const gauge = async (metrics: ReturnType<typeof createMetrics>) =>
  Object.fromEntries((await metrics.deviceFailing.get()).values.map((v) => [String(v.labels.device_id), v.value]));

describe('expeed_device_failing', () => {
  test('a device is failing with a registry failure mark or a kept failed backfill job, as status says', async () => {
    const failed = await failedJobsPerDevice({
      getFailed: async () => [{ data: { deviceId: 'b' } }, { data: { deviceId: 'b' } }, { data: {} }, undefined],
    } as never);
    expect([...failed]).toEqual([['b', 2]]);
    expect([isFailing({}, 0), isFailing({ failure: { code: 2 } }, 0), isFailing({}, failed.get('b')!)]).toEqual([
      false,
      true,
      true,
    ]);
    expect(await failedJobsPerDevice(undefined)).toEqual(new Map());
  });

  test('one series per registered device, 1 or 0; a device gone from the registry loses its series', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    setDeviceFailing(metrics, [
      { id: 'a', failing: false },
      { id: 'b', failing: true },
      { id: 'c', failing: true },
    ]);
    expect(await gauge(metrics)).toEqual({ a: 0, b: 1, c: 1 });
    setDeviceFailing(metrics, [
      { id: 'a', failing: true },
      { id: 'b', failing: false },
    ]);
    expect(await gauge(metrics)).toEqual({ a: 1, b: 0 });
    expect(await metrics.registry.metrics()).toMatch(/^expeed_device_failing\{device_id="a"\} 1$/m);
  });
});
