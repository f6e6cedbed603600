import { percentile, ratePerSecond, Sample, summarize } from '../../../src/bench/stats.js';

describe('percentile (nearest rank)', () => {
  const oneToHundred = Float64Array.from({ length: 100 }, (_, i) => i + 1);

  it('picks the smallest value with at least p% of the sample at or below it', () => {
    expect(percentile(oneToHundred, 50)).toBe(50);
    expect(percentile(oneToHundred, 99)).toBe(99);
    expect(percentile(oneToHundred, 99.9)).toBe(100);
    expect(percentile(oneToHundred, 100)).toBe(100);
    expect(percentile(oneToHundred, 0)).toBe(1);
  });

  it('works on tiny samples', () => {
    expect(percentile([5], 50)).toBe(5);
    expect(percentile([1, 2], 50)).toBe(1);
    expect(percentile([1, 2], 51)).toBe(2);
  });

  it('rejects empty samples and out-of-range p', () => {
    expect(() => percentile([], 50)).toThrow(RangeError);
    expect(() => percentile([1], 101)).toThrow(RangeError);
    expect(() => percentile([1], Number.NaN)).toThrow(RangeError);
  });
});

describe('summarize', () => {
  it('returns undefined for no values', () => {
    expect(summarize([])).toBeUndefined();
  });

  it('sorts numerically, not as strings, and orders its percentiles', () => {
    const summary = summarize([10, 9, 100, 1, 2.5]);
    expect(summary).toEqual({ count: 5, min: 1, mean: 24.5, p50: 9, p90: 100, p95: 100, p99: 100, p999: 100, max: 100 });
  });

  it('keeps min <= p50 <= p90 <= p95 <= p99 <= p99.9 <= max on a skewed sample', () => {
    const values = Array.from({ length: 10_000 }, (_, i) => (i % 97 === 0 ? 1000 + i : (i * 7919) % 13));
    const s = summarize(values);
    if (!s) throw new Error('expected a summary');
    const ordered = [s.min, s.p50, s.p90, s.p95, s.p99, s.p999, s.max];
    expect([...ordered].sort((a, b) => a - b)).toEqual(ordered);
    expect(s.max).toBe(Math.max(...values));
  });
});

describe('Sample', () => {
  it('grows past its initial capacity and summarizes what was added', () => {
    const sample = new Sample();
    for (let i = 5000; i >= 1; i--) sample.add(i);
    expect(sample.count).toBe(5000);
    expect(sample.summary()).toMatchObject({ count: 5000, min: 1, max: 5000, p50: 2500, p99: 4950 });
  });
});

describe('ratePerSecond', () => {
  it('is events per second and 0 for an empty interval', () => {
    expect(ratePerSecond(500, 250)).toBe(2000);
    expect(ratePerSecond(5, 0)).toBe(0);
  });
});
