import type { Aedes, AedesPublishPacket, Client } from 'aedes';
import type { BrokerConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import type { BrokerMetrics } from '../admin/metrics.js';
import type { AdminServer } from '../admin/server.js';
import type { NodeStore } from '../store/index.js';
import { RouteSync, regionalClusterPolicy, type RouteSyncEvent } from '../routesync/index.js';
import { Channel, ClusterTransport, readClusterSecret, type ConnectedPeer, type Delivery } from './transport/index.js';
import { Discovery } from './discovery.js';
import { Forwarder, type CopyArrival } from './forwarder.js';
import { followNodeSubscriptions, LocalRoutes } from './local-routes.js';
import { ClusterRoutes, ClusterSharedSubscriptions } from './shared-subscriptions.js';
import type { SharedSubscriptions } from '../mqtt/shared-subscriptions.js';
import { Membership, type GossipedMember } from './membership.js';
import { ClusterMetrics } from './metrics.js';
import { RouteSyncDriver } from './route-sync-driver.js';
import { Rpc } from './rpc.js';
import { registerClusterApi } from './api.js';
import { RetainedReplicator } from './retained.js';
import { SessionTakeover, registerTakeoverApi } from './takeover.js';
import { readFileSync } from 'node:fs';
import type { RouteSink } from '../routing/route-table.js';
import { RememberedMembers } from './remembered-members.js';
import { TableReadiness } from './table-readiness.js';
import { CLUSTER_INCARNATION_AREA, clusterIncarnation } from './incarnation.js';

/** A change of the regional route table: a route (filter, owner, route id) appeared or went. */
export type RouteChangeListener = (op: 'add' | 'delete', filter: string, owner: string, routeId: string) => void;

export interface ClusterHost {
  config: BrokerConfig;
  logger: Logger;
  metrics: BrokerMetrics;
  admin: AdminServer;
  store: NodeStore;
  aedes: Aedes;
  /** The node's shared-subscription members; the cluster picks the node, they pick the member. */
  shared: SharedSubscriptions;
}

/**
 * This node's membership in its regional cluster: transport, discovery, route sync along the core/replicant
 * topology, and routed forwarding. See README.md in this directory.
 */
export class ClusterNode {
  readonly membership: Membership;
  readonly metrics: ClusterMetrics;
  readonly localRoutes: LocalRoutes;
  readonly rpc: Rpc;
  readonly driver: RouteSyncDriver;
  readonly forwarder: Forwarder;
  readonly shares: ClusterSharedSubscriptions;
  readonly retained: RetainedReplicator;
  /** Cluster-wide client ids: takeover and session handover between nodes. */
  readonly takeover: SessionTakeover;
  readonly startedAt = Date.now();
  /** For a replicant: the core its routes go to and the merged table comes from. */
  private upstream?: string;
  /** Peers whose route-sync stream this node has opened. */
  private readonly syncPeers = new Set<string>();
  private discovery?: Discovery;
  private readonly logger: Logger;
  private readonly routeWatchers = new Set<RouteChangeListener>();
  /** The addresses discovery found at the join: the table is not complete before each was dialed once. */
  private initialAddresses?: string[];
  /** Whether the regional table is complete (see `tableReady`). */
  readonly readiness: TableReadiness;

  private constructor(
    private readonly host: ClusterHost,
    readonly transport: ClusterTransport,
    readonly sync: RouteSync,
    readonly selfAddress: string,
    /** The cluster route table (route sync's sink): ordinary routes and shared-subscription groups. */
    readonly routes: ClusterRoutes,
    private readonly remembered: RememberedMembers,
    /** This node's incarnation in the cluster (`clusterIncarnation`): above every earlier one, even after a wiped store. */
    readonly incarnation: number,
  ) {
    this.logger = host.logger.child({ component: 'cluster' });
    this.membership = new Membership(this.nodeId);
    this.metrics = new ClusterMetrics(host.metrics);
    this.rpc = new Rpc(transport, this.logger);
    this.driver = new RouteSyncDriver(sync, {
      send: (nodeId, channel, payload) => transport.send(nodeId, channel, payload),
      resetPeer: (nodeId, reason) => transport.removePeer(nodeId, reason),
    }, this.metrics, this.logger);
    this.localRoutes = new LocalRoutes((op, filter, routeId) => (op === 'add' ? this.driver.subscribe(filter, routeId) : this.driver.unsubscribe(filter, routeId)));
    this.takeover = new SessionTakeover({
      nodeId: this.nodeId, store: host.store.persistence, rpc: this.rpc, peers: this.membership, takeovers: this.metrics.takeovers, logger: this.logger,
      routes: routes.table, originIds: (nodeId) => this.forwarder.readsOrigin(nodeId, true),
    });
    this.retained = new RetainedReplicator(this.rpc, host.store.persistence,
      () => this.membership.list().filter((m) => m.connected).map((m) => m.nodeId), this.logger);
    this.shares = new ClusterSharedSubscriptions(this.nodeId, routes.shares, host.shared, (nodeId, message) => this.forwarder.send(nodeId, message), this.logger);
    this.forwarder = new Forwarder(this.nodeId, routes.table, transport, host.aedes, this.metrics, this.logger, this.shares, incarnation);
    this.readiness = new TableReadiness({
      sync,
      membership: this.membership,
      needsSource: this.role !== 'core',
      tableSources: () => (this.role === 'core' ? this.membership.connectedCores().map((m) => m.nodeId) : this.upstream === undefined ? [] : [this.upstream]),
      discoverySettled: () => this.initialAddresses !== undefined && this.initialAddresses.every((a) => transport.dialAttempted(a)),
    }, { waitMs: host.config.cluster.tableWaitSeconds * 1000, remembered: remembered.previous, roles: MEMBER_ROLES, logger: this.logger });
    void this.readiness.ready.then(() => remembered.settle());
  }

  get nodeId(): string { return this.host.config.node.name; }
  get role(): string { return this.host.config.cluster.role; }
  get clusterName(): string { return this.host.config.node.clusterName; }
  get upstreamCore(): string | undefined { return this.upstream; }

  /**
   * Resolves once the regional table is complete: every connected node's and link agent's lane is here, and every
   * member of the previous run is back with its lane — or after `cluster.tableWaitSeconds` (logged). Until then a
   * publish routed here could miss subscribers elsewhere: the node opens its MQTT listeners, and its embedded link
   * agent exports routes and publishes linked messages, only after it (see README.md, "Readiness after a restart").
   */
  get tableReady(): Promise<void> { return this.readiness.ready; }

  /** `create`, then `join`: for a node without an embedded link agent. */
  static async start(host: ClusterHost): Promise<ClusterNode> {
    const node = await ClusterNode.create(host);
    await node.join();
    return node;
  }

  /**
   * The cluster member, not yet connected: an embedded link agent adds its restored routes first, so that the
   * node's first lane in the region — which replaces the one of its previous incarnation — already holds them.
   */
  static async create(host: ClusterHost): Promise<ClusterNode> {
    const { config } = host;
    const cluster = config.cluster;
    const logger = host.logger.child({ component: 'cluster' });
    const port = cluster.port ?? 4370;
    const selfAddress = cluster.advertise ?? `${cluster.host}:${port}`;
    const incarnation = await clusterIncarnation(host.store.area(CLUSTER_INCARNATION_AREA), host.store.incarnation);
    const transport = new ClusterTransport({
      identity: { clusterName: config.node.clusterName, nodeId: config.node.name, role: cluster.role, incarnation, address: selfAddress },
      secret: await readClusterSecret(cluster.secretFile as string),
      logger: host.logger,
      tls: cluster.tls ? clusterTls(cluster.tls) : undefined,
      dialFrom: isWildcard(cluster.host) ? undefined : cluster.host,
    });
    const routes = new ClusterRoutes();
    const sync = new RouteSync({
      cluster: config.node.clusterName, actor: config.node.name, incarnation, role: cluster.role,
      ttlMs: cluster.routeTtlSeconds * 1000, heartbeatMs: Math.min(cluster.heartbeatIntervalMs, (cluster.routeTtlSeconds * 1000) / 3), policy: regionalClusterPolicy,
      sink: watchedSink(routes, (op, filter, owner, routeId) => node.routeChanged(op, filter, owner, routeId)),
      onEvent: (event) => node.onRouteSyncEvent(event),
    });
    const remembered = await RememberedMembers.open(host.store.area('cluster-members'), logger);
    const node: ClusterNode = new ClusterNode(host, transport, sync, selfAddress, routes, remembered, incarnation);
    node.wireTransport();
    followNodeSubscriptions(node.localRoutes, host.aedes, host.store.persistence);
    registerClusterApi(node, host.admin);
    registerTakeoverApi(node.takeover, host.admin);
    return node;
  }

  /** Listens for cluster connections, dials what discovery finds, and starts waiting for the regional table. */
  async join(): Promise<void> {
    const cluster = this.host.config.cluster;
    const port = cluster.port ?? 4370;
    const { transport } = this;
    await transport.listen(port, cluster.host);
    this.driver.start();
    this.discovery = new Discovery({
      seeds: cluster.seeds, dnsName: cluster.discoveryDns, clusterPort: port,
      intervalMs: cluster.discoveryIntervalSeconds * 1000, self: this.selfAddress, logger: this.logger,
    }, (addresses) => {
      this.initialAddresses ??= addresses;
      addresses.forEach((address) => transport.connect(address));
    });
    await this.discovery.start();
    this.readiness.start();
    this.logger.info({ role: cluster.role, incarnation: this.incarnation, address: this.selfAddress, seeds: cluster.seeds, dns: cluster.discoveryDns, remembered: [...this.remembered.previous.keys()] }, 'cluster transport listening');
  }

  /** The aedes `published` hook. */
  published(packet: AedesPublishPacket, client: Client | null, done: (err?: Error | null) => void): void {
    if (!packet.retain || this.forwarder.isArrived(packet)) return this.forwarder.published(packet, client, done);
    this.forwarder.published(packet, client, (err) => {
      if (err) return done(err);
      const replicated = this.retained.replicate(packet);
      if (packet.qos === 0) return done();
      replicated.then(() => done(), done);
    });
  }

  /**
   * Calls `listener` with every route of the regional table now (as 'add'; this node's routes added through
   * `addRoute` excepted, the caller knows them), then with every change, until the returned function is called.
   */
  watchRoutes(listener: RouteChangeListener): () => void {
    for (const [filter, routeId] of this.localRoutes.routes()) listener('add', filter, this.nodeId, routeId);
    for (const [filter, owner, routeId] of this.driver.learnedRoutes()) listener('add', filter, owner, routeId);
    this.routeWatchers.add(listener);
    return () => this.routeWatchers.delete(listener);
  }

  /** A route of this node that no client subscription backs (a link agent's remote routes); counted per call. */
  addRoute(filter: string, routeId: string): void {
    this.driver.subscribe(filter, routeId);
  }

  deleteRoute(filter: string, routeId: string): void {
    this.driver.unsubscribe(filter, routeId);
  }

  markLinked(packet: object): void {
    this.forwarder.markLinked(packet);
  }

  isLinked(packet: object): boolean {
    return this.forwarder.isLinked(packet);
  }

  /** The embedded link agent takes each copy with a copy identity as it arrives (its intake marks, link README). */
  onCopyArrival(handler: CopyArrival): void {
    this.forwarder.copyArrival = handler;
  }

  private routeChanged(op: 'add' | 'delete', filter: string, owner: string, routeId: string): void {
    this.forwarder.routeChanged(op, owner, routeId);
    for (const watcher of this.routeWatchers) watcher(op, filter, owner, routeId);
  }

  async stop(): Promise<void> {
    this.readiness.stop();
    this.discovery?.stop();
    this.driver.stop();
    this.takeover.stop();
    this.rpc.close();
    await this.transport.close();
  }

  private onRouteSyncEvent(event: RouteSyncEvent): void {
    logRouteSyncEvent(this.logger, event);
    // A node silent past the TTL is gone: fail what waits for it, so publishers are not held forever.
    if (event.type === 'lane_expired' && !this.membership.get(event.actor)?.connected) {
      this.remembered.forget(event.actor);
      this.transport.removePeer(event.actor, 'routes expired (silent past the TTL)');
      this.takeover.nodeGone(event.actor);
    }
  }

  private wireTransport(): void {
    const { transport } = this;
    transport.on('peerConnected', (peer: ConnectedPeer) => this.onPeerUp(peer));
    transport.on('peerDisconnected', (nodeId: string, info: { code: string; detail: string }) => this.onPeerDown(nodeId, `${info.code}: ${info.detail}`));
    transport.on('handshakeFailed', (failure: { reason: string; detail: string; remoteAddress?: string }) => {
      this.logger.warn({ reason: failure.reason, detail: failure.detail, remote: failure.remoteAddress }, 'cluster peer refused');
    });
    transport.on('message', (nodeId: string, channel: number, payload: Buffer, delivery: Delivery) => {
      switch (channel) {
        case Channel.RouteSync:
          this.acceptSyncStream(nodeId);
          return this.driver.receive(nodeId, payload);
        case Channel.Forward:
          return this.forwarder.receive(nodeId, payload, delivery);
        case Channel.Rpc:
          return this.rpc.receive(nodeId, payload, delivery);
        default:
          this.logger.warn({ peer: nodeId, channel }, 'message on an unknown cluster channel dropped');
      }
    });
    this.rpc.handle('members', (_from, message) => {
      const fresh = this.membership.merge((message.header.members ?? []) as GossipedMember[]);
      for (const address of fresh) this.transport.connect(address);
    });
  }

  private onPeerUp(peer: ConnectedPeer): void {
    this.membership.up(peer);
    if (MEMBER_ROLES.has(peer.role)) this.remembered.seen(peer.nodeId, { role: peer.role, address: peer.address });
    this.takeover.peerConnected(peer.nodeId);
    this.logger.info({ peer: peer.nodeId, role: peer.role, address: peer.address, incarnation: peer.incarnation, session: peer.session }, 'cluster peer connected');
    void this.rpc.notify(peer.nodeId, { kind: 'members', members: this.membership.gossip() }).catch(() => undefined);
    if (peer.role === 'core' && this.role === 'core') this.openSyncStream(peer.nodeId);
    if (peer.role === 'core' && peer.session !== 'resumed') {
      this.retained.fillFrom(peer.nodeId).catch((err: Error) => this.logger.warn({ peer: peer.nodeId, err: err.message }, 'could not copy retained messages from a peer'));
    }
    if (this.role === 'replicant') this.chooseUpstream();
  }

  private onPeerDown(nodeId: string, reason: string): void {
    this.membership.down(nodeId);
    this.forwarder.readsOrigin(nodeId, false);
    this.syncPeers.delete(nodeId);
    this.driver.disconnect(nodeId);
    this.logger.info({ peer: nodeId, reason }, 'cluster peer disconnected');
    if (nodeId === this.upstream) {
      this.upstream = undefined;
      this.chooseUpstream();
    }
  }

  /** A replicant follows the connected core with the smallest id; when it goes, the next one (a fresh bootstrap). */
  private chooseUpstream(): void {
    if (this.upstream !== undefined) return;
    const core = this.membership.connectedCores()[0];
    if (!core) {
      this.logger.warn('no core reachable: serving local clients only until one is');
      return;
    }
    this.upstream = core.nodeId;
    this.logger.info({ core: core.nodeId }, 'route sync upstream chosen');
    this.openSyncStream(core.nodeId);
  }

  /** A core answers a replicant (or link agent) that chose it by opening its own stream back. */
  private acceptSyncStream(nodeId: string): void {
    if (this.syncPeers.has(nodeId) || this.role !== 'core') return;
    if (this.membership.get(nodeId)?.connected) this.openSyncStream(nodeId);
  }

  private openSyncStream(nodeId: string): void {
    this.syncPeers.add(nodeId);
    this.driver.connect(nodeId);
  }
}

function clusterTls(tls: NonNullable<BrokerConfig['cluster']['tls']>): { server: object; client: object } {
  const cert = readFileSync(tls.certFile);
  const key = readFileSync(tls.keyFile);
  const ca = readFileSync(tls.caFile);
  return {
    server: { cert, key, ca, requestCert: true, rejectUnauthorized: true },
    client: { cert, key, ca, rejectUnauthorized: true, checkServerIdentity: () => undefined },
  };
}

/** The route table, telling `changed` about every route that actually appeared or went. */
function watchedSink(routes: RouteSink, changed: RouteChangeListener): RouteSink {
  return {
    add(filter, owner, routeId) {
      const added = routes.add(filter, owner, routeId);
      if (added) changed('add', filter, owner, routeId);
      return added;
    },
    delete(filter, owner, routeId) {
      const deleted = routes.delete(filter, owner, routeId);
      if (deleted) changed('delete', filter, owner, routeId);
      return deleted;
    },
  };
}

/** The members whose lanes a node's table needs: nodes with clients, and link agents (their `$link/...` routes). */
const MEMBER_ROLES: ReadonlySet<string> = new Set(['core', 'replicant', 'agent']);

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

function logRouteSyncEvent(logger: Logger, event: RouteSyncEvent): void {
  if (event.type === 'stream_refused' || event.type === 'stream_rejected') logger.error({ ...event }, 'route sync refused');
  else logger.info({ ...event }, `route sync: ${event.type}`);
}
