import { LinkQueue, LinkQueueClosedError, LinkQueueFullError, type LinkMessage } from '../../../src/link/queue.js';
import { MemoryArea } from './memory-area.js';

const msg = (i: number, payloadBytes = 10): LinkMessage => ({
  topic: `t/${i}`, payload: Buffer.alloc(payloadBytes, i), qos: 1, retain: false, publisherClientId: 'pub', timestamp: 1000 + i,
});

async function openQueue(area: MemoryArea, maxBytes = 1 << 20, whenFull: 'block' | 'reject' = 'block'): Promise<LinkQueue> {
  return LinkQueue.open('eu', area, { maxBytes, whenFull, now: () => 5000 });
}

describe('LinkQueue', () => {
  test('numbers messages in order, peeks after a sequence, acks remove and account bytes', async () => {
    const q = await openQueue(new MemoryArea());
    const seqs = [];
    for (let i = 0; i < 5; i++) seqs.push(await q.append(msg(i)));
    expect(seqs).toEqual([1, 2, 3, 4, 5]);
    expect(q.depth).toBe(5);
    const bytesBefore = q.bytes;
    expect(q.peek(0, 2).map((e) => e.seq)).toEqual([1, 2]);
    expect(q.peek(3, 10).map((e) => e.seq)).toEqual([4, 5]);
    expect(q.peek(3, 10)[0].message.topic).toBe('t/3');
    await q.ack(1);
    await q.ack(2);
    expect(q.depth).toBe(3);
    expect(q.bytes).toBeLessThan(bytesBefore);
    expect(q.peek(0, 10).map((e) => e.seq)).toEqual([3, 4, 5]);
    expect(q.oldestAgeMs()).toBe(5000 - 5000);
  });

  test('survives a restart: un-acked entries come back and sequences never repeat', async () => {
    const area = new MemoryArea();
    const q1 = await openQueue(area);
    for (let i = 0; i < 3; i++) await q1.append(msg(i));
    await q1.ack(1);
    const q2 = await openQueue(area);
    expect(q2.peek(0, 10).map((e) => [e.seq, e.message.topic])).toEqual([[2, 't/1'], [3, 't/2']]);
    expect(q2.peek(0, 1)[0].message.payload).toEqual(Buffer.alloc(10, 1));
    expect(await q2.append(msg(9))).toBe(4);
    // everything acknowledged, then a restart: the next sequence still continues
    for (const seq of [2, 3, 4]) await q2.ack(seq);
    const q3 = await openQueue(area);
    expect(q3.depth).toBe(0);
    expect(await q3.append(msg(10))).toBe(5);
  });

  test('an entry is not visible to the sender before it is durable', async () => {
    const area = new MemoryArea();
    const q = await openQueue(area);
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const put = area.put.bind(area);
    area.put = async (k, v) => { await gate; return put(k, v); };
    const appended = q.append(msg(0));
    expect(q.peek(0, 10)).toEqual([]);
    release();
    expect(await appended).toBe(1);
    expect(q.peek(0, 10).map((e) => e.seq)).toEqual([1]);
  });

  test('a failed write rejects the append (the publisher is not acknowledged)', async () => {
    const area = new MemoryArea();
    const q = await openQueue(area);
    area.failWrites = true;
    await expect(q.append(msg(0))).rejects.toThrow('disk full');
  });

  test('whenFull: reject refuses instead of dropping silently', async () => {
    const q = await openQueue(new MemoryArea(), 200, 'reject');
    await q.append(msg(0, 100));
    await expect(q.append(msg(1, 100))).rejects.toBeInstanceOf(LinkQueueFullError);
    await q.ack(1);
    expect(await q.append(msg(2, 100))).toBe(2);
  });

  test('whenFull: block waits for room (back-pressure) and resumes in order', async () => {
    const q = await openQueue(new MemoryArea(), 200, 'block');
    await q.append(msg(0, 100));
    const order: number[] = [];
    const second = q.append(msg(1, 100)).then((s) => order.push(s));
    const third = q.append(msg(2, 100)).then((s) => order.push(s));
    await new Promise((r) => setTimeout(r, 20));
    expect(order).toEqual([]);
    await q.ack(1);
    await second;
    expect(order).toEqual([2]);
    await q.ack(2);
    await third;
    expect(order).toEqual([2, 3]);
    // QoS 0 never waits
    await expect(q.append(msg(3, 100), { wait: false })).rejects.toBeInstanceOf(LinkQueueFullError);
  });

  test('close fails publishers waiting for room', async () => {
    const q = await openQueue(new MemoryArea(), 200, 'block');
    await q.append(msg(0, 150));
    const waiting = q.append(msg(1, 150));
    q.close();
    await expect(waiting).rejects.toBeInstanceOf(LinkQueueClosedError);
  });

  test('a message larger than the whole queue still goes in when the queue is empty', async () => {
    const q = await openQueue(new MemoryArea(), 4096, 'reject');
    expect(await q.append(msg(0, 10_000))).toBe(1);
  });

  test('a batch: peek bounded by bytes (at least one entry), ackAll removes it in one write with the new mark, an out-of-order ack leaves the older entry to resend', async () => {
    const area = new MemoryArea();
    const q = await openQueue(area);
    for (let i = 0; i < 6; i++) await q.append(msg(i, 100));
    const entryBytes = q.bytes / 6;
    expect(q.peek(0, 10, entryBytes * 2.5).map((e) => e.seq)).toEqual([1, 2]);
    expect(q.peek(0, 10, 1).map((e) => e.seq)).toEqual([1]);
    const writes = area.writes;
    await q.ackAll([1, 2, 3]);
    expect(area.writes).toBe(writes + 1);
    expect(q.lastAcked).toBe(3);
    expect(q.peek(0, 10).map((e) => e.seq)).toEqual([4, 5, 6]);
    await q.ackAll([6]);
    expect(q.peek(0, 10).map((e) => e.seq)).toEqual([4, 5]);
    const reopened = await openQueue(area);
    expect(reopened.peek(0, 10).map((e) => e.seq)).toEqual([4, 5]);
    expect(await reopened.append(msg(9))).toBe(7);
  });
});
