import { LinkQueue, type LinkMessage } from '../../../src/link/queue.js';
import { MemoryArea } from './memory-area.js';

const msg = (i: number, publishId?: string): LinkMessage => ({
  topic: `t/${i}`, payload: Buffer.from(`m${i}`), qos: 2, retain: false, publisherClientId: 'pub', timestamp: 1000 + i,
  ...(publishId === undefined ? {} : { publishId }),
});

function openQueue(area: MemoryArea, clock: { now: number }, limits = { windowMs: 60_000, maxArrivals: 3 }): Promise<LinkQueue> {
  return LinkQueue.open('eu', area, { maxBytes: 1 << 20, whenFull: 'block', now: () => clock.now, identityLimits: limits });
}

describe('LinkQueue publish identities', () => {
  test('a message published again with its identity is queued once and resolves with the first sequence', async () => {
    const q = await openQueue(new MemoryArea(), { now: 0 });
    expect(await q.append(msg(1, 'n1.3:7'))).toBe(1);
    expect(await q.append(msg(2))).toBe(2);
    expect(await q.append(msg(1, 'n1.3:7'))).toBe(1);
    expect(q.depth).toBe(2);
    expect(q.repeatsSkipped).toBe(1);
  });

  test('the identity commits in the same write as the entry and survives a restart and the acknowledgement', async () => {
    const area = new MemoryArea();
    const clock = { now: 0 };
    const q1 = await openQueue(area, clock);
    const writes = area.writes;
    await q1.append(msg(1, 'n1.3:7'));
    expect(area.writes).toBe(writes + 1);
    await q1.ack(1);
    const q2 = await openQueue(area, clock);
    expect(await q2.append(msg(1, 'n1.3:7'))).toBe(1);
    expect(q2.depth).toBe(0);
    expect(await q2.append(msg(2, 'n1.3:8'))).toBe(2);
  });

  test('a repeat arriving while the first append commits waits for that commit', async () => {
    const area = new MemoryArea();
    const q = await openQueue(area, { now: 0 });
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const batch = area.batch.bind(area);
    area.batch = async (ops) => { await gate; return batch(ops); };
    let repeatDone = false;
    const first = q.append(msg(1, 'n1.3:7'));
    const repeat = q.append(msg(1, 'n1.3:7')).then((seq) => { repeatDone = true; return seq; });
    await new Promise((r) => setImmediate(r));
    expect(repeatDone).toBe(false);
    release();
    expect(await first).toBe(1);
    expect(await repeat).toBe(1);
    expect(q.depth).toBe(1);
  });

  test('a failed append forgets the identity: the repeat is queued', async () => {
    const area = new MemoryArea();
    const q = await openQueue(area, { now: 0 });
    area.failWrites = true;
    await expect(q.append(msg(1, 'n1.3:7'))).rejects.toThrow('disk full');
    area.failWrites = false;
    expect(await q.append(msg(1, 'n1.3:7'))).toBe(2);
    expect(q.depth).toBe(1);
  });

  test('the window is bounded by count and age; evicted identities are deleted in the append that evicts them', async () => {
    const area = new MemoryArea();
    const clock = { now: 0 };
    const q = await openQueue(area, clock);
    for (let i = 1; i <= 4; i++) await q.append(msg(i, `id-${i}`));
    expect(q.identityCount).toBe(3);
    expect([...area.data.keys()].filter((k) => k.startsWith('p:')).sort()).toEqual(['p:id-2', 'p:id-3', 'p:id-4']);
    expect(await q.append(msg(1, 'id-1'))).toBe(5); // pushed out by count: queued again
    clock.now = 61_000;
    await q.append(msg(6, 'id-6'));
    expect([...area.data.keys()].filter((k) => k.startsWith('p:'))).toEqual(['p:id-6']);
    const reopened = await openQueue(area, clock);
    expect(reopened.identityCount).toBe(1);
    expect(await reopened.append(msg(6, 'id-6'))).toBe(6);
  });

  test('a long identity is keyed by its hash', async () => {
    const area = new MemoryArea();
    const q = await openQueue(area, { now: 0 });
    const long = 'x'.repeat(2000);
    await q.append(msg(1, long));
    expect([...area.data.keys()].find((k) => k.startsWith('p:'))).toMatch(/^p:#[0-9a-f]{64}$/);
    expect(await q.append(msg(1, long))).toBe(1);
  });
});
