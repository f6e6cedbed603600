import { decodeForwarded, encodeForwarded, type ForwardedMessage } from '../../../src/cluster/forward-codec.js';
import { isLinkRouteId, linkRouteId, RemoteRoutes } from '../../../src/link/region.js';

const message: ForwardedMessage = {
  topic: 'orders/7/created', payload: Buffer.from('{"id":7}'), qos: 1, retain: false, publisherClientId: 'shop', timestamp: 1763766000123,
};

describe('the linked mark in cluster forwarding', () => {
  test('round-trips, alone and with a share group; an unmarked message encodes as before', () => {
    expect(decodeForwarded(encodeForwarded({ ...message, linked: true }))).toEqual({ ...message, linked: true });
    const shared = { ...message, linked: true, shareGroup: 'g', shareFilter: 'orders/+/created', redirects: 2 };
    expect(decodeForwarded(encodeForwarded(shared))).toEqual(shared);
    const plain = encodeForwarded(message);
    expect(plain[1] & 64).toBe(0);
    expect(decodeForwarded(plain).linked).toBeUndefined();
    expect(encodeForwarded({ ...message, linked: false })).toEqual(plain);
  });

  test('the mark is one flag bit, no extra bytes', () => {
    const marked = encodeForwarded({ ...message, linked: true });
    const plain = encodeForwarded(message);
    expect(marked.length).toBe(plain.length);
    expect(marked[1]).toBe(plain[1] | 64);
  });
});

describe('RemoteRoutes (the remote agents\' routes at a link)', () => {
  test('reports a filter when its first remote route appears and when its last one goes', () => {
    const changes: string[] = [];
    const routes = new RemoteRoutes((op, filter) => changes.push(`${op} ${filter}`));
    expect(routes.add('a/#', 'eu/n1', '')).toBe(true);
    expect(routes.add('a/#', 'eu/n2', '')).toBe(true);
    expect(routes.add('a/#', 'eu/n2', '')).toBe(false);
    expect(routes.add('b/+', 'eu/n1', '')).toBe(true);
    expect(changes).toEqual(['add a/#', 'add b/+']);
    expect(routes.table.match('a/x').size).toBe(2);
    expect(routes.delete('a/#', 'eu/n1', '')).toBe(true);
    expect(routes.delete('a/#', 'eu/n1', '')).toBe(false);
    expect(changes).toEqual(['add a/#', 'add b/+']);
    expect(routes.delete('a/#', 'eu/n2', '')).toBe(true);
    expect(changes).toEqual(['add a/#', 'add b/+', 'delete a/#']);
    expect(routes.table.match('a/x').size).toBe(0);
  });

  test('link route ids are recognised and never collide with subscriptions or share groups', () => {
    expect(linkRouteId('eu')).toBe('$link/eu');
    expect(isLinkRouteId(linkRouteId('eu'))).toBe(true);
    expect(isLinkRouteId('')).toBe(false);
    expect(isLinkRouteId('$share/g')).toBe(false);
  });
});
