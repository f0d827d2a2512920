import { describe, expect, test } from 'vitest';
import { VendorClock } from '../../src/simulator/vendor-time.js';

describe('VendorClock', () => {
  const shanghai = new VendorClock('Asia/Shanghai');

  test.each([
    [1486958400000, '2017-02-13T12-00-00-000'], // the vendor's own example pair
    [Date.UTC(2024, 1, 29, 15, 59, 59, 999), '2024-02-29T23-59-59-999'],
    [Date.UTC(2024, 1, 29, 16, 0, 0, 0), '2024-03-01T00-00-00-000'],
    [Date.UTC(2023, 11, 31, 16, 0, 0, 7), '2024-01-01T00-00-00-007'],
    [Date.UTC(2024, 5, 1, 3, 4, 5, 60), '2024-06-01T11-04-05-060'],
  ])('%i <-> %s in Asia/Shanghai', (t, text) => {
    expect(shanghai.format(t)).toBe(text);
    expect(shanghai.parse(text)).toBe(t);
  });

  test('the platform day changes at local midnight', () => {
    expect(shanghai.day(Date.UTC(2024, 2, 1, 15, 59, 59, 999))).toBe('2024-03-01');
    expect(shanghai.day(Date.UTC(2024, 2, 1, 16))).toBe('2024-03-02');
  });

  test('zones with daylight saving format the right offset on both sides of the change', () => {
    const ny = new VendorClock('America/New_York');
    expect(ny.format(Date.UTC(2024, 2, 10, 6, 59, 59, 999))).toBe('2024-03-10T01-59-59-999'); // EST
    expect(ny.format(Date.UTC(2024, 2, 10, 7))).toBe('2024-03-10T03-00-00-000'); // EDT
    expect(ny.parse('2024-07-01T12-00-00-000')).toBe(Date.UTC(2024, 6, 1, 16));
  });

  test.each([
    '2017-02-13 12:00:00.000',
    '2017-02-13T12-00-00',
    ' 2017-02-13T12-00-00-000',
    '2017-02-30T12-00-00-000',
    '2017-02-13T24-00-00-000',
    '2017-02-13T12-60-00-000',
    '',
  ])('%j is not a vendor timestamp', (text) => {
    expect(shanghai.parse(text)).toBeUndefined();
  });

  test('an unknown zone fails at construction', () => {
    expect(() => new VendorClock('Mars/Olympus')).toThrow(RangeError);
  });
});
