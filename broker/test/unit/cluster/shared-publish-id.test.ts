/**
 * Shared-subscription copies with a publish identity (a linked message's, or a persistent session's QoS 2 message's):
 * the owner node is chosen by the identity, and the node records the group with the member's queue entry, so a
 * republish after a crash reaches no member of the group again (link README, "The sidecar"; store README).
 */
import { createLogger } from '../../../src/log/logger.js';
import type { ForwardedMessage } from '../../../src/cluster/forward-codec.js';
import { ClusterRoutes, ClusterSharedSubscriptions, dispatchToGroupOwners, ShareOwners } from '../../../src/cluster/shared-subscriptions.js';
import type { Aedes } from 'aedes';
import { SharedSubscriptions, type SharedMessage } from '../../../src/mqtt/shared-subscriptions.js';
import type { StoredPacket } from '../../../src/store/index.js';
import type { DurablePersistence } from '../../../src/store/persistence.js';
import { storeFixture, collect } from '../store/fixture.js';
import { FakeAedes, FakeClient } from '../mqtt/shared-fakes.js';

const fx = storeFixture('meridian-shared-publish-id-', { maxSizeMb: 1024, maxQueuedMessages: 1000 });

const message = (publishId: string | undefined, n = 1): SharedMessage => ({
  topic: 'jobs/1', payload: Buffer.from(`m${n}`), qos: 2, ...(publishId === undefined ? {} : { publishId }),
});

/** Shared subscriptions of a fake aedes over a real store (the publish identities are the store's). */
function attachShared(aedes: FakeAedes, store: DurablePersistence): { aedes: FakeAedes; shared: SharedSubscriptions } {
  return { aedes, shared: SharedSubscriptions.attach(aedes as unknown as Aedes, store, { logger: createLogger('silent') }) };
}

function owners(...ids: string[]): ShareOwners {
  const share = new ShareOwners('g', 'jobs/+');
  share.owners.push(...ids);
  return share;
}

describe('ShareOwners.next with a publish identity', () => {
  test('the same owner for the same identity on every call and in a new instance (a restarted sender)', () => {
    const share = owners('a', 'b', 'c');
    const first = Array.from({ length: 50 }, (_, i) => share.next('x', false, undefined, `link:eu/eu/agent/e:${i}`));
    const again = Array.from({ length: 50 }, (_, i) => owners('c', 'a', 'b').next('x', false, undefined, `link:eu/eu/agent/e:${i}`));
    expect(again).toEqual(first);
    // Spread over the owners (rendezvous hash), not all on one.
    for (const owner of ['a', 'b', 'c']) expect(first.filter((o) => o === owner).length).toBeGreaterThan(5);
  });

  test('excluded owners and this node without a connected member are passed over as in turn', () => {
    const ids = Array.from({ length: 40 }, (_, i) => `id:${i}`);
    expect(ids.map((id) => owners('a', 'b', 'c').next('x', true, new Set(['b']), id))).not.toContain('b');
    expect(ids.map((id) => owners('a', 'b').next('a', false, undefined, id))).toEqual(ids.map(() => 'b'));
    expect(owners('a').next('a', false, undefined, 'id:1')).toBe('a');
    expect(owners('a', 'b').next('x', true, new Set(['a', 'b']), 'id:1')).toBeUndefined();
  });

  test('a sidecar sends a republished copy to the node it chose the first time', async () => {
    const routes = new ClusterRoutes();
    for (const node of ['core', 'replicant']) routes.add('jobs/+', node, '$share/g');
    const base: ForwardedMessage = { topic: 'jobs/1', payload: Buffer.from('p'), qos: 1, retain: false, publisherClientId: '', timestamp: 1 };
    const chosen = async (publishId: string): Promise<string[]> => {
      const sent: string[] = [];
      const matched = routes.shares.match('jobs/1') ?? [];
      await dispatchToGroupOwners(matched, { ...base, publishId }, 'agent', async (node) => { sent.push(node); return true; });
      return sent;
    };
    for (let i = 0; i < 20; i++) expect(await chosen(`link:x/y/e:${i}`)).toEqual(await chosen(`link:x/y/e:${i}`));
  });
});

describe('a group gets a message with a publish identity once per node, across a restart', () => {
  async function nodeWithGroup(dir: string) {
    const store = await fx.open(dir);
    const { aedes, shared } = attachShared(new FakeAedes(), store.persistence);
    const members = [new FakeClient('m1', false), new FakeClient('m2', false)];
    for (const member of members) aedes.clientSubscribes(member, '$share/g/jobs/+', 2);
    return { store, shared, members };
  }
  const queued = async (node: Awaited<ReturnType<typeof nodeWithGroup>>, clientId: string): Promise<string[]> =>
    (await collect<StoredPacket>(node.store.persistence.outgoingStream({ id: clientId }))).map((p) => String(p.payload));

  test('delivered to one member, recorded with its queue entry; after a reopen the republish reaches no member', async () => {
    const dir = fx.freshDir();
    let node = await nodeWithGroup(dir);
    expect(await node.shared.deliver('g', 'jobs/+', message('link:eu/eu-agent/e1:7', 7))).toBe('delivered');
    expect(node.members.map((m) => m.got.length)).toEqual([1, 0]);
    expect(await node.shared.deliver('g', 'jobs/+', message('link:eu/eu-agent/e1:7', 7))).toBe('repeat');
    expect(node.members.map((m) => m.got.length)).toEqual([1, 0]);

    await node.store.close();
    node = await nodeWithGroup(dir);
    expect(await node.shared.deliver('g', 'jobs/+', message('link:eu/eu-agent/e1:7', 7))).toBe('repeat');
    expect(node.members.map((m) => m.got.length)).toEqual([0, 0]);
    expect([...await queued(node, 'm1'), ...await queued(node, 'm2')]).toEqual(['m7']);
    // Another identity, and a message without one, go through as before.
    expect(await node.shared.deliver('g', 'jobs/+', message('link:eu/eu-agent/e1:8', 8))).toBe('delivered');
    expect(await node.shared.deliver('g', 'jobs/+', message(undefined, 9))).toBe('delivered');
    expect(await node.shared.deliver('g', 'jobs/+', message(undefined, 9))).toBe('delivered');
    expect(node.members.map((m) => m.got.length)).toEqual([2, 1]);
  });

  test('a copy to a clean-session member is remembered in memory: the republish of a running node reaches no member', async () => {
    const store = await fx.open(fx.freshDir());
    const { aedes, shared } = attachShared(new FakeAedes(), store.persistence);
    const members = [new FakeClient('clean-1'), new FakeClient('clean-2')];
    for (const member of members) aedes.clientSubscribes(member, '$share/g/jobs/+', 1);
    expect(await shared.deliver('g', 'jobs/+', message('link:eu/a/e:1', 1))).toBe('delivered');
    expect(await shared.deliver('g', 'jobs/+', message('link:eu/a/e:1', 1))).toBe('repeat');
    expect(await shared.deliver('g', 'jobs/+', message('link:eu/a/e:2', 2))).toBe('delivered');
    expect(members.map((m) => m.got.length)).toEqual([1, 1]);
  });

  test('an offline member\'s queued copy is recorded too; the member keeps its ordinary subscription\'s copy', async () => {
    const dir = fx.freshDir();
    const node = await nodeWithGroup(dir);
    // Only offline persistent sessions hold the group now.
    const { shared } = attachShared(new FakeAedes(), node.store.persistence);
    await node.store.persistence.addSubscriptions({ id: 'off' }, [{ topic: '$share/g/jobs/+', qos: 1 }]);
    await node.store.persistence.outgoingEnqueueCombi([{ clientId: 'off' }], { cmd: 'publish', topic: 'jobs/1', payload: Buffer.from('m5'), qos: 1, retain: false, dup: false, brokerId: 'node-b.1', brokerCounter: 1, publishId: 'id:5' });
    expect(await shared.deliver('g', 'jobs/+', { ...message('id:5', 5), qos: 1 })).toBe('queued');
    expect(await shared.deliver('g', 'jobs/+', { ...message('id:5', 5), qos: 1 })).toBe('repeat');
    expect(await collect<StoredPacket>(node.store.persistence.outgoingStream({ id: 'off' }))).toHaveLength(2);
  });
});

describe('ClusterSharedSubscriptions with a publish identity', () => {
  test('a repeat is not redirected to another owner even when no member here is connected', async () => {
    const store = await fx.open(fx.freshDir());
    const local = attachShared(new FakeAedes(), store.persistence);
    const member = new FakeClient('m', false);
    local.aedes.clientSubscribes(member, '$share/g/jobs/+', 2);
    const routes = new ClusterRoutes();
    for (const node of ['a', 'b']) routes.add('jobs/+', node, '$share/g');
    const sent: string[] = [];
    const shares = new ClusterSharedSubscriptions('b', routes.shares, local.shared, async (node) => { sent.push(node); return true; }, createLogger('silent'));
    const copy: ForwardedMessage = { topic: 'jobs/1', payload: Buffer.from('p'), qos: 2, retain: false, publisherClientId: '', timestamp: 1, shareGroup: 'g', shareFilter: 'jobs/+', publishId: 'id:1' };
    await shares.receive(copy, 'agent');
    expect(member.got).toHaveLength(1);
    local.aedes.clientCloses(member);
    await shares.receive(copy, 'agent');
    expect(sent).toEqual([]);
    expect(member.got).toHaveLength(1);
  });

  test('a publishing node whose own member had the message sends the republish nowhere, members back or not', async () => {
    const dir = fx.freshDir();
    let store = await fx.open(dir);
    let local = attachShared(new FakeAedes(), store.persistence);
    const member = new FakeClient('m', false);
    local.aedes.clientSubscribes(member, '$share/g/jobs/+', 2);
    const routes = new ClusterRoutes();
    for (const node of ['a', 'b']) routes.add('jobs/+', node, '$share/g');
    const sent: string[] = [];
    const send = async (node: string): Promise<boolean> => { sent.push(node); return true; };
    const copy: ForwardedMessage = { topic: 'jobs/1', payload: Buffer.from('p'), qos: 2, retain: false, publisherClientId: '', timestamp: 1 };
    // The first identity for which the hash picks this node ('a') while its member is connected.
    const publishId = Array.from({ length: 50 }, (_, i) => `id:${i}`).find((id) => owners('a', 'b').next('a', true, undefined, id) === 'a') as string;
    let shares = new ClusterSharedSubscriptions('a', routes.shares, local.shared, send, createLogger('silent'));
    await Promise.all(shares.dispatch(routes.shares.match('jobs/1') ?? [], { ...copy, publishId }));
    expect(member.got).toHaveLength(1);
    // The node restarts; its member has not reconnected yet, so the hash alone would pass it over for 'b'.
    await store.close();
    store = await fx.open(dir);
    local = attachShared(new FakeAedes(), store.persistence);
    shares = new ClusterSharedSubscriptions('a', routes.shares, local.shared, send, createLogger('silent'));
    await Promise.all(shares.dispatch(routes.shares.match('jobs/1') ?? [], { ...copy, publishId }));
    expect(sent).toEqual([]);
  });
});
