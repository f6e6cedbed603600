import { describe, expect, it } from '@jest/globals';
import type { StoredPacket } from '../../../src/store/index.js';
import type { DurablePersistence } from '../../../src/store/persistence.js';
import { collect, storeFixture } from './fixture.js';

const fx = storeFixture('meridian-publish-id-', { maxSizeMb: 1024, maxQueuedMessages: 1000 });

const publisher = { id: 'pub', clean: false };
const incoming = (messageId: number): StoredPacket => ({
  cmd: 'publish', topic: 't/1', payload: Buffer.from(`m${messageId}`), qos: 2, retain: false, dup: false, messageId,
});

/** What aedes' publish hands the store: a fresh broker identity every time, the publish identity kept. */
let counter = 0;
const published = (stored: StoredPacket, brokerId: string): StoredPacket => ({
  cmd: 'publish', topic: stored.topic, payload: stored.payload, qos: 2, retain: false, dup: false, brokerId, brokerCounter: ++counter,
  publishId: stored.publishId,
});

async function queued(persistence: DurablePersistence, clientId: string): Promise<string[]> {
  return (await collect<StoredPacket>(persistence.outgoingStream({ id: clientId }))).map((p) => String(p.payload));
}

describe('publish identity of a pending QoS 2 message', () => {
  it('a persistent session gets one; a clean session none; the stored packet still equals the one received', async () => {
    const store = await fx.open(fx.freshDir());
    const stored = await store.persistence.incomingStorePacket(publisher, incoming(1));
    expect(stored.publishId).toMatch(/^node-a\.1:\d+$/);
    expect(Object.keys(stored)).not.toContain('publishId');
    const clean = await store.persistence.incomingStorePacket({ id: 'c', clean: true } as { id: string }, incoming(2));
    expect(clean.publishId).toBeUndefined();
  });

  it('published again after a restart (mark never committed): queued for nobody twice, acknowledged or not', async () => {
    const dir = fx.freshDir();
    let store = await fx.open(dir);
    const stored = await store.persistence.incomingStorePacket(publisher, incoming(7));
    const first = published(stored, 'node-a.1');
    await store.persistence.outgoingEnqueueCombi([{ clientId: 'a' }, { clientId: 'b' }], first);
    // 'a' takes and acknowledges its copy; nothing marks the message published (the node dies before the mark).
    await store.persistence.outgoingUpdate({ id: 'a' }, { ...first, messageId: 1 });
    await store.persistence.outgoingClearMessageId({ id: 'a' }, { cmd: 'pubcomp', messageId: 1 });
    store = await fx.reopen(store, dir);

    expect(store.persistence.incomingIsPending(publisher, 7)).toBe(true);
    const again = await store.persistence.incomingGetPacket(publisher, { cmd: 'publish', messageId: 7 });
    expect(again.publishId).toBe(stored.publishId);
    const republished = published(again, 'node-a.2');
    await store.persistence.outgoingEnqueueCombi([{ clientId: 'a' }, { clientId: 'b' }, { clientId: 'c' }], republished);

    expect(await queued(store.persistence, 'a')).toEqual([]);
    expect(await queued(store.persistence, 'b')).toEqual(['m7']);
    // 'c' subscribed after the first publish: it gets the message now, once.
    expect(await queued(store.persistence, 'c')).toEqual(['m7']);
    // The live delivery of the republished message to 'a' and 'b' is a repeat, asked once; to 'c' it is not.
    expect(store.persistence.queuedBefore('a', republished)).toBe(true);
    expect(store.persistence.queuedBefore('a', republished)).toBe(false);
    expect(store.persistence.queuedBefore('b', republished)).toBe(true);
    expect(store.persistence.queuedBefore('c', republished)).toBe(false);
  });

  it('once marked published, the record forgets who had it (the resend is a duplicate, never published again)', async () => {
    const dir = fx.freshDir();
    let store = await fx.open(dir);
    const stored = await store.persistence.incomingStorePacket(publisher, incoming(3));
    await store.persistence.outgoingEnqueueCombi([{ clientId: 'a' }], published(stored, 'node-a.1'));
    await store.persistence.incomingPublished(publisher, incoming(3));
    store = await fx.reopen(store, dir);
    expect(store.persistence.incomingIsPending(publisher, 3)).toBe(false);
    expect(await queued(store.persistence, 'a')).toEqual(['m3']);
  });
});

describe('copies from another node (arrivals)', () => {
  const arrival = (publishId: string, n: number): StoredPacket => ({
    cmd: 'publish', topic: 't/1', payload: Buffer.from(`m${n}`), qos: 2, retain: false, dup: false, brokerId: 'node-b.1', brokerCounter: ++counter, publishId,
  });

  it('a copy with an identity queued before (across a restart) is queued again for nobody', async () => {
    const dir = fx.freshDir();
    let store = await fx.open(dir);
    await store.persistence.outgoingEnqueueCombi([{ clientId: 'a' }], arrival('node-x.4:1', 1));
    store = await fx.reopen(store, dir);
    await store.persistence.outgoingEnqueueCombi([{ clientId: 'a' }, { clientId: 'b' }], arrival('node-x.4:1', 1));
    expect(await queued(store.persistence, 'a')).toEqual(['m1']);
    expect(await queued(store.persistence, 'b')).toEqual(['m1']);
  });

  it('at most maxArrivals are remembered: the oldest is forgotten, on disk too', async () => {
    const dir = fx.freshDir();
    let store = await fx.open(dir, { maxArrivals: 2 });
    for (const n of [1, 2, 3]) await store.persistence.outgoingEnqueueCombi([{ clientId: 'a' }], arrival(`node-x.4:${n}`, n));
    store = await fx.reopen(store, dir, { maxArrivals: 2 });
    // 2 and 3 are remembered (not queued again); 1 was forgotten and is queued again.
    for (const n of [3, 2, 1]) await store.persistence.outgoingEnqueueCombi([{ clientId: 'a' }], arrival(`node-x.4:${n}`, n));
    expect(await queued(store.persistence, 'a')).toEqual(['m1', 'm2', 'm3', 'm1']);
  });

  it('older than the window: forgotten', async () => {
    const store = await fx.open(fx.freshDir(), { arrivalWindowMs: 50 });
    await store.persistence.outgoingEnqueueCombi([{ clientId: 'a' }], arrival('node-x.4:1', 1));
    await new Promise((resolve) => setTimeout(resolve, 120));
    // A new arrival pushes the expired one out; the expired one is then queued again.
    await store.persistence.outgoingEnqueueCombi([{ clientId: 'a' }], arrival('node-x.4:2', 2));
    await store.persistence.outgoingEnqueueCombi([{ clientId: 'a' }], arrival('node-x.4:1', 1));
    expect(await queued(store.persistence, 'a')).toEqual(['m1', 'm2', 'm1']);
  });
});
