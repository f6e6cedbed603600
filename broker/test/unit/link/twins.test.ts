import { DedupWindow, type Origin } from '../../../src/link/dedup.js';
import { decodeBatch, encodeBatch, type EnvelopeBatch } from '../../../src/link/envelope.js';
import { decodeQueueEntry, encodeQueueEntry } from '../../../src/link/queue-entry-codec.js';
import type { LinkMessage } from '../../../src/link/queue.js';
import { TakeoverDedup } from '../../../src/link/takeover-dedup.js';
import { MemoryArea } from './memory-area.js';

const EPOCH_D = '00000000000000d1';
const EPOCH_N = '00000000000000a2';
/** Two agents of region `mz`: D died with a copy in flight, N took the link over. */
const D: Origin = { cluster: 'mz', agent: 'mz/agent-d', epoch: EPOCH_D };
const N: Origin = { cluster: 'mz', agent: 'mz/agent-n', epoch: EPOCH_N };

const message = (i: number, over: Partial<LinkMessage> = {}): LinkMessage => ({
  topic: `t/${i}`, payload: Buffer.from(`p${i}`), qos: 1, retain: false, publisherClientId: 'c', timestamp: 1_790_000_000_000 + i, ...over,
});

/** Runs one carrier through `window`, recording what was delivered as `<label>:<index>`. */
async function carrier(window: DedupWindow, origin: Origin, seqs: number[], twins: Array<string | undefined> | undefined, delivered: string[], label: string) {
  return window.processBatch(origin, seqs, async (i) => { delivered.push(`${label}:${seqs[i]}`); }, undefined, twins);
}

describe('twin marks in the envelope batch', () => {
  test('a twin-marked message round-trips its identity; unmarked ones carry none and cost no byte more', () => {
    const batch: EnvelopeBatch = {
      originCluster: 'mz', epoch: EPOCH_D,
      entries: [{ seq: 1, message: message(1) }, { seq: 2, message: message(2), twinId: 'mz-replicant.3:417' }, { seq: 5, message: message(3) }],
    };
    expect(decodeBatch(encodeBatch(batch))).toEqual(batch);
    const plain: EnvelopeBatch = { ...batch, entries: batch.entries.map(({ seq, message: m }) => ({ seq, message: m })) };
    expect(encodeBatch(batch).length - encodeBatch(plain).length).toBe(1 + 'mz-replicant.3:417'.length);
  });

  test('the encoder refuses an empty twin identity; a flag beyond the twin mark is still refused', () => {
    expect(() => encodeBatch({ originCluster: 'mz', epoch: EPOCH_D, entries: [{ seq: 1, message: message(1), twinId: '' }] })).toThrow('empty twin identity');
    const bytes = Buffer.from(encodeBatch({ originCluster: 'mz', epoch: EPOCH_D, entries: [{ seq: 1, message: message(1) }] }));
    const flagsAt = 1 + 8 + 1 + 2 + 1 + 6 + 1; // version, epoch, origin, first seq, base time (6 B varint), count
    expect(bytes[flagsAt] & 0x03).toBe(1);
    bytes[flagsAt] |= 0x80;
    expect(() => decodeBatch(bytes)).toThrow('bad envelope flags');
  });
});

describe('the receiver\'s twin window (DedupWindow)', () => {
  test('whichever twin arrives first is delivered, the other dropped (both orders), and the marks still move', async () => {
    for (const first of [N, D]) {
      const second = first === N ? D : N;
      const w = new DedupWindow(new MemoryArea());
      const delivered: string[] = [];
      expect(await carrier(w, first, [7], ['x:1'], delivered, 'first')).toEqual({ delivered: 1, duplicates: 0 });
      expect(await carrier(w, second, [3, 4], [undefined, 'x:1'], delivered, 'second')).toEqual({ delivered: 1, duplicates: 1, twins: 1 });
      expect(delivered).toEqual(['first:7', 'second:3']);
      expect(await w.mark('mz', second.agent)).toBe(4);
    }
  });

  test('unmarked messages never touch the window: no twin record is written, identical sequences of two agents both delivered', async () => {
    const area = new MemoryArea();
    const w = new DedupWindow(area);
    const delivered: string[] = [];
    await carrier(w, D, [1, 2], undefined, delivered, 'd');
    await carrier(w, N, [1, 2], [undefined, undefined], delivered, 'n');
    expect(delivered).toEqual(['d:1', 'd:2', 'n:1', 'n:2']);
    expect([...area.data.keys()].filter((k) => k.startsWith('twin'))).toEqual([]);
    expect(w.twinCount('mz')).toBe(0);
  });

  test('the identity is persisted in the same write as the carrier\'s mark, and survives a restart of the receiver', async () => {
    const area = new MemoryArea();
    const w1 = new DedupWindow(area);
    const delivered: string[] = [];
    const writes = area.writes;
    await carrier(w1, N, [1, 2, 3], [undefined, 'x:1', 'x:2'], delivered, 'n');
    expect(area.writes - writes).toBe(1);
    const w2 = new DedupWindow(area);
    expect(await carrier(w2, D, [10, 11, 12], ['x:1', 'x:3', 'x:2'], delivered, 'd')).toEqual({ delivered: 1, duplicates: 2, twins: 2 });
    expect(delivered).toEqual(['n:1', 'n:2', 'n:3', 'd:11']);
  });

  test('twins are per origin cluster', async () => {
    const w = new DedupWindow(new MemoryArea());
    const delivered: string[] = [];
    await carrier(w, N, [1], ['x:1'], delivered, 'mz');
    await carrier(w, { cluster: 'other', agent: 'other/a', epoch: EPOCH_N }, [1], ['x:1'], delivered, 'other');
    expect(delivered).toEqual(['mz:1', 'other:1']);
  });

  test('bounded by count and by age: the oldest identities are deleted (in memory and in the store) by the write that pushes them out', async () => {
    const area = new MemoryArea();
    let now = 1_000_000;
    const w = new DedupWindow(area, { maxIdentities: 3, windowMs: 60_000 }, () => now);
    const delivered: string[] = [];
    await carrier(w, N, [1, 2, 3, 4], ['a', 'b', 'c', 'd'], delivered, 'n');
    expect(w.twinCount('mz')).toBe(3);
    const stored = (): string[] => [...area.data.keys()].filter((k) => k.startsWith('twin')).map((k) => k.slice(k.lastIndexOf('\u0000') + 1)).sort();
    expect(stored()).toEqual(['b', 'c', 'd']);
    // 'a' fell out of the window: its twin is delivered again (the documented bound); 'b' is still known.
    expect(await carrier(w, D, [1, 2], ['a', 'b'], delivered, 'd')).toEqual({ delivered: 1, duplicates: 1, twins: 1 });
    now += 61_000;
    await carrier(w, N, [5], ['e'], delivered, 'n');
    expect(stored()).toEqual(['e']);
    const restarted = new DedupWindow(area, { maxIdentities: 3, windowMs: 60_000 }, () => now);
    expect(await carrier(restarted, D, [3, 4], ['c', 'e'], delivered, 'd')).toEqual({ delivered: 1, duplicates: 1, twins: 1 });
  });

  test('a failed delivery releases the identity: the twin (or the resend) is delivered', async () => {
    const w = new DedupWindow(new MemoryArea());
    await expect(w.processBatch(N, [1], async () => { throw new Error('publish failed'); }, undefined, ['x:1'])).rejects.toThrow('publish failed');
    const delivered: string[] = [];
    expect(await carrier(w, D, [1], ['x:1'], delivered, 'd')).toEqual({ delivered: 1, duplicates: 0 });
  });

  test('twins from two agents processed at the same time: exactly one delivery', async () => {
    const w = new DedupWindow(new MemoryArea());
    let deliveries = 0;
    const slow = async (): Promise<void> => { deliveries++; await new Promise((r) => setTimeout(r, 20)); };
    const [a, b] = await Promise.all([w.processBatch(N, [1], slow, undefined, ['x:1']), w.processBatch(D, [1], slow, undefined, ['x:1'])]);
    expect(deliveries).toBe(1);
    expect(a.delivered + b.delivered).toBe(1);
  });
});

describe('TakeoverDedup passes twin marks through, handed-over carriers included', () => {
  test('a handed-over carrier below the mark delivers a twin only once', async () => {
    const area = new MemoryArea();
    const takeover = new TakeoverDedup(new DedupWindow(area), area);
    const delivered: string[] = [];
    await carrier(takeover, N, [5, 6], [undefined, 'x:1'], delivered, 'n');
    // Seqs 3 and 4 of N handed over after 5 and 6 were delivered: 4's twin 'x:1' was delivered as 6.
    expect(await carrier(takeover.handedOver, N, [3, 4], [undefined, 'x:1'], delivered, 'h')).toEqual({ delivered: 1, duplicates: 1, twins: 1 });
    expect(await carrier(takeover.handedOver, N, [2], ['x:2'], delivered, 'h')).toEqual({ delivered: 1, duplicates: 0 });
    expect(await carrier(takeover, D, [9], ['x:2'], delivered, 'd')).toEqual({ delivered: 0, duplicates: 1, twins: 1 });
    expect(delivered).toEqual(['n:5', 'n:6', 'h:3', 'h:2']);
  });
});

describe('queue entries keep the origin identity and the handed-over mark', () => {
  test('round-trip; an entry without them keeps the version 1 layout', () => {
    const marked = { seq: 9, message: { ...message(1), originId: 'mz-core.2:99', handedOver: true }, bytes: 60, enqueuedAt: 5 };
    const encoded = encodeQueueEntry(marked);
    expect(encoded[0]).toBe(2);
    expect(decodeQueueEntry(encoded)).toEqual(marked);
    const onlyId = { seq: 10, message: { ...message(2), originId: 'mz-core.2:100', intake: { node: 'mz-core', incarnation: 3, seq: 4 } }, bytes: 60, enqueuedAt: 5 };
    expect(decodeQueueEntry(encodeQueueEntry(onlyId))).toEqual(onlyId);
    const plain = { seq: 11, message: message(3), bytes: 60, enqueuedAt: 5 };
    expect(encodeQueueEntry(plain)[0]).toBe(1);
    expect(decodeQueueEntry(encodeQueueEntry(plain))).toEqual(plain);
  });
});
