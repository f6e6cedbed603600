import type { AdminServer } from '../admin/server.js';
import type { ClusterNode } from './cluster.js';

/** `/api/v1/cluster`: nodes, roles, incarnations, state, route counts and sync lag. */
export function registerClusterApi(cluster: ClusterNode, admin: AdminServer): void {
  admin.route('GET', '/api/v1/cluster', () => ({ status: 200, body: describeCluster(cluster) }));
}

function describeCluster(cluster: ClusterNode): object {
  const lanes = new Map(cluster.sync.lanes().map((lane) => [lane.actor, lane]));
  const links = new Map(cluster.transport.stats().peers.map((peer) => [peer.nodeId, peer]));
  const table = cluster.routes.stats();
  const self = lanes.get(cluster.nodeId);
  const nodes = [
    {
      nodeId: cluster.nodeId, self: true, role: cluster.role, address: cluster.selfAddress, state: 'up',
      incarnation: self?.incarnation, routes: self?.routes ?? 0, laneVersion: self?.version,
    },
    ...cluster.membership.list().map((member) => {
      const lane = lanes.get(member.nodeId);
      const link = links.get(member.nodeId);
      return {
        nodeId: member.nodeId, self: false, role: member.role, address: member.address,
        state: member.connected ? 'connected' : 'disconnected', since: new Date(member.since).toISOString(),
        incarnation: member.incarnation, routes: lane?.routes ?? 0, laneVersion: lane?.version,
        lastHeardMsAgo: lane && Number.isFinite(lane.lastHeardAt) ? Math.round(performance.now() - lane.lastHeardAt) : undefined,
        link: link && { rttMs: link.rttMs, unackedMessages: link.unackedMessages, queuedMessages: link.queuedMessages, resends: link.resends },
      };
    }),
  ];
  return {
    clusterName: cluster.clusterName,
    nodeId: cluster.nodeId,
    role: cluster.role,
    upstreamCore: cluster.upstreamCore,
    // Whether the regional table was complete when the node opened to clients (false: the bounded wait gave up).
    table: { ready: cluster.readiness.isReady, complete: cluster.readiness.complete, ...(cluster.readiness.isReady ? {} : { missing: cluster.readiness.gaps() }) },
    routes: table.routes,
    owners: table.owners,
    nodes,
    lanes: [...lanes.values()].map((lane) => ({ actor: lane.actor, incarnation: lane.incarnation, version: lane.version, routes: lane.routes, heldOver: lane.heldOver })),
    sync: { peers: cluster.sync.peers(), stats: cluster.sync.stats() },
  };
}
