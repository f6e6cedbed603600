import { mayAcquire, microTime, nextRecord } from '../../../src/kube/lease.js';
import { nextBackoff } from '../../../src/kube/informer.js';

describe('leader election decisions', () => {
  const record = { holderIdentity: 'b', leaseDurationSeconds: 10, renewTime: '2025-01-01T00:00:00.000000Z', acquireTime: '2025-01-01T00:00:00.000000Z', leaseTransitions: 2 };

  it('takes a free lease or its own at once', () => {
    expect(mayAcquire({ record: {}, at: 1000 }, 'a', 1000, 15_000)).toBe(true);
    expect(mayAcquire({ record: { ...record, holderIdentity: '' }, at: 1000 }, 'a', 1000, 15_000)).toBe(true);
    expect(mayAcquire({ record, at: 1000 }, 'b', 1000, 15_000)).toBe(true);
  });

  it('waits for another holder\'s lease to lapse on the local clock, from when the record last changed', () => {
    expect(mayAcquire({ record, at: 1000 }, 'a', 10_999, 15_000)).toBe(false);
    expect(mayAcquire({ record, at: 1000 }, 'a', 11_000, 15_000)).toBe(true);
    expect(mayAcquire({ record: { ...record, leaseDurationSeconds: undefined }, at: 1000 }, 'a', 11_000, 15_000)).toBe(false);
  });

  it('renews keeping acquireTime and transitions; a takeover bumps them', () => {
    const now = new Date('2025-01-01T00:00:05.123Z');
    expect(nextRecord(record, 'b', now, 10_000)).toEqual({ ...record, renewTime: '2025-01-01T00:00:05.123000Z' });
    expect(nextRecord(record, 'a', now, 12_500)).toEqual({
      holderIdentity: 'a',
      leaseDurationSeconds: 13,
      acquireTime: '2025-01-01T00:00:05.123000Z',
      renewTime: '2025-01-01T00:00:05.123000Z',
      leaseTransitions: 3,
    });
    expect(nextRecord({}, 'a', now, 10_000).leaseTransitions).toBe(0);
  });

  it('writes MicroTime with six fractional digits', () => {
    expect(microTime(new Date('2025-03-04T05:06:07.089Z'))).toBe('2025-03-04T05:06:07.089000Z');
  });
});

describe('informer restart back-off', () => {
  const options = { initialMs: 100, maxMs: 1000, resetAfterMs: 60_000 };

  it('doubles while errors come quickly, caps, and starts over after a healthy minute', () => {
    expect(nextBackoff(undefined, 0, options)).toBe(100);
    expect(nextBackoff(100, 50, options)).toBe(200);
    expect(nextBackoff(800, 50, options)).toBe(1000);
    expect(nextBackoff(1000, 50, options)).toBe(1000);
    expect(nextBackoff(1000, 60_000, options)).toBe(100);
  });
});
