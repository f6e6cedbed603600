import { failureDelay, WorkQueue } from '../../../src/controller/queue.js';

const BACKOFF = { baseMs: 10, maxMs: 80 };

describe('WorkQueue', () => {
  it('queues a key once however often it is added, in first-added order', async () => {
    const q = new WorkQueue(BACKOFF);
    for (const key of ['a', 'b', 'a', 'c', 'b']) q.add(key);
    expect(q.length).toBe(3);
    expect([await q.get(), await q.get(), await q.get()]).toEqual(['a', 'b', 'c']);
  });

  it('never hands a key to two workers: added while processed, it comes back after done()', async () => {
    const q = new WorkQueue(BACKOFF);
    q.add('a');
    const first = await q.get();
    q.add('a');
    q.add('a');
    expect(q.length).toBe(0);
    let second: string | undefined;
    void q.get().then((k) => (second = k));
    await Promise.resolve();
    expect(second).toBeUndefined();
    q.done(first as string);
    await Promise.resolve();
    expect(second).toBe('a');
    q.done('a');
    expect(q.length).toBe(0);
  });

  it('keeps the earliest of several delayed adds of one key', async () => {
    const q = new WorkQueue(BACKOFF);
    q.addAfter('a', 5000);
    q.addAfter('a', 20);
    q.addAfter('a', 3000);
    const started = Date.now();
    expect(await q.get()).toBe('a');
    expect(Date.now() - started).toBeLessThan(1000);
    q.done('a');
    q.shutDown();
  });

  it('backs off exponentially per key until forget()', () => {
    expect([0, 1, 2, 3, 4, 10].map((n) => failureDelay(n, BACKOFF))).toEqual([10, 20, 40, 80, 80, 80]);
    const q = new WorkQueue(BACKOFF);
    expect([q.addRateLimited('a'), q.addRateLimited('a'), q.addRateLimited('b'), q.addRateLimited('a')]).toEqual([10, 20, 10, 40]);
    expect(q.requeues('a')).toBe(3);
    q.forget('a');
    expect(q.addRateLimited('a')).toBe(10);
    q.shutDown();
  });

  it('releases waiting workers on shutDown and takes no more work', async () => {
    const q = new WorkQueue(BACKOFF);
    const waiting = q.get();
    q.shutDown();
    expect(await waiting).toBeUndefined();
    q.add('a');
    expect(await q.get()).toBeUndefined();
  });
});
