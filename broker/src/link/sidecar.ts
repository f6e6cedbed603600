import type { BrokerMetrics } from '../admin/metrics.js';
import { Discovery } from '../cluster/discovery.js';
import { clusterIncarnation } from '../cluster/incarnation.js';
import { encodeForwarded, type ForwardedMessage } from '../cluster/forward-codec.js';
import { decodeArrival } from '../cluster/forwarder.js';
import { Membership, type GossipedMember } from '../cluster/membership.js';
import { ClusterMetrics } from '../cluster/metrics.js';
import { RouteSyncDriver } from '../cluster/route-sync-driver.js';
import { Rpc } from '../cluster/rpc.js';
import { ClusterRoutes, dispatchToGroupOwners, type ShareOwners } from '../cluster/shared-subscriptions.js';
import { RememberedMembers } from '../cluster/remembered-members.js';
import { TableReadiness } from '../cluster/table-readiness.js';
import type { StoreArea } from '../store/index.js';
import { Channel, ClusterTransport, readClusterSecret, SendFailure, type ConnectedPeer, type Delivery } from '../cluster/transport/index.js';
import type { Logger } from '../log/logger.js';
import { exportOwnLaneOnly, RouteSync, type RouteSyncEvent } from '../routesync/index.js';
import type { RouteSink } from '../routing/route-table.js';
import { linkRouteId, type RegionMessage, type RegionRouteListener, type SidecarRegion } from './region.js';
import { RegionRetained } from './retained-sync.js';

export interface LinkSidecarOptions {
  clusterName: string;
  /** The agent's node id in the cluster (unique, like any node's). */
  nodeName: string;
  seeds: string[];
  secretFile: string;
  /** Address the agent's cluster listener binds to; other nodes dial it (they learn it from the cores' gossip). */
  clusterHost: string;
  clusterPort: number;
  /** Address other nodes dial; default clusterHost:clusterPort. */
  advertise?: string;
  routeTtlSeconds: number;
  incarnation: number;
  logger: Logger;
  metrics: BrokerMetrics;
  /** Store area of the members seen (`RememberedMembers`): after a restart the agent waits for them too. */
  membersArea?: StoreArea;
}

/**
 * The sidecar's incarnation in the cluster: `clusterIncarnation` (store clock base + store incarnation), the same
 * rule as the nodes'; the base stays in the store area `cluster-incarnation`, as before.
 */
export const sidecarClusterIncarnation = clusterIncarnation;

/** A cluster-forwarded copy reaching the agent from node `from`; resolves when it may be acknowledged. */
export type SidecarIntake = (message: ForwardedMessage, from: string) => Promise<void>;

/**
 * Remote agents publish their control messages on any node of the region; these routes bring those of one remote
 * cluster to the agent that is active for the link to it.
 */
const controlFilters = (remote: string): string[] => [`$LINK/cluster/route/${remote}/+`, `$LINK/cluster/msg/${remote}/+`];
const CONTROL_ROUTE_ID = linkRouteId('$control');
/**
 * Send failures that mean the copy did not reach the destination node: it restarted (`peer-restarted`,
 * `peer-session-lost`), its link was closed (its lane expired, or this agent's transport shuts down) or there is
 * no link to it (`unknown-peer`). Whether that is final is decided by the regional table (`send`).
 */
const NOT_HANDED_OVER = new Set(['peer-restarted', 'peer-session-lost', 'link-closed', 'unknown-peer']);
/** Pause between two attempts to hand a copy to a node that still holds matching routes (restarting, reconnecting). */
const RESEND_PAUSE_MS = 250;
/** The members whose lanes the sidecar needs before publishing into the region: the nodes with clients. */
const NODE_ROLES: ReadonlySet<string> = new Set(['core', 'replicant']);
/** Rpc notifications every member gets that concern nodes with clients only. */
const IGNORED_NOTIFICATIONS = ['session.claims', 'session.origin-ids'];
/** After the regional table is here, how long the agent waits at most for its copy of the region's retained messages. */
const RETAINED_FILL_WAIT_MS = 5000;

/**
 * The sidecar link agent's membership in its regional cluster: it joins over the intra-cluster transport with the
 * role `agent`, keeps one route-sync stream to a core (its own lane up — the remote routes, route id
 * `$link/<link>` — and the merged regional table down), receives as Forward-channel copies the messages that match
 * its routes, and publishes into the region by sending copies to the nodes with matching routes.
 */
export class LinkSidecar implements SidecarRegion {
  private readonly membership: Membership;
  private readonly metrics: ClusterMetrics;
  private readonly rpc: Rpc;
  private readonly driver: RouteSyncDriver;
  /** The region's retained messages (for the retained sync of the links) and the store of linked ones on every node. */
  readonly retained: RegionRetained;
  private readonly watchers = new Set<RegionRouteListener>();
  private readonly logger: Logger;
  private upstream?: string;
  private discovery?: Discovery;
  private intake?: SidecarIntake;
  /** Copies that arrive before the agent is attached wait for it (the transport acknowledges a failed handling). */
  private readonly attached: Promise<SidecarIntake>;
  private resolveAttached!: (intake: SidecarIntake) => void;
  /**
   * The regional table is here (or the wait gave up): a linked message published before would find no route and be
   * lost, so copies wait for it. Shared with the nodes (`TableReadiness`); the sidecar needs the nodes' lanes only.
   */
  private readonly readiness: TableReadiness;
  /** The addresses discovery found at the join: the table is not complete before each was dialed once. */
  private initialAddresses?: string[];
  private readonly agentWatchers = new Set<() => void>();
  private readonly claimed = new Set<string>();
  /** Set when the agent begins to stop: copies not handed over / not taken from now on are never acknowledged. */
  private stopping = false;

  private constructor(
    private readonly options: LinkSidecarOptions,
    private readonly transport: ClusterTransport,
    readonly sync: RouteSync,
    /** The regional table (route sync's sink): ordinary routes and shared-subscription groups. */
    private readonly routes: ClusterRoutes,
    private readonly remembered?: RememberedMembers,
  ) {
    this.logger = options.logger.child({ component: 'link-sidecar' });
    this.attached = new Promise((resolve) => { this.resolveAttached = resolve; });
    this.membership = new Membership(options.nodeName);
    this.metrics = new ClusterMetrics(options.metrics);
    this.rpc = new Rpc(transport, this.logger);
    const connected = (roles: (role: string) => boolean) => () => this.membership.list().filter((m) => roles(m.role) && m.connected).map((m) => m.nodeId);
    this.retained = new RegionRetained(this.rpc, connected((role) => NODE_ROLES.has(role)), connected((role) => role === 'agent'), this.logger);
    this.driver = new RouteSyncDriver(sync, {
      send: (nodeId, channel, payload) => transport.send(nodeId, channel, payload),
      resetPeer: (nodeId, reason) => transport.removePeer(nodeId, reason),
    }, this.metrics, this.logger);
    this.readiness = new TableReadiness({
      sync,
      membership: this.membership,
      needsSource: true,
      tableSources: () => (this.upstream === undefined ? [] : [this.upstream]),
      discoverySettled: () => this.initialAddresses !== undefined && this.initialAddresses.every((a) => transport.dialAttempted(a)),
    }, { waitMs: (options.routeTtlSeconds * 1000) / 2, remembered: remembered?.previous ?? new Map(), roles: NODE_ROLES, logger: this.logger });
    if (remembered) void this.readiness.ready.then(() => remembered.settle());
  }

  get nodeId(): string { return this.options.nodeName; }
  get tableReady(): Promise<void> { return this.readiness.ready; }
  get upstreamCore(): string | undefined { return this.upstream; }

  /**
   * The sidecar, not yet connected: the agent adds its routes first (restored remote routes included), so that its
   * first lane in the region — which replaces the lane of its previous incarnation — already holds them.
   */
  static async create(options: LinkSidecarOptions): Promise<LinkSidecar> {
    const address = options.advertise ?? `${options.clusterHost}:${options.clusterPort}`;
    const transport = new ClusterTransport({
      identity: { clusterName: options.clusterName, nodeId: options.nodeName, role: 'agent', incarnation: options.incarnation, address },
      secret: await readClusterSecret(options.secretFile),
      logger: options.logger,
    });
    const routes = new ClusterRoutes();
    const remembered = options.membersArea ? await RememberedMembers.open(options.membersArea, options.logger.child({ component: 'link-sidecar' })) : undefined;
    const sidecar: LinkSidecar = new LinkSidecar(options, transport, new RouteSync({
      cluster: options.clusterName, actor: options.nodeName, incarnation: options.incarnation, role: 'agent',
      ttlMs: options.routeTtlSeconds * 1000, policy: exportOwnLaneOnly,
      sink: watchedSink(routes, (op, filter, owner, routeId) => sidecar.routeChanged(op, filter, owner, routeId)),
      onEvent: (event) => sidecar.onRouteSyncEvent(event),
    }), routes, remembered);
    sidecar.wire();
    return sidecar;
  }

  /** Listens for cluster connections and dials the seeds. */
  async join(): Promise<void> {
    const { options, transport } = this;
    const address = transport.identity.address;
    await transport.listen(options.clusterPort, options.clusterHost);
    this.driver.start();
    this.discovery = new Discovery({
      seeds: options.seeds, clusterPort: options.clusterPort, intervalMs: 30_000, self: address, logger: this.logger,
    }, (addresses) => {
      this.initialAddresses ??= addresses;
      addresses.forEach((a) => transport.connect(a));
    });
    await this.discovery.start();
    this.logger.info({ address, seeds: options.seeds, remembered: [...(this.remembered?.previous.keys() ?? [])] }, 'link agent joining its cluster');
    this.readiness.start();
    void this.readiness.ready.then(() => this.retained.giveUpAfter(RETAINED_FILL_WAIT_MS));
  }

  /** Where the Forward-channel copies go (the agent's `forwarded`); copies that arrived earlier wait for it. */
  attach(intake: SidecarIntake): void {
    this.intake = intake;
    this.resolveAttached(intake);
  }

  /** Every learned route now (the agent's own lane is only link routes), then every change. */
  watchRoutes(listener: RegionRouteListener): () => void {
    for (const [filter, owner, routeId] of this.driver.learnedRoutes()) listener('add', filter, owner, routeId);
    this.watchers.add(listener);
    return () => this.watchers.delete(listener);
  }

  /** The link agents of the region that are alive as far as this one sees: itself and its connected `agent` peers. */
  liveAgents(): string[] {
    const peers = this.membership.list().filter((m) => m.role === 'agent' && m.connected).map((m) => m.nodeId);
    return [this.nodeId, ...peers].sort();
  }

  /** `listener` runs whenever an agent peer connects or disconnects. */
  onAgentsChanged(listener: () => void): () => void {
    this.agentWatchers.add(listener);
    return () => this.agentWatchers.delete(listener);
  }

  /** Routes the control messages of `remote`'s agents to this agent (it is active for the link). */
  claimControl(remote: string): void {
    if (this.claimed.has(remote)) return;
    this.claimed.add(remote);
    for (const filter of controlFilters(remote)) this.driver.subscribe(filter, CONTROL_ROUTE_ID);
  }

  releaseControl(remote: string): void {
    if (!this.claimed.delete(remote)) return;
    for (const filter of controlFilters(remote)) this.driver.unsubscribe(filter, CONTROL_ROUTE_ID);
  }

  addRoute(filter: string, routeId: string): void {
    this.driver.subscribe(filter, routeId);
  }

  deleteRoute(filter: string, routeId: string): void {
    this.driver.unsubscribe(filter, routeId);
  }

  /**
   * One copy to each node with a matching ordinary route, as the publishing node of a local client would send
   * them; resolves when every node acknowledged its copy (a node acknowledges after publishing it locally).
   */
  async publish(message: RegionMessage, linked: boolean): Promise<void> {
    // Nodes replicate only their own clients' retained messages, and the copies below reach only the route owners.
    if (linked && message.retain) await this.retained.storeEverywhere({ topic: message.topic, payload: message.payload, qos: message.qos });
    const owners = this.routes.table.match(message.topic);
    owners.delete(this.nodeId);
    const groups = this.routes.shares.match(message.topic);
    if (owners.size === 0 && groups === null) return;
    const forwarded: ForwardedMessage = { ...message, timestamp: message.timestamp ?? Date.now(), ...(linked ? { linked: true } : {}) };
    const payload = owners.size === 0 ? undefined : encodeForwarded(forwarded);
    await Promise.all([
      ...[...owners].map((nodeId) => this.send(nodeId, payload as Buffer, message.topic)),
      ...(groups === null ? [] : [this.publishToGroups(groups, forwarded)]),
    ]);
  }

  /**
   * Shared-subscription groups get one copy each, to one node holding the group's route (the one the message's
   * publish identity picks, as a node does: the same node when a carrier is published again after a crash, and that
   * node recorded the group); that node hands it to one member. A node found gone is passed over; a group no node
   * takes is logged and counted.
   */
  private async publishToGroups(groups: ShareOwners[], message: ForwardedMessage): Promise<void> {
    const untaken = await dispatchToGroupOwners(groups, message, this.nodeId, (nodeId, copy) => this.sendShared(nodeId, encodeForwarded(copy), copy.topic));
    for (const share of untaken) {
      this.metrics.forwardDropped.inc({ peer: 'shared-group', reason: 'no-owner' });
      this.logger.warn({ group: share.group, filter: share.filter, topic: message.topic }, 'shared message dropped: no node of the group is reachable');
    }
  }

  /** One attempt to hand a shared copy to `nodeId`: false when the node is gone (the next owner is tried). */
  private async sendShared(nodeId: string, payload: Buffer, topic: string): Promise<boolean> {
    this.metrics.forwardedOut.inc({ peer: nodeId });
    this.metrics.forwardedBytesOut.inc({ peer: nodeId }, payload.length);
    try {
      await this.transport.send(nodeId, Channel.Forward, payload);
      return true;
    } catch (err) {
      if (err instanceof SendFailure && NOT_HANDED_OVER.has(err.code) && !this.stopping) return false;
      throw new Error(`publishing '${topic}' to a shared group on ${nodeId} failed: ${(err as Error).message}`);
    }
  }

  private routeChanged(op: 'add' | 'delete', filter: string, owner: string, routeId: string): void {
    for (const watcher of this.watchers) watcher(op, filter, owner, routeId);
  }

  /** Routes and upstream for `/api/v1/links`-style introspection and tests. */
  describe(): object {
    return {
      nodeId: this.nodeId, upstreamCore: this.upstream ?? null, liveAgents: this.liveAgents(),
      members: this.membership.list().map((m) => ({ nodeId: m.nodeId, role: m.role, connected: m.connected })),
      lanes: this.sync.lanes().map((l) => ({ actor: l.actor, incarnation: l.incarnation, version: l.version, routes: l.routes })),
    };
  }

  /** The agent is stopping: a copy it cannot hand over or take from now on fails and is not acknowledged. */
  beginStop(): void {
    this.stopping = true;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.readiness.stop();
    this.discovery?.stop();
    this.driver.stop();
    this.rpc.close();
    await this.transport.close();
  }

  /**
   * Hands a copy to `nodeId`; resolves once the node acknowledged it (published it locally). A copy that did not
   * reach the node is final only when the node no longer holds a route matching the topic in the regional table
   * (it left: its lane expired, its clean sessions are gone). While it still holds one it is restarting or
   * reconnecting (its persistent sessions come back with it): the copy is sent again. When this agent stops, the
   * copy fails: the carrier that brought it is then not acknowledged and the remote resends it.
   */
  private async send(nodeId: string, payload: Buffer, topic: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      this.metrics.forwardedOut.inc({ peer: nodeId });
      this.metrics.forwardedBytesOut.inc({ peer: nodeId }, payload.length);
      try {
        await this.transport.send(nodeId, Channel.Forward, payload);
        return;
      } catch (err) {
        if (!(err instanceof SendFailure && NOT_HANDED_OVER.has(err.code))) {
          throw new Error(`publishing '${topic}' to ${nodeId} failed: ${(err as Error).message}`);
        }
        if (this.stopping) throw new Error(`publishing '${topic}' to ${nodeId} failed: the link agent is stopping (${err.code}: ${err.message})`);
        if (!this.routes.table.match(topic).has(nodeId)) {
          this.metrics.forwardDropped.inc({ peer: nodeId, reason: err.code });
          this.logger.warn({ peer: nodeId, topic, reason: err.code }, 'message not handed over: the node left the cluster (no route of it matches any more)');
          return;
        }
        const level = attempt === 1 ? 'info' : 'debug';
        this.logger[level]({ peer: nodeId, topic, reason: err.code, attempt }, 'message not handed over: the node still holds matching routes (restarting), sending again');
        if (err.code !== 'peer-restarted' && err.code !== 'peer-session-lost') await new Promise((resolve) => setTimeout(resolve, RESEND_PAUSE_MS));
      }
    }
  }

  private wire(): void {
    const { transport } = this;
    transport.on('peerConnected', (peer: ConnectedPeer) => this.onPeerUp(peer));
    transport.on('peerDisconnected', (nodeId: string, info: { code: string; detail: string }) => this.onPeerDown(nodeId, `${info.code}: ${info.detail}`));
    transport.on('handshakeFailed', (failure: { reason: string; detail: string; remoteAddress?: string }) => {
      this.logger.warn({ reason: failure.reason, detail: failure.detail, remote: failure.remoteAddress }, 'cluster peer refused');
    });
    transport.on('message', (nodeId: string, channel: number, payload: Buffer, delivery: Delivery) => {
      if (channel === Channel.RouteSync) return this.driver.receive(nodeId, payload);
      if (channel === Channel.Forward) return this.receive(nodeId, payload, delivery);
      if (channel === Channel.Rpc) return this.rpc.receive(nodeId, payload, delivery);
      this.logger.warn({ peer: nodeId, channel }, 'message on an unknown cluster channel dropped');
    });
    this.rpc.handle('members', (_from, message) => {
      for (const address of this.membership.merge((message.header.members ?? []) as GossipedMember[])) transport.connect(address);
    });
    for (const kind of IGNORED_NOTIFICATIONS) this.rpc.handle(kind, () => undefined);
  }

  private receive(fromNode: string, payload: Buffer, delivery: Delivery): void {
    const message = decodeArrival(fromNode, payload, this.metrics, this.logger);
    if (!message) return;
    if (message.shareGroup !== undefined) {
      this.logger.warn({ peer: fromNode, topic: message.topic }, 'a shared-subscription copy reached the link agent, which has no members: dropped');
      return;
    }
    const intake = this.intake;
    const handled = intake && this.readiness.isReady ? intake(message, fromNode) : Promise.all([this.attached, this.tableReady]).then(([later]) => later(message, fromNode));
    delivery.defer(handled.catch((err: Error) => {
      if (this.stopping) {
        // Never acknowledged: the sending node gets a failure when this transport closes and hands the copy to the
        // next incarnation, or (a carrier) does not acknowledge it to the remote agent, which resends it.
        this.logger.warn({ peer: fromNode, topic: message.topic, err: err.message }, 'message not taken by the stopping link agent: left unacknowledged');
        return new Promise<void>(() => undefined);
      }
      // The transport acknowledges a copy whose handling failed as well: say so, the message is lost for the link.
      this.logger.error({ peer: fromNode, topic: message.topic, err: err.message }, 'message not taken by the link agent (acknowledged to the cluster anyway)');
      return undefined;
    }));
  }

  private onPeerUp(peer: ConnectedPeer): void {
    this.membership.up(peer);
    if (NODE_ROLES.has(peer.role)) this.remembered?.seen(peer.nodeId, { role: peer.role, address: peer.address });
    // Copies then carry the publish's origin identity (forward format 3): the twin identity of a link that moved.
    if (NODE_ROLES.has(peer.role)) {
      this.rpc.notify(peer.nodeId, { kind: 'session.origin-ids' }).catch((err: Error) => {
        this.logger.debug({ peer: peer.nodeId, err: err.message }, 'origin identity support not announced (announced again when the peer reconnects)');
      });
    }
    if (peer.role === 'agent') this.agentWatchers.forEach((watcher) => watcher());
    this.logger.info({ peer: peer.nodeId, role: peer.role, address: peer.address }, 'cluster peer connected');
    if (peer.role === 'core' && this.upstream === undefined) this.chooseUpstream();
    if (peer.role === 'core' && peer.session !== 'resumed') void this.retained.fillFrom(peer.nodeId);
  }

  private onPeerDown(nodeId: string, reason: string): void {
    this.membership.down(nodeId);
    if (this.membership.get(nodeId)?.role === 'agent') this.agentWatchers.forEach((watcher) => watcher());
    this.driver.disconnect(nodeId);
    this.logger.info({ peer: nodeId, reason }, 'cluster peer disconnected');
    if (nodeId === this.upstream) {
      this.upstream = undefined;
      this.chooseUpstream();
    }
  }

  /** Like a replicant: routes go up to one core, the merged table comes down from it. */
  private chooseUpstream(): void {
    const core = this.membership.connectedCores()[0];
    if (!core) {
      this.logger.warn('no core reachable: the links keep their queues until one is');
      return;
    }
    this.upstream = core.nodeId;
    this.logger.info({ core: core.nodeId }, 'route sync upstream chosen');
    this.driver.connect(core.nodeId);
  }

  private onRouteSyncEvent(event: RouteSyncEvent): void {
    if (event.type === 'lane_expired' && !this.membership.get(event.actor)?.connected) this.remembered?.forget(event.actor);
    if (event.type === 'stream_refused' || event.type === 'stream_rejected') this.logger.error({ ...event }, 'route sync refused');
    else this.logger.info({ ...event }, `route sync: ${event.type}`);
  }
}

/** The route table, telling `changed` about every route that actually appeared or went. */
function watchedSink(routes: RouteSink, changed: RegionRouteListener): RouteSink {
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
