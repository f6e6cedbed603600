import { readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { StoredPacket } from '../../../src/store/index.js';
import { collect, publish as makePublish, storeFixture } from './fixture.js';

const { freshDir, open, reopen } = storeFixture('store-unit-', { maxSizeMb: 64, maxQueuedMessages: 100 });
const publish = (topic: string, counter: number, qos = 1): StoredPacket => makePublish(topic, counter, qos);

describe('openStore', () => {
  test('incarnation starts at 1 and grows by one on every open', async () => {
    const dir = freshDir();
    let store = await open(dir);
    expect(store.incarnation).toBe(1);
    store = await reopen(store, dir);
    expect(store.incarnation).toBe(2);
    store = await reopen(store, dir);
    expect(store.incarnation).toBe(3);
  });

  test('reopening keeps sessions, subscriptions, queued and in-flight messages, QoS 2 state, retained and wills', async () => {
    const dir = freshDir();
    let store = await open(dir);
    let p = store.persistence;
    const client = { id: 'sensor-1' };
    await p.addSubscriptions(client, [
      { topic: 'a/+/c', qos: 1, rh: 0, rap: false, nl: false },
      { topic: 'q0', qos: 0, rh: 0, rap: false, nl: false },
      { topic: 'v5/#', qos: 2, rh: 0, rap: false, nl: false, subscriptionIdentifier: 7 },
    ]);
    await p.outgoingEnqueueCombi([{ clientId: client.id }], publish('a/b/c', 1));
    await p.outgoingEnqueueCombi([{ clientId: client.id }], publish('a/b/c', 2, 2));
    await p.outgoingEnqueueCombi([{ clientId: client.id }], { ...publish('a/b/c', 3), payload: 'as a string' });
    await p.outgoingUpdate(client, { ...publish('a/b/c', 1), messageId: 11 });
    await p.outgoingUpdate(client, { ...publish('a/b/c', 2, 2), messageId: 12 });
    await p.outgoingUpdate(client, { cmd: 'pubrel', messageId: 12 });
    await p.incomingStorePacket(client, { cmd: 'publish', topic: 'in/q2', payload: Buffer.from('x'), qos: 2, messageId: 99 });
    await p.storeRetained({ cmd: 'publish', topic: 'status/node', payload: Buffer.from('up'), qos: 1, retain: true });
    await p.putWill(client, { cmd: 'publish', topic: 'will/sensor-1', payload: Buffer.from('gone'), qos: 1, retain: false });

    store = await reopen(store, dir);
    p = store.persistence;
    expect(await p.subscriptionsByClient(client)).toEqual([
      { topic: 'a/+/c', qos: 1, rh: 0, rap: false, nl: false },
      { topic: 'q0', qos: 0, rh: 0, rap: false, nl: false },
      { topic: 'v5/#', qos: 2, rh: 0, rap: false, nl: false, subscriptionIdentifier: 7 },
    ]);
    expect((await p.subscriptionsByTopic('a/x/c')).map((s) => s.clientId)).toEqual(['sensor-1']);
    expect(await p.subscriptionsByTopic('q0')).toEqual([]);
    expect(await p.countOffline()).toEqual({ subsCount: 2, clientsCount: 1 });

    const queued = await collect<StoredPacket>(p.outgoingStream(client));
    expect(queued.map((q) => [q.cmd, q.messageId])).toEqual([['publish', 11], ['pubrel', 12], ['publish', undefined]]);
    expect(Buffer.isBuffer(queued[0].payload)).toBe(true);
    expect(queued[2].payload).toBe('as a string');

    expect((await p.incomingGetPacket(client, { cmd: 'pubrel', messageId: 99 })).topic).toBe('in/q2');
    const retained = await collect<StoredPacket>(p.createRetainedStream('status/#'));
    expect(retained.map((r) => r.payload?.toString())).toEqual(['up']);
    const wills = await collect<StoredPacket>(p.streamWill({ [`node-a.${store.incarnation}`]: Date.now() }));
    expect(wills.map((w) => [w.clientId, w.brokerId])).toEqual([['sensor-1', 'node-a.1']]);

    // Acknowledging after the restart removes the message for good.
    expect((await p.outgoingClearMessageId(client, { cmd: 'puback', messageId: 11 }))?.brokerCounter).toBe(1);
    store = await reopen(store, dir);
    expect((await collect<StoredPacket>(store.persistence.outgoingStream(client))).map((q) => q.messageId)).toEqual([12, undefined]);
  });

  test('new queued messages continue the sequence after a reopen (order is kept)', async () => {
    const dir = freshDir();
    let store = await open(dir);
    await store.persistence.outgoingEnqueueCombi([{ clientId: 'c' }], publish('t', 1));
    store = await reopen(store, dir);
    await store.persistence.outgoingEnqueueCombi([{ clientId: 'c' }], publish('t', 2));
    store = await reopen(store, dir);
    expect((await collect<StoredPacket>(store.persistence.outgoingStream({ id: 'c' }))).map((q) => q.brokerCounter)).toEqual([1, 2]);
  });

  test('very long client ids and topics are stored under hashed keys and come back intact', async () => {
    const dir = freshDir();
    let store = await open(dir);
    const client = { id: 'c'.repeat(3000) };
    const topic = `long/${'t'.repeat(5000)}`;
    await store.persistence.addSubscriptions(client, [{ topic, qos: 1 }]);
    await store.persistence.storeRetained({ cmd: 'publish', topic, payload: Buffer.from('r'), qos: 0, retain: true });
    await store.persistence.outgoingEnqueueCombi([{ clientId: client.id }], publish(topic, 1));
    store = await reopen(store, dir);
    expect((await store.persistence.subscriptionsByClient(client)).map((s) => s.topic)).toEqual([topic]);
    expect((await collect<StoredPacket>(store.persistence.createRetainedStream('long/#'))).map((r) => r.topic)).toEqual([topic]);
    expect((await collect<StoredPacket>(store.persistence.outgoingStream(client)))).toHaveLength(1);
  });

  test('close() is idempotent', async () => {
    const store = await open(freshDir());
    await Promise.all([store.close(), store.close()]);
    await store.close();
    await expect(store.area('x').put('k', Buffer.from('v'))).rejects.toThrow('store is closed');
  });

  test('onWriteLatency gets one observation per commit', async () => {
    const latencies: number[] = [];
    const store = await open(freshDir(), { onWriteLatency: (s) => latencies.push(s), commitDelayMs: 20 });
    const area = store.area('t');
    await Promise.all([area.put('a', Buffer.from('1')), area.put('b', Buffer.from('2')), area.put('c', Buffer.from('3'))]);
    expect(latencies).toHaveLength(1);
    expect(latencies[0]).toBeGreaterThan(0);
  });
});

describe('queue limit', () => {
  test('a full session queue refuses the newest message, calls onQueueFull, and leaves other sessions alone', async () => {
    const dropped: [string, string][] = [];
    const dir = freshDir();
    let store = await open(dir, { maxQueuedMessages: 3, onQueueFull: (clientId, topic) => dropped.push([clientId, topic]) });
    const p = store.persistence;
    for (let i = 1; i <= 5; i++) await p.outgoingEnqueueCombi([{ clientId: 'slow' }, { clientId: 'fast' }], publish(`t/${i}`, i));
    expect(p.queuedCount('slow')).toBe(3);
    expect((await collect<StoredPacket>(p.outgoingStream({ id: 'slow' }))).map((q) => q.topic)).toEqual(['t/1', 't/2', 't/3']);
    expect(dropped).toEqual([['slow', 't/4'], ['fast', 't/4'], ['slow', 't/5'], ['fast', 't/5']]);

    // Room again once a message is acknowledged; the limit survives a restart (it counts what is on disk).
    await p.outgoingUpdate({ id: 'slow' }, { ...publish('t/1', 1), messageId: 1 });
    await p.outgoingClearMessageId({ id: 'slow' }, { cmd: 'puback', messageId: 1 });
    await p.outgoingEnqueueCombi([{ clientId: 'slow' }], publish('t/6', 6));
    store = await reopen(store, dir, { maxQueuedMessages: 3, onQueueFull: (clientId, topic) => dropped.push([clientId, topic]) });
    await store.persistence.outgoingEnqueueCombi([{ clientId: 'slow' }], publish('t/7', 7));
    expect((await collect<StoredPacket>(store.persistence.outgoingStream({ id: 'slow' }))).map((q) => q.topic)).toEqual(['t/2', 't/3', 't/6']);
    expect(dropped.at(-1)).toEqual(['slow', 't/7']);
  });

  test('a refused message of a live session still passes its delivery updates without being stored', async () => {
    const dropped: string[] = [];
    const store = await open(freshDir(), { maxQueuedMessages: 1, onQueueFull: (_c, topic) => dropped.push(topic) });
    const p = store.persistence;
    await p.setup({ id: 'node-a.1', clients: { live: {} } });
    const client = { id: 'live' };
    await p.outgoingEnqueueCombi([{ clientId: 'live' }, { clientId: 'offline' }], publish('kept', 1, 2));
    await p.outgoingEnqueueCombi([{ clientId: 'live' }, { clientId: 'offline' }], publish('refused', 2, 2));
    expect(dropped).toEqual(['refused', 'refused']);
    // aedes' delivery path for the refused packet: messageId assignment, PUBREC -> PUBREL, PUBCOMP.
    await p.outgoingUpdate(client, { ...publish('refused', 2, 2), messageId: 5 });
    await p.outgoingUpdate(client, { cmd: 'pubrel', messageId: 5 });
    expect(await p.outgoingClearMessageId(client, { cmd: 'pubcomp', messageId: 5 })).toBeUndefined();
    expect((await collect<StoredPacket>(p.outgoingStream(client))).map((q) => q.topic)).toEqual(['kept']);
    // Updates for packets that were never offered still fail as aedes expects.
    await expect(p.outgoingUpdate(client, { ...publish('other', 3), messageId: 6 })).rejects.toThrow('no such packet');
    await expect(p.outgoingUpdate(client, { cmd: 'pubrel', messageId: 5 })).rejects.toThrow('no such packet');
    // Refusals for sessions that are not connected are not remembered (nothing would ever consume them).
    await expect(p.outgoingUpdate({ id: 'offline' }, { ...publish('refused', 2, 2), messageId: 5 })).rejects.toThrow('no such packet');
  });

  test('over maxSizeMb new queued messages are refused like a full queue', async () => {
    const dropped: string[] = [];
    const store = await open(freshDir(), { maxSizeMb: 0, onQueueFull: (_c, topic) => dropped.push(topic) });
    await store.persistence.outgoingEnqueueCombi([{ clientId: 'c' }], publish('t', 1));
    expect(store.persistence.queuedCount('c')).toBe(0);
    expect(dropped).toEqual(['t']);
  });
});

describe('store areas', () => {
  test('get/put/del/range by prefix, in key order, with limit and reverse', async () => {
    const store = await open(freshDir());
    const area = store.area('links');
    await area.batch([
      { type: 'put', key: 'q/eu/0002', value: Buffer.from('b') },
      { type: 'put', key: 'q/eu/0001', value: Buffer.from('a') },
      { type: 'put', key: 'q/eu/0003', value: Buffer.from('c') },
      { type: 'put', key: 'q/us/0001', value: Buffer.from('u') },
      { type: 'put', key: 'state', value: Buffer.from('s') },
    ]);
    expect((await area.get('q/eu/0001'))?.toString()).toBe('a');
    expect(await area.get('missing')).toBeUndefined();
    const keys = async (prefix: string, opts?: { limit?: number; reverse?: boolean }): Promise<string[]> =>
      (await area.range(prefix, opts)).map(([key]) => key);
    expect(await keys('q/eu/')).toEqual(['q/eu/0001', 'q/eu/0002', 'q/eu/0003']);
    expect(await keys('q/eu/', { limit: 2 })).toEqual(['q/eu/0001', 'q/eu/0002']);
    expect(await keys('q/eu/', { reverse: true, limit: 2 })).toEqual(['q/eu/0003', 'q/eu/0002']);
    expect(await keys('')).toEqual(['q/eu/0001', 'q/eu/0002', 'q/eu/0003', 'q/us/0001', 'state']);
    await area.del('q/eu/0002');
    expect(await keys('q/eu/')).toEqual(['q/eu/0001', 'q/eu/0003']);
  });

  test('areas are separate namespaces and do not touch the aedes state', async () => {
    const store = await open(freshDir());
    await store.area('a').put('k', Buffer.from('in a'));
    await store.area('ab').put('k', Buffer.from('in ab'));
    expect((await store.area('a').range('')).map(([k, v]) => [k, v.toString()])).toEqual([['k', 'in a']]);
    expect(await store.persistence.countOffline()).toEqual({ subsCount: 0, clientsCount: 0 });
    expect(() => store.area('')).toThrow('invalid store area name');
  });

  test('reads see writes still waiting in the group-commit window', async () => {
    const store = await open(freshDir(), { commitDelayMs: 200 });
    const area = store.area('dedup');
    await area.put('x/1', Buffer.from('committed'));
    const pendingPut = area.put('x/2', Buffer.from('pending'));
    const pendingDel = area.del('x/1');
    expect((await area.get('x/2'))?.toString()).toBe('pending');
    expect(await area.get('x/1')).toBeUndefined();
    expect((await area.range('x/')).map(([k]) => k)).toEqual(['x/2']);
    await Promise.all([pendingPut, pendingDel]);
    expect((await area.range('x/')).map(([k]) => k)).toEqual(['x/2']);
  });

  test('area data survives a reopen; oversized keys are refused', async () => {
    const dir = freshDir();
    let store = await open(dir);
    await store.area('routes').put('peer/eu-1', Buffer.from([1, 2, 3]));
    store = await reopen(store, dir);
    expect([...((await store.area('routes').get('peer/eu-1')) ?? [])]).toEqual([1, 2, 3]);
    await expect(store.area('routes').put('k'.repeat(3000), Buffer.from('v'))).rejects.toThrow('store key too long');
  });
});

describe('directory lock', () => {
  test('a second open of the same directory in this process fails, naming the directory', async () => {
    const dir = freshDir();
    await open(dir);
    await expect(open(dir)).rejects.toThrow(`store directory ${dir} is already open in this process`);
  });

  test('a directory locked by another live process fails to open, naming the directory and the pid', async () => {
    const dir = freshDir();
    const store = await open(dir);
    await store.close();
    const stat = readFileSync(`/proc/${process.ppid}/stat`, 'utf8');
    const startTicks = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    writeFileSync(join(dir, 'store.lock'), JSON.stringify({ pid: process.ppid, startTicks, bootId, host: hostname() }));
    await expect(open(dir)).rejects.toThrow(`store directory ${dir} is locked by live process ${process.ppid}`);
  });

  test('a stale lock left by a dead process (kill -9) is taken over', async () => {
    const dir = freshDir();
    const store = await open(dir);
    await store.close();
    writeFileSync(join(dir, 'store.lock'), JSON.stringify({ pid: 2 ** 22 + 12345, startTicks: '1', bootId: null, host: hostname() }));
    const reopened = await open(dir);
    expect(reopened.incarnation).toBe(2);
  });
});
