import type { Client } from 'aedes';
import { clientsOf, keepaliveSecondsOf, subscriptionsOf } from '../mqtt/aedes-internals.js';
import type { BrokerNode } from './node.js';

const DEFAULT_PAGE = 1000;

/** Health, readiness, metrics and the node's JSON API on the admin endpoint. */
export function registerNodeApi(node: BrokerNode): void {
  const { admin } = node;
  admin.route('GET', '/healthz', () => ({ status: 200, body: 'ok' }));
  admin.route('GET', '/readyz', () => (node.ready
    ? { status: 200, body: 'ready' }
    : { status: 503, body: 'not ready: store, regional route table or listeners not open' }));
  admin.route('GET', '/metrics', async () => ({
    status: 200, body: await node.metrics.registry.metrics(), contentType: node.metrics.registry.contentType,
  }));
  admin.route('GET', '/api/v1/node', () => ({ status: 200, body: describeNode(node) }));
  admin.route('GET', '/api/v1/clients', (query) => ({ status: 200, body: page(listClients(node), query) }));
  admin.route('GET', '/api/v1/subscriptions', (query) => ({ status: 200, body: page(listSubscriptions(node), query) }));
}

function describeNode(node: BrokerNode): object {
  const { config } = node;
  return {
    name: config.node.name,
    clusterName: config.node.clusterName,
    incarnation: node.ready ? node.store.incarnation : undefined,
    ready: node.ready,
    startedAt: node.startedAt.toISOString(),
    uptimeSeconds: Math.round((Date.now() - node.startedAt.getTime()) / 1000),
    listeners: node.listenerAddresses(),
    connections: node.connectionCount,
    version: process.env.npm_package_version ?? '0.1.0',
  };
}

function connectedClients(node: BrokerNode): Client[] {
  if (!node.ready) return [];
  return clientsOf(node.aedes).filter((c) => c.connected);
}

function listClients(node: BrokerNode): object[] {
  return connectedClients(node).map((client) => {
    const identity = node.security.identityOf(client);
    const info = node.connectionInfoOf(client);
    return {
      clientId: client.id,
      username: identity?.username,
      tenant: identity?.tenant,
      listener: info?.listener,
      remoteAddress: info?.remoteAddress,
      cleanSession: client.clean,
      protocolVersion: client.version,
      keepaliveSeconds: keepaliveSecondsOf(client),
      subscriptions: Object.keys(subscriptionsOf(client)).length,
    };
  });
}

function listSubscriptions(node: BrokerNode): object[] {
  return connectedClients(node).flatMap((client) => {
    const identity = node.security.identityOf(client);
    const mountpoint = identity?.mountpoint ?? '';
    const subs = subscriptionsOf(client);
    return Object.entries(subs).map(([filter, sub]) => ({
      clientId: client.id,
      tenant: identity?.tenant,
      filter: unmount(filter, mountpoint),
      internalFilter: filter,
      qos: sub.qos,
    }));
  });
}

function unmount(filter: string, mountpoint: string): string {
  if (mountpoint === '') return filter;
  const share = /^(\$share\/[^/]+\/)(.*)$/.exec(filter);
  if (share) return share[1] + unmount(share[2] as string, mountpoint);
  return filter.startsWith(mountpoint) ? filter.slice(mountpoint.length) : filter;
}

function page(items: object[], query: URLSearchParams): object {
  const limit = clampInt(query.get('limit'), DEFAULT_PAGE, 1, 10000);
  const offset = clampInt(query.get('offset'), 0, 0, Number.MAX_SAFE_INTEGER);
  return { total: items.length, offset, limit, items: items.slice(offset, offset + limit) };
}

function clampInt(raw: string | null, fallback: number, min: number, max: number): number {
  const n = raw === null ? NaN : Number.parseInt(raw, 10);
  return Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : fallback;
}
