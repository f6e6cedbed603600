import { PayloadFactory, wallClockMs } from '../../../src/bench/payload.js';
import { parseBenchArgs } from '../../../src/bench/args.js';
import { Receiver } from '../../../src/bench/receiver.js';

/** A bench payload of publisher 1 whose header says it was sent `agoMs` ago. */
function sentAgo(agoMs: number, sequence: number): Buffer {
  const payload = new PayloadFactory(32).create(1, sequence);
  payload.writeDoubleBE(wallClockMs() - agoMs, 4);
  return payload;
}

describe('bench receiver warm-up', () => {
  it('counts messages sent before the measured window but leaves them out of the latency figures', () => {
    const receiver = new Receiver();
    receiver.measureFrom(wallClockMs() - 500);
    receiver.record(sentAgo(2000, 1)); // warm-up: sent 2 s ago, before the window opened
    receiver.record(sentAgo(1000, 2));
    receiver.record(sentAgo(5, 3));
    const report = receiver.report(performance.now() - 2000, 3);
    expect(report.received).toBe(3);
    expect(report.missing).toBe(0);
    expect(report.warmupMessages).toBe(2);
    expect(report.latencyMs?.count).toBe(1);
    expect(report.latencyMs?.max).toBeLessThan(1000);
    expect(receiver.receivedFrom(1)).toBe(3);
  });

  it('measures every message without a warm-up', () => {
    const receiver = new Receiver();
    receiver.record(sentAgo(1000, 1));
    const report = receiver.report();
    expect(report.warmupMessages).toBeUndefined();
    expect(report.latencyMs?.count).toBe(1);
    expect(report.latencyMs?.min).toBeGreaterThanOrEqual(1000);
  });

  it('parses --warmup (default 0) and refuses a negative one', () => {
    expect(parseBenchArgs(['pub'])).toMatchObject({ options: { warmupS: 0 } });
    expect(parseBenchArgs(['pub', '--subscribers', '1', '--warmup', '1.5'])).toMatchObject({ options: { warmupS: 1.5 } });
    expect(() => parseBenchArgs(['pub', '--warmup', '-1'])).toThrow(/warmup/);
  });
});
