import type { AedesPublishPacket, Client } from 'aedes';
import { pickInTurn, sharedSubscriptionOf, type SharedMessage } from '../../../src/mqtt/shared-subscriptions.js';
import { attachShared, FakeClient, settle } from './shared-fakes.js';

const message = (topic: string, qos: 0 | 1 | 2 = 1): SharedMessage => ({ topic, payload: Buffer.from('x'), qos });

function publish(shared: ReturnType<typeof attachShared>['shared'], topic: string, qos: 0 | 1 | 2 = 1): Promise<void> {
  const packet = { cmd: 'publish', topic, payload: Buffer.from('x'), qos, retain: false, dup: false } as AedesPublishPacket;
  return new Promise((resolve, reject) => shared.published(packet, null as unknown as Client, (err) => (err ? reject(err) : resolve())));
}

describe('pickInTurn', () => {
  test('goes round from the turn, wrapping, and skips what is not usable', () => {
    const items = ['a', 'b', 'c', 'd'];
    expect(pickInTurn(items, 0, () => true)).toEqual({ item: 'a', index: 0 });
    expect(pickInTurn(items, 5, () => true)).toEqual({ item: 'b', index: 1 });
    expect(pickInTurn(items, 2, (x) => x !== 'c')).toEqual({ item: 'd', index: 3 });
    expect(pickInTurn(items, 3, (x) => x === 'b')).toEqual({ item: 'b', index: 1 });
    expect(pickInTurn(items, 0, () => false)).toBeUndefined();
    expect(pickInTurn([], 0, () => true)).toBeUndefined();
  });
});

describe('sharedSubscriptionOf', () => {
  test('splits well-formed shared subscriptions and leaves ordinary and malformed ones alone', () => {
    expect(sharedSubscriptionOf('$share/g/a/+')).toEqual({ group: 'g', filter: 'a/+' });
    expect(sharedSubscriptionOf('$share/g/acme/#')).toEqual({ group: 'g', filter: 'acme/#' });
    expect(sharedSubscriptionOf('a/+')).toBeNull();
    expect(sharedSubscriptionOf('$share/g')).toBeNull();
    expect(sharedSubscriptionOf('$share/g+/a')).toBeNull();
    expect(sharedSubscriptionOf('$SYS/#')).toBeNull();
  });
});

describe('SharedSubscriptions on one node', () => {
  test('each message goes to exactly one member, round-robin', async () => {
    const { aedes, shared } = attachShared();
    const members = ['m1', 'm2', 'm3'].map((id) => new FakeClient(id));
    for (const m of members) aedes.clientSubscribes(m, '$share/workers/jobs/+', 1);
    for (let i = 0; i < 300; i++) await publish(shared, `jobs/${i}`);
    const all = members.flatMap((m) => m.got.map((g) => g.topic));
    expect(all).toHaveLength(300);
    expect(new Set(all).size).toBe(300);
    expect(members.map((m) => m.got.length)).toEqual([100, 100, 100]);
  });

  test('a shared subscription never becomes a literal aedes listener; ordinary ones still do', () => {
    const { aedes } = attachShared();
    const client = new FakeClient('c');
    aedes.clientSubscribes(client, '$share/g/a/+', 1);
    aedes.clientSubscribes(client, 'a/+', 1);
    aedes.clientSubscribes(client, '$share/bad+group/a', 1);
    expect([...aedes.literal].sort()).toEqual(['$share/bad+group/a', 'a/+']);
  });

  test('delivers at min(message QoS, granted QoS)', async () => {
    const { aedes, shared } = attachShared();
    const low = new FakeClient('low');
    aedes.clientSubscribes(low, '$share/g/t', 0);
    await publish(shared, 't', 2);
    const high = new FakeClient('high');
    aedes.clientUnsubscribes(low, '$share/g/t');
    aedes.clientSubscribes(high, '$share/g/t', 2);
    await publish(shared, 't', 1);
    expect(low.got.map((g) => g.qos)).toEqual([0]);
    expect(high.got.map((g) => g.qos)).toEqual([1]);
  });

  test('groups are per (group, filter): two groups on one filter each get every message once, other filters nothing', async () => {
    const { aedes, shared } = attachShared();
    const g1 = [new FakeClient('a1'), new FakeClient('a2')];
    const g2 = [new FakeClient('b1'), new FakeClient('b2'), new FakeClient('b3')];
    const other = new FakeClient('other');
    for (const c of g1) aedes.clientSubscribes(c, '$share/g1/jobs/#', 1);
    for (const c of g2) aedes.clientSubscribes(c, '$share/g2/jobs/#', 1);
    aedes.clientSubscribes(other, '$share/g1/jobs/x/+', 1);
    for (let i = 0; i < 60; i++) await publish(shared, `jobs/${i}`);
    expect(g1.reduce((n, c) => n + c.got.length, 0)).toBe(60);
    expect(g2.reduce((n, c) => n + c.got.length, 0)).toBe(60);
    expect(other.got).toEqual([]);
    await publish(shared, '$SYS/jobs/1');
    expect(g1.reduce((n, c) => n + c.got.length, 0)).toBe(60);
  });

  test('members that leave, close or re-subscribe stay counted once', async () => {
    const { aedes, shared } = attachShared();
    const [a, b, c] = ['a', 'b', 'c'].map((id) => new FakeClient(id));
    for (const m of [a, b, c]) aedes.clientSubscribes(m, '$share/g/t', 1);
    aedes.clientSubscribes(a, '$share/g/t', 2); // QoS change: aedes unsubscribes the old function first
    expect(shared.group('g', 't')?.live).toHaveLength(3);
    aedes.clientCloses(b);
    aedes.clientUnsubscribes(c, '$share/g/t');
    for (let i = 0; i < 10; i++) await publish(shared, 't');
    expect([a.got.length, b.got.length, c.got.length]).toEqual([10, 0, 0]);
    aedes.clientCloses(a);
    expect(shared.size).toBe(0);
    await publish(shared, 't');
    expect(a.got).toHaveLength(10);
  });

  test('a closing member is skipped even before aedes unsubscribed it', async () => {
    const { aedes, shared } = attachShared();
    const [a, b] = ['a', 'b'].map((id) => new FakeClient(id));
    aedes.clientSubscribes(a, '$share/g/t', 1);
    aedes.clientSubscribes(b, '$share/g/t', 1);
    a.closed = true;
    for (let i = 0; i < 4; i++) await publish(shared, 't');
    expect([a.got.length, b.got.length]).toEqual([0, 4]);
  });

  test('a persistent member gets the copy stored before it is handed over, and in counter order', async () => {
    const { aedes, store, shared } = attachShared();
    const member = new FakeClient('p', false);
    aedes.clientSubscribes(member, '$share/g/t', 2);
    store.hold = true;
    const first = shared.deliver('g', 't', message('t', 1));
    const second = shared.deliver('g', 't', message('t', 0)); // QoS 0 needs no store write but must wait its turn
    await settle();
    expect(member.got).toEqual([]);
    store.release();
    await Promise.all([first, second]);
    expect(store.queued.map((q) => [q.clientId, q.packet.qos])).toEqual([['p', 1]]);
    expect(member.got.map((g) => g.qos)).toEqual([1, 0]);
    const counters = member.got.map((g) => g.counter);
    expect(counters[0]).toBeLessThan(counters[1]);
    expect(store.queued[0].packet.brokerCounter).toBe(counters[0]);
    expect(member.got[0].brokerId).toBe('node-a.1/share');
  });

  test('with no connected member, an offline persistent session gets it queued (QoS > 0), in turn', async () => {
    const { store, shared } = attachShared();
    store.store('s1', '$share/g/t', 1);
    store.store('s2', '$share/g/t', 2);
    store.store('s3', '$share/g/t', 0); // QoS 0 sessions cannot queue
    expect(await shared.deliver('g', 't', message('t', 2))).toBe('queued');
    expect(await shared.deliver('g', 't', message('t', 2))).toBe('queued');
    expect(await shared.deliver('g', 't', message('t', 2))).toBe('queued');
    expect(await shared.deliver('g', 't', message('t', 0))).toBe('dropped');
    expect(store.queued.map((q) => `${q.clientId}:${q.packet.qos}`)).toEqual(['s1:1', 's2:2', 's1:1']);
    store.unstore('s1', '$share/g/t');
    store.unstore('s2', '$share/g/t');
    expect(shared.size).toBe(0);
    expect(await shared.deliver('g', 't', message('t', 1))).toBe('dropped');
  });

  test('stored sessions found at start count as members; a connected member is preferred over them', async () => {
    const { FakeStore, FakeAedes } = await import('./shared-fakes.js');
    const store = new FakeStore();
    store.subscriptions.set('offline', new Map([['$share/g/t', 1]]));
    const { aedes, shared } = attachShared(new FakeAedes(), store);
    expect(shared.group('g', 't')?.stored.has('offline')).toBe(true);
    const online = new FakeClient('online');
    aedes.clientSubscribes(online, '$share/g/t', 1);
    await publish(shared, 't');
    expect(online.got).toHaveLength(1);
    expect(store.queued).toEqual([]);
  });

  test('counts outcomes in the node registry', async () => {
    const { aedes, shared, registry } = attachShared();
    aedes.clientSubscribes(new FakeClient('m'), '$share/g/t', 1);
    await publish(shared, 't');
    await shared.deliver('g', 'nothing', message('nothing'));
    const metric = await registry.getSingleMetricAsString('meridian_shared_subscription_messages_total');
    expect(metric).toContain('outcome="delivered"} 1');
    expect(metric).toContain('outcome="dropped"} 1');
  });
});
