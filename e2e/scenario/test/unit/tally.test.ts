import { ReceiverTally, decodeEvent, encodeEvent, percentile, type AccessEvent } from '../../tally.js';

const event = (seq: number, overrides: Partial<AccessEvent> = {}): AccessEvent => ({
  tenant: 'acme', region: 'us-east', door: 'us-east-site00/door01', kind: 'denied', seq, sentAt: 1000 + seq, run: 'r', ...overrides,
});

describe('ReceiverTally', () => {
  const wantsAcme = (e: AccessEvent): boolean => e.tenant === 'acme';

  test('counts delivered, lost, duplicated and out-of-order events per door', () => {
    const tally = new ReceiverTally('audit', wantsAcme);
    for (let seq = 1; seq <= 5; seq++) tally.sent(event(seq));
    tally.received(event(1), 1010);
    tally.received(event(3), 1020);
    tally.received(event(2), 1030); // below 3: out of order
    tally.received(event(3), 1040); // second copy
    const stats = tally.stats();
    expect(stats).toMatchObject({ expected: 5, delivered: 3, lost: 2, duplicated: 1, outOfOrder: 1, foreign: 0 });
    expect(stats.lostExamples).toEqual(['acme:us-east:us-east-site00/door01#4', 'acme:us-east:us-east-site00/door01#5']);
    expect(tally.missing()).toBe(2);
  });

  test('an event its publisher gave up on is no longer expected', () => {
    const tally = new ReceiverTally('audit', wantsAcme);
    tally.sent(event(1));
    tally.sent(event(2));
    tally.unsent(event(2));
    tally.received(event(1), 1010);
    expect(tally.stats()).toMatchObject({ expected: 1, delivered: 1, lost: 0 });
  });

  test('an event the receiver must not get is foreign, not delivered', () => {
    const tally = new ReceiverTally('audit', wantsAcme);
    tally.sent(event(1, { tenant: 'globex' }));
    tally.received(event(1, { tenant: 'globex' }), 2000);
    expect(tally.stats()).toMatchObject({ expected: 0, delivered: 0, foreign: 1 });
  });

  test('latency is receive time minus send time, per origin region', () => {
    const tally = new ReceiverTally('dash', wantsAcme);
    tally.sent(event(1));
    tally.sent(event(1, { region: 'us-west', door: 'us-west-site00/door00' }));
    tally.received(event(1), 1001 + 40);
    tally.received(event(1, { region: 'us-west', door: 'us-west-site00/door00' }), 1001 + 90);
    const stats = tally.stats();
    expect(stats.latencyByRegion['us-east']).toMatchObject({ count: 1, p50: 40, p99: 40 });
    expect(stats.latencyByRegion['us-west']).toMatchObject({ count: 1, p50: 90 });
    expect(tally.deliveredFrom('us-west')).toBe(1);
  });
});

describe('event codec and percentiles', () => {
  test('round trip; a payload that is not an event is refused with its text', () => {
    expect(decodeEvent(encodeEvent(event(7)))).toEqual(event(7));
    expect(() => decodeEvent(Buffer.from('hello'))).toThrow('access event payload is not JSON: hello');
    expect(() => decodeEvent(Buffer.from('{"seq":1}'))).toThrow('lacks fields');
  });

  test('nearest-rank percentile', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(values, 50)).toBe(50);
    expect(percentile(values, 99)).toBe(99);
    expect(percentile([], 50)).toBeNaN();
  });
});
