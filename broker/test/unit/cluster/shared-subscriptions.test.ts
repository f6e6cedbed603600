import { createLogger } from '../../../src/log/logger.js';
import type { ForwardedMessage } from '../../../src/cluster/forward-codec.js';
import { ClusterRoutes, ClusterSharedSubscriptions, MAX_REDIRECTS, SharedRouteIndex, ShareOwners, shareGroupOfRouteId } from '../../../src/cluster/shared-subscriptions.js';
import { attachShared, FakeClient } from '../mqtt/shared-fakes.js';

const base: ForwardedMessage = { topic: 'jobs/1', payload: Buffer.from('p'), qos: 1, retain: false, publisherClientId: 'pub', timestamp: 1 };

function owners(...ids: string[]): ShareOwners {
  const share = new ShareOwners('g', 'jobs/+');
  share.owners.push(...ids);
  return share;
}

describe('ShareOwners.next', () => {
  test('takes the owners in turn', () => {
    const share = owners('a', 'b', 'c');
    expect(Array.from({ length: 7 }, () => share.next('a', true))).toEqual(['a', 'b', 'c', 'a', 'b', 'c', 'a']);
  });

  test('passes over this node while it has no connected member, unless it is the only choice', () => {
    const share = owners('a', 'b', 'c');
    expect(Array.from({ length: 4 }, () => share.next('a', false))).toEqual(['b', 'c', 'b', 'c']);
    expect(owners('a').next('a', false)).toBe('a');
    expect(owners('a', 'b').next('a', false, new Set(['b']))).toBe('a');
  });

  test('never returns an excluded owner', () => {
    const share = owners('a', 'b', 'c');
    const excluded = new Set(['b']);
    expect(Array.from({ length: 4 }, () => share.next('x', true, excluded))).toEqual(['a', 'c', 'a', 'c']);
    expect(share.next('x', true, new Set(['a', 'b', 'c']))).toBeUndefined();
  });
});

describe('SharedRouteIndex and ClusterRoutes', () => {
  test('shared routes go to the index, the others to the route table; adds and deletes are idempotent', () => {
    const routes = new ClusterRoutes();
    expect(routes.add('jobs/+', 'n1', '')).toBe(true);
    expect(routes.add('jobs/+', 'n1', '$share/g')).toBe(true);
    expect(routes.add('jobs/+', 'n1', '$share/g')).toBe(false);
    expect(routes.add('jobs/+', 'n2', '$share/g')).toBe(true);
    expect(routes.add('jobs/#', 'n3', '$share/h')).toBe(true);
    expect(routes.table.size).toBe(1);
    expect(routes.shares.size).toBe(3);
    expect(routes.stats()).toEqual({ routes: 4, filters: 3, owners: 3 });
    expect(routes.table.match('jobs/1')).toEqual(new Set(['n1']));
    const matched = routes.shares.match('jobs/1')?.map((s) => `${s.group} ${s.filter} ${s.owners.join(',')}`).sort();
    expect(matched).toEqual(['g jobs/+ n1,n2', 'h jobs/# n3']);
    expect(routes.shares.match('other')).toBeNull();
    expect(routes.delete('jobs/+', 'n2', '$share/g')).toBe(true);
    expect(routes.delete('jobs/+', 'n2', '$share/g')).toBe(false);
    expect(routes.delete('jobs/#', 'n3', '$share/h')).toBe(true);
    expect(routes.stats()).toEqual({ routes: 2, filters: 2, owners: 1 }); // jobs/+ has both kinds of route
    expect(routes.delete('jobs/+', 'n1', '$share/g')).toBe(true);
    expect(routes.shares.match('jobs/1')).toBeNull();
    expect(routes.shares.filters).toBe(0);
  });

  test('an empty index matches nothing, and $-topics follow the wildcard rule', () => {
    const index = new SharedRouteIndex();
    expect(index.match('a')).toBeNull();
    index.add('#', 'n1', 'g');
    expect(index.match('$SYS/x')).toBeNull();
    expect(index.match('a/b')).toHaveLength(1);
  });

  test('topics are matched whatever the first level of the filters (literal, +, #)', () => {
    const index = new SharedRouteIndex();
    index.add('jobs/+', 'n1', 'g');
    expect(index.match('other/1')).toBeNull();
    expect(index.match('jobs')).toBeNull();
    expect(index.match('jobs/1')).toHaveLength(1);
    index.add('+/alerts', 'n1', 'g');
    expect(index.match('other/alerts')).toHaveLength(1);
    index.delete('+/alerts', 'n1', 'g');
    expect(index.match('other/alerts')).toBeNull();
    index.add('#', 'n2', 'h');
    expect(index.match('anything/at/all')).toHaveLength(1);
    expect(index.match('jobs/1')).toHaveLength(2);
    index.delete('#', 'n2', 'h');
    index.delete('jobs/+', 'n1', 'g');
    index.add('jobs', 'n1', 'g');
    expect(index.match('jobs')).toHaveLength(1);
    expect(index.match('jobs/1')).toBeNull();
  });

  test('route ids', () => {
    expect(shareGroupOfRouteId('$share/workers')).toBe('workers');
    expect(shareGroupOfRouteId('')).toBeUndefined();
    expect(shareGroupOfRouteId('link:eu')).toBeUndefined();
  });
});

interface Sent {
  node: string;
  message: ForwardedMessage;
}

function clusterNode(self: string, options: { gone?: Set<string> } = {}) {
  const routes = new ClusterRoutes();
  const local = attachShared();
  const sent: Sent[] = [];
  const send = async (node: string, message: ForwardedMessage): Promise<boolean> => {
    if (options.gone?.has(node)) return false;
    sent.push({ node, message });
    return true;
  };
  const shares = new ClusterSharedSubscriptions(self, routes.shares, local.shared, send, createLogger('silent'));
  return { routes, local, sent, shares };
}

async function publish(node: ReturnType<typeof clusterNode>, message: ForwardedMessage): Promise<void> {
  const matched = node.shares.match(message.topic);
  if (matched) await Promise.all(node.shares.dispatch(matched, message));
}

describe('ClusterSharedSubscriptions', () => {
  test('each message goes to one node per group: here to a member, elsewhere one copy marked with group and filter', async () => {
    const node = clusterNode('a');
    const member = new FakeClient('m');
    node.local.aedes.clientSubscribes(member, '$share/g/jobs/+', 1);
    for (const owner of ['a', 'b', 'c']) node.routes.add('jobs/+', owner, '$share/g');
    node.routes.add('jobs/#', 'c', '$share/h');
    for (let i = 0; i < 300; i++) await publish(node, { ...base, topic: `jobs/${i}` });
    const group = (g: string): Sent[] => node.sent.filter((s) => s.message.shareGroup === g);
    expect(member.got).toHaveLength(100);
    expect(group('g').map((s) => s.node).sort()).toEqual([...Array(100).fill('b'), ...Array(100).fill('c')]);
    expect(group('h')).toHaveLength(300);
    const topicsOfG = [...member.got.map((g) => g.topic), ...group('g').map((s) => s.message.topic)];
    expect(new Set(topicsOfG).size).toBe(300);
    expect(group('g')[0].message).toMatchObject({ shareGroup: 'g', shareFilter: 'jobs/+', topic: expect.stringMatching(/^jobs\//) });
    expect(group('h')[0].message.shareFilter).toBe('jobs/#');
  });

  test('a node found gone is skipped for the next owner; with nobody left the copy is dropped', async () => {
    const gone = new Set(['b']);
    const node = clusterNode('a', { gone });
    for (const owner of ['b', 'c']) node.routes.add('jobs/+', owner, '$share/g');
    for (let i = 0; i < 4; i++) await publish(node, base);
    expect(node.sent.map((s) => s.node)).toEqual(['c', 'c', 'c', 'c']);
    gone.add('c');
    await publish(node, base);
    expect(node.sent).toHaveLength(4);
  });

  test('a chosen node with a connected member delivers there', async () => {
    const node = clusterNode('b');
    const member = new FakeClient('m');
    node.local.aedes.clientSubscribes(member, '$share/g/jobs/+', 2);
    node.routes.add('jobs/+', 'a', '$share/g');
    node.routes.add('jobs/+', 'b', '$share/g');
    await node.shares.receive({ ...base, qos: 2, shareGroup: 'g', shareFilter: 'jobs/+' }, 'a');
    expect(member.got.map((g) => g.qos)).toEqual([2]);
    expect(node.sent).toEqual([]);
  });

  test('a chosen node without a connected member passes the copy on, a bounded number of times', async () => {
    const node = clusterNode('b');
    node.local.store.store('offline', '$share/g/jobs/+', 1);
    node.routes.add('jobs/+', 'a', '$share/g');
    node.routes.add('jobs/+', 'b', '$share/g');
    node.routes.add('jobs/+', 'c', '$share/g');
    await node.shares.receive({ ...base, shareGroup: 'g', shareFilter: 'jobs/+' }, 'a');
    await node.shares.receive({ ...base, shareGroup: 'g', shareFilter: 'jobs/+', redirects: MAX_REDIRECTS - 1 }, 'c');
    expect(node.sent.map((s) => s.node)).toEqual(['a', 'c']); // in turn, never itself
    expect(node.sent.map((s) => s.message.redirects)).toEqual([1, MAX_REDIRECTS]);
    expect(node.sent[0].message).toMatchObject({ shareGroup: 'g', shareFilter: 'jobs/+' });
    await node.shares.receive({ ...base, shareGroup: 'g', shareFilter: 'jobs/+', redirects: MAX_REDIRECTS }, 'c');
    expect(node.sent).toHaveLength(2);
    expect(node.local.store.queued.map((q) => q.clientId)).toEqual(['offline']);
  });

  test('a chosen node that is the group\'s only owner queues for its offline member', async () => {
    const node = clusterNode('b');
    node.local.store.store('offline', '$share/g/jobs/+', 2);
    node.routes.add('jobs/+', 'b', '$share/g');
    await node.shares.receive({ ...base, qos: 2, shareGroup: 'g', shareFilter: 'jobs/+' }, 'a');
    expect(node.sent).toEqual([]);
    expect(node.local.store.queued.map((q) => [q.clientId, q.packet.qos])).toEqual([['offline', 2]]);
  });
});
