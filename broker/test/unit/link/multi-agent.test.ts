import { decodeForwarded, encodeForwarded, ForwardDecodeError, type ForwardedMessage } from '../../../src/cluster/forward-codec.js';
import { IntakeMarks, type CopyOrigin, type IntakeMessage } from '../../../src/link/intake-marks.js';
import type { QueueEntry } from '../../../src/link/queue.js';
import { activeAgentFor } from '../../../src/link/region.js';
import { createLogger } from '../../../src/log/logger.js';
import { MemoryArea } from './memory-area.js';

const logger = createLogger('silent');

describe('activeAgentFor (rendezvous hashing of link × agent)', () => {
  const agents = ['r-agent', 'r-agent-1', 'r-agent-2'];
  const links = Array.from({ length: 300 }, (_, i) => `link-${i}`);

  test('the same answer whatever the order of the member list; undefined without agents', () => {
    for (const link of links.slice(0, 20)) expect(activeAgentFor(link, [...agents].reverse())).toBe(activeAgentFor(link, agents));
    expect(activeAgentFor('x', [])).toBeUndefined();
  });

  test('links spread over the agents, and an agent leaving moves only the links it served', () => {
    const before = new Map(links.map((l) => [l, activeAgentFor(l, agents)]));
    const counts = agents.map((a) => [...before.values()].filter((w) => w === a).length);
    for (const count of counts) expect(count).toBeGreaterThan(60);
    const without = agents.filter((a) => a !== 'r-agent-1');
    for (const link of links) {
      const now = activeAgentFor(link, without);
      if (before.get(link) !== 'r-agent-1') expect(now).toBe(before.get(link));
      else expect(without).toContain(now);
    }
  });
});

describe('copy identity in the forward codec', () => {
  const sample: ForwardedMessage = { topic: 'a/b', payload: Buffer.from('p'), qos: 1, retain: false, publisherClientId: 'c', timestamp: 1.5 };

  test('round-trips with the attempt and the handed-over mark; absent by default (encoding unchanged)', () => {
    expect(encodeForwarded(sample)[1] & 128).toBe(0);
    for (const copy of [{ incarnation: 3, seq: 2 ** 40, attempt: 0 }, { incarnation: 1, seq: 7, attempt: 1, handedOver: true }]) {
      const message = { ...sample, copy };
      expect(decodeForwarded(encodeForwarded(message))).toEqual(message);
    }
    const shared = { ...sample, shareGroup: 'g', shareFilter: 'a/+', redirects: 2, copy: { incarnation: 1, seq: 1, attempt: 2 } };
    expect(decodeForwarded(encodeForwarded(shared))).toEqual(shared);
  });

  test('bad identities are refused both ways', () => {
    expect(() => encodeForwarded({ ...sample, copy: { incarnation: 1, seq: -1, attempt: 0 } })).toThrow(RangeError);
    expect(() => encodeForwarded({ ...sample, copy: { incarnation: 1, seq: 1, attempt: 128 } })).toThrow(RangeError);
    const encoded = encodeForwarded({ ...sample, payload: Buffer.alloc(0), copy: { incarnation: 1, seq: 1, attempt: 0 } });
    expect(() => decodeForwarded(encoded.subarray(0, encoded.length - 3))).toThrow(ForwardDecodeError);
  });
});

describe('IntakeMarks (copies a sidecar queued before it restarted)', () => {
  const origin = (seq: number, attempt = 1, incarnation = 5): CopyOrigin => ({ node: 'n1', incarnation, seq, attempt });
  const entry = (seq: number, intake?: IntakeMessage['intake']): QueueEntry => ({
    seq, bytes: 10, enqueuedAt: 0, message: { topic: 't', payload: Buffer.alloc(0), qos: 1, retain: false, publisherClientId: '', timestamp: 0, ...(intake ? { intake } : {}) } as IntakeMessage,
  });
  const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

  test('a resent copy at or below what the previous incarnation queued for that link is seen; first copies never are', async () => {
    const area = new MemoryArea();
    const first = await IntakeMarks.open(area, logger);
    first.recorded('L1', origin(10, 0));
    first.recorded('L1', origin(12, 0));
    first.recorded('L2', origin(11, 0));
    await flush();
    const next = await IntakeMarks.open(area, logger);
    expect(next.seenBefore('L1', origin(12))).toBe(true);
    expect(next.seenBefore('L1', origin(13))).toBe(false);
    expect(next.seenBefore('L2', origin(12))).toBe(false);
    expect(next.seenBefore('L1', origin(12, 0))).toBe(false);
    expect(next.seenBefore('L1', origin(1, 1, 6))).toBe(false);
    expect(next.seenBefore('L1', origin(99, 1, 4))).toBe(true);
    // This incarnation's own marks do not count for resends (a resend may arrive after newer first copies).
    next.recorded('L1', origin(20, 0));
    expect(next.seenBefore('L1', origin(15))).toBe(false);
  });

  test('the identities stored in queue entries count too (the mark write may not have happened), once per link', async () => {
    const marks = await IntakeMarks.open(new MemoryArea(), logger);
    marks.scanQueue('L1', [entry(1, { node: 'n1', incarnation: 5, seq: 40 }), entry(2)]);
    expect(marks.seenBefore('L1', origin(40))).toBe(true);
    expect(marks.seenBefore('L1', origin(41))).toBe(false);
    marks.scanQueue('L1', [entry(3, { node: 'n1', incarnation: 5, seq: 50 })]);
    expect(marks.seenBefore('L1', origin(50))).toBe(false);
  });

  test('marks are written in one batch per turn, only when they move', async () => {
    const area = new MemoryArea();
    const marks = await IntakeMarks.open(area, logger);
    marks.recorded('L1', origin(3, 0));
    marks.recorded('L1', origin(4, 0));
    marks.recorded('L1', origin(2, 0));
    await flush();
    expect(area.writes).toBe(1);
    expect([...area.data.values()][0].readBigUInt64BE(8)).toBe(4n);
  });
});
