import type { StoredPacket } from '../../../src/store/index.js';
import { collect, publish as makePublish, storeFixture } from './fixture.js';

const { freshDir, open, reopen } = storeFixture('store-persistence-', { maxSizeMb: 512, maxQueuedMessages: 20_000 });
const publish = (topic: string, counter: number, qos = 2): StoredPacket => makePublish(topic, counter, qos);

/** What aedes hands over: its live packet objects carry a write callback (a function cannot be serialised). */
const live = (packet: StoredPacket): StoredPacket => ({ ...packet, writeCallback: () => undefined });

describe('[MQTT-4.4.0-1] PUBREL in flight', () => {
  test('aedes\' live PUBREL is stored as a plain copy, survives a restart and is re-sent with its identifier', async () => {
    const dir = freshDir();
    let store = await open(dir);
    const client = { id: 'sub-q2' };
    await store.persistence.outgoingEnqueueCombi([{ clientId: client.id }], publish('t/q2', 1));
    await store.persistence.outgoingUpdate(client, live({ ...publish('t/q2', 1), messageId: 21 }));
    await store.persistence.outgoingUpdate(client, live({ cmd: 'pubrel', messageId: 21 }));
    store = await reopen(store, dir);
    const p = store.persistence;
    expect(await collect<StoredPacket>(p.outgoingStream(client))).toEqual([{ cmd: 'pubrel', messageId: 21 }]);

    // emptyQueue on reconnect: aedes wraps the stored PUBREL in a QoSPacket (this broker's id, a fresh counter).
    await p.outgoingUpdate(client, live({ cmd: 'pubrel', messageId: 21, brokerId: 'node-a.2', brokerCounter: 7, qos: 0, payload: Buffer.alloc(0) }));
    store = await reopen(store, dir);
    expect(await collect<StoredPacket>(store.persistence.outgoingStream(client))).toEqual([{ cmd: 'pubrel', messageId: 21 }]);
    expect(await store.persistence.outgoingClearMessageId(client, { cmd: 'pubcomp', messageId: 21 })).toEqual({ cmd: 'pubrel', messageId: 21 });
    expect(store.persistence.queuedCount(client.id)).toBe(0);
  });

  test('a PUBREL for one message leaves another message\'s PUBREL alone', async () => {
    const store = await open(freshDir());
    const p = store.persistence;
    const client = { id: 'two-in-flight' };
    await p.outgoingEnqueueCombi([{ clientId: client.id }], publish('t', 1));
    await p.outgoingEnqueueCombi([{ clientId: client.id }], publish('t', 2));
    await p.outgoingUpdate(client, live({ ...publish('t', 1), messageId: 5 }));
    await p.outgoingUpdate(client, live({ ...publish('t', 2), messageId: 6 }));
    await p.outgoingUpdate(client, live({ cmd: 'pubrel', messageId: 5 }));
    await p.outgoingUpdate(client, live({ cmd: 'pubrel', messageId: 6 }));
    expect(await collect<StoredPacket>(p.outgoingStream(client))).toEqual([{ cmd: 'pubrel', messageId: 5 }, { cmd: 'pubrel', messageId: 6 }]);
  });
});

describe('[MQTT-3.2.2-2] stored sessions', () => {
  test('openSession tells whether a session was stored, across restarts, until a clean session ends it', async () => {
    const dir = freshDir();
    let store = await open(dir);
    const bare = { id: 'no-subscriptions' };
    const subscribed = { id: 'with-subscriptions' };
    expect(await store.persistence.openSession(bare)).toBe(false);
    expect(await store.persistence.openSession(bare)).toBe(true);
    expect(await store.persistence.openSession(subscribed)).toBe(false);
    await store.persistence.addSubscriptions(subscribed, [{ topic: 's/#', qos: 1 }]);
    store = await reopen(store, dir);
    expect(await store.persistence.openSession(bare)).toBe(true);

    // CleanSession 1: aedes calls cleanSubscriptions, with or without subscriptions stored.
    await store.persistence.cleanSubscriptions(bare);
    await store.persistence.cleanSubscriptions(subscribed);
    store = await reopen(store, dir);
    expect(await store.persistence.subscriptionsByClient(subscribed)).toEqual([]);
    expect(await store.persistence.openSession(bare)).toBe(false);
    expect(await store.persistence.openSession(subscribed)).toBe(false);
  });

  test('the subscription observer hears of a clean-up only when subscriptions were stored', async () => {
    const store = await open(freshDir());
    const unstored: string[] = [];
    store.persistence.subscriptionObserver = { stored: () => undefined, unstored: (clientId) => unstored.push(clientId) };
    await store.persistence.openSession({ id: 'bare' });
    await store.persistence.cleanSubscriptions({ id: 'bare' });
    await store.persistence.addSubscriptions({ id: 'subbed' }, [{ topic: 'x', qos: 1 }]);
    await store.persistence.cleanSubscriptions({ id: 'subbed' });
    expect(unstored).toEqual(['subbed']);
  });
});

describe('matching', () => {
  test('[MQTT-4.7.1-3] a persistent subscription a/+ queues messages for a/ (+ matches an empty level)', async () => {
    const store = await open(freshDir());
    await store.persistence.addSubscriptions({ id: 'c' }, [{ topic: 'a/+', qos: 1 }, { topic: 'b/+/c', qos: 1 }]);
    expect((await store.persistence.subscriptionsByTopic('a/')).map((s) => s.topic)).toEqual(['a/+']);
    expect((await store.persistence.subscriptionsByTopic('b//c')).map((s) => s.topic)).toEqual(['b/+/c']);
  });
});

describe('scale', () => {
  test('a 10 000-message queue: every message updated, half of them to PUBREL, all acknowledged, out of order', async () => {
    const store = await open(freshDir());
    const p = store.persistence;
    const client = { id: 'deep-queue' };
    const count = 10_000;
    const counters = Array.from({ length: count }, (_, i) => i + 1);
    await Promise.all(counters.map((i) => p.outgoingEnqueueCombi([{ clientId: client.id }], publish(`t/${i}`, i))));
    const started = performance.now();
    await Promise.all(counters.map((i) => p.outgoingUpdate(client, live({ ...publish(`t/${i}`, i), messageId: i }))));
    await Promise.all(counters.filter((i) => i % 2 === 0).map((i) => p.outgoingUpdate(client, live({ cmd: 'pubrel', messageId: i }))));
    const queued = await collect<StoredPacket>(p.outgoingStream(client));
    expect(queued.map((q) => [q.cmd, q.messageId])).toEqual(counters.map((i) => [i % 2 ? 'publish' : 'pubrel', i]));
    const cleared = await Promise.all([...counters].reverse().map((i) => p.outgoingClearMessageId(client, { cmd: 'puback', messageId: i })));
    expect(cleared.every((packet) => packet !== undefined)).toBe(true);
    expect(p.queuedCount(client.id)).toBe(0);
    // Includes the commits of 25 000 writes; scanning the queue per operation made this quadratic.
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  test('100 000 retained topics: a subscription looks up only the matching ones', async () => {
    const store = await open(freshDir());
    const p = store.persistence;
    const count = 100_000;
    const topicOf = (i: number): string => `site/${i % 100}/device/${i}`;
    await Promise.all(Array.from({ length: count }, (_, i) =>
      p.storeRetained({ cmd: 'publish', topic: topicOf(i), payload: Buffer.from(`v${i}`), qos: 1, retain: true })));
    const started = performance.now();
    for (let i = 0; i < 2000; i++) {
      const found = await collect<StoredPacket>(p.createRetainedStreamCombi([topicOf(i * 37)]));
      expect(found.map((r) => r.payload?.toString())).toEqual([`v${i * 37}`]);
    }
    const wildcard = await collect<StoredPacket>(p.createRetainedStreamCombi(['site/7/device/+', 'site/8/#']));
    // Testing every retained topic per filter (the former lookup) took seconds here.
    expect(performance.now() - started).toBeLessThan(2000);
    expect(wildcard).toHaveLength(2000);
    expect(await collect<StoredPacket>(p.createRetainedStream('#'))).toHaveLength(count);
  });
});
