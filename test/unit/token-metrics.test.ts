import { describe, expect, test } from 'vitest';
import { createMetrics, setTokenUsage } from '../../src/ops/metrics.js';

const base = {
  day: '2024-05-01',
  calls: 3,
  limit: 200,
  reserve: 10,
  resetsAt: Date.UTC(2024, 4, 1, 16),
  refreshing: false,
};
const at = Date.UTC(2024, 4, 1, 14);

async function cooldownSeconds(usage: Parameters<typeof setTokenUsage>[1]): Promise<Record<string, number>> {
  const metrics = createMetrics({ defaultMetrics: false });
  setTokenUsage(metrics, usage, at);
  const { values } = await metrics.tokenCooldown.get();
  expect((await metrics.tokenCallsToday.get()).values[0].value).toBe(3);
  return Object.fromEntries(values.map((v) => [String(v.labels.reason), v.value]));
}

describe('/metrics token cool-down', () => {
  test('seconds left of the pause, labelled with its reason; 0 for the other reason and when none', async () => {
    expect(
      await cooldownSeconds({ ...base, cooldownUntil: at + 900_000, cooldownKind: 'token', cooldownReason: 'code 1' }),
    ).toEqual({ credentials_rejected: 0, fresh_token_rejected: 900 });
    expect(
      await cooldownSeconds({
        ...base,
        cooldownUntil: at + 60_000,
        cooldownKind: 'credentials',
        cooldownReason: 'bad keys',
      }),
    ).toEqual({ credentials_rejected: 60, fresh_token_rejected: 0 });
    expect(await cooldownSeconds(base)).toEqual({ credentials_rejected: 0, fresh_token_rejected: 0 });
  });
});
