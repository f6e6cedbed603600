import { readFileSync } from 'node:fs';
import { Socket } from 'node:net';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from '../log/logger.js';
import { intersectAll } from '../routing/intersect.js';
import { RouteSync, exportOwnLaneOnly, type RouteSyncEvent } from '../routesync/index.js';
import type { NodeStore } from '../store/index.js';
import type { LinkConfig } from './config.js';
import type { DedupWindow, OriginReset } from './dedup.js';
import { BATCH_VERSION, decodeBatch, encodeBatch, encodeEnvelope, EnvelopeError, LEGACY_VERSION, TWIN_VERSION, type BatchEntry, type EnvelopeBatch } from './envelope.js';
import { HubDriver } from './hub-driver.js';
import { LinkQueue, type LinkMessage, type QueueEntry } from './queue.js';
import { agentActor, capabilitiesTopic, isLinkTopic, messageTopic, responseTopic, routeTopic } from './topics.js';
import type { LinkMetrics } from './metrics.js';
import { RemoteRoutes } from './region.js';
import { RemoteRouteMemory } from './route-memory.js';

export type LinkState = 'connecting' | 'connected' | 'disconnected' | 'misconfigured' | 'disabled';

export interface LinkContext {
  localCluster: string;
  nodeName: string;
  /** Publishes a route-sync answer to a remote agent (QoS 0) where it is subscribed, in the local cluster. */
  respond: (topic: string, payload: Buffer) => void;
  store: NodeStore;
  logger: Logger;
  metrics: LinkMetrics;
  /** Messages forwarded in flight per link (sent in unacknowledged carrier publishes). Default 4096. */
  window?: number;
  /**
   * Resolves when the routes to export are known (a sidecar that just joined its cluster has no table yet). The link
   * dials the remote only then: its route-sync lane replaces the previous incarnation's at the remote, and an empty
   * one would make the remote stop queueing for this region until the routes followed.
   */
  exportReady?: Promise<void>;
  /** The union of the remote agents' filters changed (in a regional cluster: the agent's routes there follow). */
  remoteRoute?: (link: string, op: 'add' | 'delete', filter: string) => void;
  /** The receiving side's de-dup window: the store epoch it knows for a remote agent is told to that agent (see `receiveRoutes`). */
  dedup?: DedupWindow;
  /**
   * Sidecar: is the copy this queued message came from still unacknowledged to its node (it waits for another link's
   * queue or gate, or an earlier message of that node is still being handled)? Its carrier marks it a twin: if this
   * agent dies now, the node hands the copy over to another agent. A sidecar's link sends one event-loop turn after
   * the commit, so that the acknowledgements of settled copies are written before their carrier.
   */
  copyUnacknowledged?: (message: LinkMessage) => boolean;
}

export interface LinkStatus {
  name: string;
  state: LinkState;
  lastError: string | null;
  /** When the current connection became `connected` (MQTT up and route-sync handshake done); null otherwise. */
  connectedSince: string | null;
  server: string | null;
  actor: string;
  incarnation: number;
  routeSync: string;
  routesSent: number;
  routesReceived: number;
  /** Remote filters restored from the store at start and not yet confirmed by the remote (dropped after the TTL). */
  routesRestored: number;
  remoteAgents: number;
  bootstraps: number;
  lastBootstrapAt: string | null;
  /** `repeatsSkipped`: messages published again with a publish identity the queue had taken (not queued twice). */
  queue: { depth: number; bytes: number; maxBytes: number; oldestAgeMs: number; whenFull: string; repeatsSkipped: number };
  forwarded: number;
  received: number;
  deduplicated: number;
  /** Messages sent twin-marked (possibly also sent by another agent of this region: a link moved). */
  twinsMarked: number;
  /** Of `deduplicated`: twin-marked messages whose twin, sent by another agent of the remote region, was delivered. */
  twinsDropped: number;
  /** Payload bytes of the carriers sent / received (forwarded messages). */
  bytesOut: number;
  bytesIn: number;
  /** Payload bytes of route sync and capabilities sent / received (both halves of the link). */
  controlBytesOut: number;
  controlBytesIn: number;
  /** Envelope format on the current connection: `batch`, `single` (a remote from before batches), null (not known yet). */
  envelopes: 'batch' | 'single' | null;
  /** Times a remote agent came back with a new store (its undelivered queue lost); see lostQueueReports. */
  originResets: number;
  /** The last reports of lost queue volume (newest last): a remote agent's store reset, or this agent's own. */
  lostQueueReports: LostQueueReport[];
}

/**
 * Queue volume that may have been lost because an agent's store was deleted (an empty data directory):
 * - `remote-agent-reset` (receiving side): a remote agent sent a new store epoch; what it had queued beyond
 *   `oldMark` under `oldEpoch` never arrived here and never will;
 * - `own-store-new` (sending side): this agent's store is new but the remote had seen a later incarnation of it:
 *   whatever the previous store held for the remote is gone.
 */
export interface LostQueueReport {
  kind: 'remote-agent-reset' | 'own-store-new';
  agent: string;
  at: string;
  oldEpoch: string | null;
  newEpoch: string;
  /** Highest sequence of the old epoch delivered here (`remote-agent-reset`); null when unknown. */
  oldMark: number | null;
  /** The incarnation of this agent the remote had seen (`own-store-new`); null otherwise. */
  knownIncarnation: number | null;
}

const INCARNATION_AREA = 'link-meta';
const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 5000;
const EXPORT_SETTLE_MS = 50;
const DEFAULT_WINDOW = 4096;
/**
 * Carrier publishes in flight. A carrier takes every committed entry not yet sent (up to the batch limits), so
 * below this nothing waits: each group commit goes out at once; at it, entries pile up into the next carrier.
 */
const MAX_CARRIERS_IN_FLIGHT = 64;
const BATCH_MAX_MESSAGES = 512;
const BATCH_MAX_BYTES = 64 * 1024;
const MAX_LOST_QUEUE_REPORTS = 10;
/** Carriers in flight with the single-message format (a remote from before batches): its old window. */
const LEGACY_WINDOW = 256;
/**
 * After the route-sync handshake, how long the sender still waits for the remote's capabilities before it takes
 * the remote for one from before batches (they are sent just before the handshake's answer, so normally they
 * are already here).
 */
const CAPABILITIES_GRACE_MS = 1000;
/** Route-sync message type code of `init` (first byte of the frame, routesync/codec.ts). */
const ROUTESYNC_INIT = 1;

/**
 * One cluster link, both halves of it on this node:
 * - outbound: an MQTT client to the remote cluster that carries this region's routes (its subscriptions
 *   intersected with the link's topics, as the agent's route-sync lane) and the messages the remote wants, from
 *   the durable queue, each acknowledged by the remote before it leaves the queue;
 * - inbound: the remote agents' routes, learned from their route-sync streams on this node's listener; a
 *   message published here that matches one goes into the queue.
 */
export class Link {
  readonly actor: string;
  private readonly logger: Logger;
  private sender!: HubDriver;
  private readonly receiver: HubDriver;
  private readonly remoteRoutes: RemoteRoutes;
  private client?: MqttClient;
  private generation = 0;
  private serverIndex = 0;
  private reconnectDelay = RECONNECT_MIN_MS;
  private reconnectTimer?: NodeJS.Timeout;
  private stopped = false;
  private connected = false;
  private inflight = 0;
  private carriersInFlight = 0;
  private pumpScheduled = false;
  /** Envelope format of the current connection: null until the remote's capabilities (or their absence) are known. */
  private envelopeVersion: typeof BATCH_VERSION | typeof LEGACY_VERSION | null = null;
  /** The remote announced `TWIN_VERSION`: possible twins are marked in carriers on this connection. */
  private remoteReadsTwins = false;
  /** Queued entries up to this sequence may have twins (queued before this agent came back as standby). */
  private twinsUpTo = 0;
  private capabilitiesTimer?: NodeJS.Timeout;
  private sentUpTo = 0;
  private readonly lostQueueReports: LostQueueReport[] = [];
  private state: LinkState = 'connecting';
  private lastError: string | null = null;
  /**
   * Why the link is misconfigured (the remote refused route sync, a password/TLS file cannot be read), or null. It
   * stays until a route-sync handshake succeeds: reconnecting alone does not clear it.
   */
  private misconfiguredBy: string | null = null;
  private connectedSince: Date | null = null;
  private bootstraps = 0;
  private lastBootstrapAt: Date | null = null;
  private readonly startedAt = Date.now();
  /** Local routes (filter → subscriber count) as the agent sees them, before intersection. */
  private readonly localFilters = new Map<string, number>();
  readonly counters = { forwarded: 0, received: 0, deduplicated: 0, bytesOut: 0, bytesIn: 0, controlBytesOut: 0, controlBytesIn: 0, originResets: 0, twinsMarked: 0, twinsDropped: 0 };

  private constructor(
    readonly config: LinkConfig,
    private readonly ctx: LinkContext,
    readonly queue: LinkQueue,
    private incarnation: number,
    private readonly memory: RemoteRouteMemory,
  ) {
    this.actor = agentActor(ctx.localCluster, ctx.nodeName);
    this.logger = ctx.logger.child({ link: config.name });
    ctx.metrics.linkStarted(config.name);
    this.sender = this.createSender(incarnation);
    this.remoteRoutes = new RemoteRoutes((op, filter) => memory.liveChanged(op, filter));
    this.receiver = new HubDriver(new RouteSync({
      cluster: ctx.localCluster, actor: ctx.localCluster, incarnation: 1, role: 'agent', policy: exportOwnLaneOnly,
      mirrorLocal: false, sink: this.remoteRoutes, ttlMs: config.routeTtlSeconds * 1000, onEvent: (e) => this.onReceiverEvent(e),
    }), (peer, frame) => this.respond(peer, frame));
    queue.onReady = () => this.schedulePump();
  }

  /**
   * `misconfiguredBefore`: why the link was misconfigured before its entry changed in the links file (a rejected
   * entry, or a running link the remote refused); the new link reports `misconfigured` until a handshake succeeds.
   */
  static async start(config: LinkConfig, ctx: LinkContext, localRoutes: Iterable<string>, misconfiguredBefore: string | null = null): Promise<Link> {
    const queue = await LinkQueue.open(config.name, ctx.store.area(`link-queue/${config.name}`), config.queue);
    const incarnation = await bumpIncarnation(ctx.store, config.name, 0);
    const memory = await RemoteRouteMemory.open(ctx.store.area(`link-routes/${config.name}`),
      (op, filter) => ctx.remoteRoute?.(config.name, op, filter), ctx.logger.child({ link: config.name }));
    memory.expireAfter(config.routeTtlSeconds * 1000);
    const link = new Link(config, ctx, queue, incarnation, memory);
    if (misconfiguredBefore !== null) link.markMisconfigured(`${misconfiguredBefore} (before the links file changed; kept until a route-sync handshake succeeds)`);
    for (const filter of localRoutes) link.localRoute('add', filter);
    if (ctx.exportReady) {
      // After the table, one route-sync batch window, so that the first lane sent already holds the routes.
      void ctx.exportReady.then(() => setTimeout(() => link.connect(), EXPORT_SETTLE_MS));
    } else {
      link.connect();
    }
    link.logger.info({ servers: config.servers, topics: config.topics, actor: link.actor, incarnation, queued: queue.depth }, 'link started');
    return link;
  }

  get name(): string { return this.config.name; }

  /** A local route appeared or went (first subscriber / last one): its intersections with the topics follow. */
  localRoute(op: 'add' | 'delete', filter: string): void {
    const count = this.localFilters.get(filter) ?? 0;
    if (op === 'add') this.localFilters.set(filter, count + 1);
    else if (count <= 1) this.localFilters.delete(filter);
    else this.localFilters.set(filter, count - 1);
    if (op === 'delete' && count === 0) return;
    for (const part of intersectAll(filter, this.config.topics)) {
      if (op === 'add') this.sender.subscribe(part);
      else this.sender.unsubscribe(part);
    }
  }

  /**
   * The remote's routes are not known yet: none restored, no remote agent's lane received since this start, and
   * the start was less than one route TTL ago (after that, what is known decides).
   */
  get awaitingRemoteRoutes(): boolean {
    return this.bootstraps === 0 && this.memory.restoredCount === 0 && Date.now() - this.startedAt < this.config.routeTtlSeconds * 1000;
  }

  /**
   * Takes over the remote routes another agent of the region held for this link (`RemoteRouteMemory.adopt`): they
   * count until the remote confirms them or a route TTL passes. Returns how many were new here.
   */
  adoptRemoteRoutes(filters: Iterable<string>): number {
    const added = this.memory.adopt(filters);
    if (added > 0) this.memory.expireAfter(this.config.routeTtlSeconds * 1000);
    return added;
  }

  /** Does a remote agent hold a route matching `topic`? */
  wants(topic: string): boolean {
    if (isLinkTopic(topic)) return false;
    return this.remoteRoutes.table.match(topic).size > 0 || this.memory.matches(topic);
  }

  enqueue(message: LinkMessage, durable: boolean): Promise<number> {
    return this.queue.append(message, { wait: durable });
  }

  /** A route-sync frame a remote agent published on this node. Throws on a malformed or refused frame. */
  receiveRoutes(peer: string, frame: Buffer): void {
    // Before the handshake's answer, so that the agent knows it may send envelope batches before it sends anything.
    if (frame[0] === ROUTESYNC_INIT) {
      this.countBytes('out', 'control', 1);
      this.ctx.respond(capabilitiesTopic(peer), Buffer.from([TWIN_VERSION]));
      void this.announceKnownEpoch(peer);
    }
    this.receiver.receive(peer, frame);
  }

  /**
   * Tells a remote agent that opens a route-sync stream which store epoch of it this side knows and the mark under it
   * (capabilities with the epoch appended): an agent whose store is new learns so even when the incarnation cannot
   * tell (a new store starts at incarnation 1). An agent from before this ignores the bytes after the first.
   */
  private async announceKnownEpoch(peer: string): Promise<void> {
    const dedup = this.ctx.dedup;
    if (!dedup || this.stopped) return;
    try {
      const known = await dedup.known(this.name, peer);
      if (known === null || this.stopped) return;
      const payload = encodeCapabilities(known);
      this.countBytes('out', 'control', payload.length);
      this.ctx.respond(capabilitiesTopic(peer), payload);
    } catch (err) {
      this.logger.warn({ agent: peer, err: (err as Error).message }, 'the store epoch known for a remote agent could not be read (not announced)');
    }
  }

  /**
   * A carrier publish of a remote agent (`$LINK/cluster/msg/<actor>`): each message not delivered before is
   * published here (`publish`), in order. Resolves when the carrier may be acknowledged (published and the dedup
   * mark durable); rejects when it must not be (the remote resends it). A malformed carrier is logged and resolves:
   * resending it would block the remote's queue forever.
   */
  async receiveMessages(actor: string, payload: Buffer, dedup: DedupWindow, publish: (message: LinkMessage, publishId: string) => Promise<void>): Promise<void> {
    let batch: EnvelopeBatch;
    try {
      batch = decodeBatch(payload);
      if (batch.originCluster !== this.name) throw new EnvelopeError(`envelope from cluster ${batch.originCluster} on ${actor}'s topic`);
    } catch (err) {
      this.logger.error({ agent: actor, err: (err as Error).message }, 'malformed forwarded message dropped');
      return;
    }
    this.countBytes('in', 'carrier', payload.length);
    const { entries } = batch;
    const twinIds = entries.some((e) => e.twinId !== undefined) ? entries.map((e) => e.twinId) : undefined;
    // Both twins of a message get one publish identity: a persistent session queues it once even past the window.
    const publishIdOf = (e: BatchEntry): string => (e.twinId === undefined ? linkedPublishId(this.name, actor, batch.epoch, e.seq) : linkedTwinPublishId(this.name, e.twinId));
    const verdict = await dedup.processBatch({ cluster: this.name, agent: actor, epoch: batch.epoch }, entries.map((e) => e.seq),
      (i) => publish(entries[i].message, publishIdOf(entries[i])), (reset) => this.remoteAgentReset(reset), twinIds);
    if (verdict.twins) {
      this.counters.twinsDropped += verdict.twins;
      this.logger.info({ agent: actor, twins: verdict.twins }, 'messages also sent by another agent of the remote region (a link moved there) delivered once');
    }
    if (verdict.duplicates > 0) {
      this.counters.deduplicated += verdict.duplicates;
      this.ctx.metrics.deduplicated.inc({ link: this.name }, verdict.duplicates);
    }
    if (verdict.delivered > 0) {
      this.counters.received += verdict.delivered;
      this.ctx.metrics.received.inc({ link: this.name }, verdict.delivered);
    }
  }

  /** The remote agent's connection to this node closed. */
  peerGone(peer: string): void {
    this.receiver.disconnect(peer);
  }

  status(): LinkStatus {
    this.refreshState();
    const outbound = this.sender.sync.peers().find((p) => p.peer === this.config.name)?.outbound;
    const table = this.remoteRoutes.table;
    return {
      name: this.name,
      state: this.state,
      lastError: this.state === 'misconfigured' ? this.misconfiguredBy : this.lastError,
      connectedSince: this.connectedSince?.toISOString() ?? null,
      server: this.connected ? this.currentServer() : null,
      actor: this.actor,
      incarnation: this.incarnation,
      routeSync: outbound?.state ?? 'down',
      routesSent: this.sender.sync.ownRoutes().length,
      routesReceived: table.size,
      routesRestored: this.memory.restoredCount,
      remoteAgents: this.receiver.sync.lanes().filter((l) => !l.local).length,
      bootstraps: this.bootstraps,
      lastBootstrapAt: this.lastBootstrapAt?.toISOString() ?? null,
      queue: { depth: this.queue.depth, bytes: this.queue.bytes, maxBytes: this.queue.maxBytes, oldestAgeMs: this.queue.oldestAgeMs(), whenFull: this.config.queue.whenFull, repeatsSkipped: this.queue.repeatsSkipped },
      envelopes: !this.connected || this.envelopeVersion === null ? null : this.envelopeVersion === BATCH_VERSION ? 'batch' : 'single',
      ...this.counters,
      lostQueueReports: [...this.lostQueueReports],
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.capabilitiesTimer);
    this.sender.stop();
    this.receiver.stop();
    this.memory.withdraw();
    await this.memory.flushed();
    this.queue.close();
    const client = this.client;
    this.client = undefined;
    this.generation++;
    if (client) await client.endAsync(true).catch(() => undefined);
    this.logger.info('link stopped');
  }

  // ── outbound connection ──────────────────────────────────────────────────────────────────────────────────

  private createSender(incarnation: number): HubDriver {
    const ttlMs = this.config.routeTtlSeconds * 1000;
    return new HubDriver(new RouteSync({
      cluster: this.config.name, actor: this.actor, incarnation, role: 'agent', policy: exportOwnLaneOnly,
      mirrorLocal: false, ttlMs, heartbeatMs: Math.min(5000, Math.floor(ttlMs / 3)), onEvent: (e) => this.onSenderEvent(e),
    }), (_peer, frame) => {
      if (!this.client) return;
      this.countBytes('out', 'control', frame.length);
      this.client.publish(routeTopic(this.actor), frame, { qos: 0 });
    });
  }

  private currentServer(): string {
    return this.config.servers[this.serverIndex % this.config.servers.length];
  }

  private connect(): void {
    if (this.stopped) return;
    const generation = ++this.generation;
    const server = this.currentServer();
    let options: IClientOptions;
    try {
      options = this.clientOptions(server);
    } catch (err) {
      this.markMisconfigured(`cannot prepare the connection to ${server}: ${(err as Error).message}`);
      this.fail(this.lastError ?? 'misconfigured', 'misconfigured');
      return;
    }
    if (this.misconfiguredBy === null) this.state = 'connecting';
    const client = mqtt.connect(options);
    this.client = client;
    // Nagle's algorithm would hold a carrier back until the previous one's TCP ACK: up to a round trip per carrier.
    if (client.stream instanceof Socket) client.stream.setNoDelay(true);
    client.on('connect', () => {
      if (generation !== this.generation) return;
      client.subscribe([responseTopic(this.actor), capabilitiesTopic(this.actor)], { qos: 0 }, (err, granted) => {
        if (generation !== this.generation) return;
        if (err || !granted || granted.some((g) => g.qos === 128)) {
          this.dropConnection(client, generation, `subscription to ${responseTopic(this.actor)} refused (the link user must be a superuser on the remote)`);
          return;
        }
        this.onConnected(server);
      });
    });
    client.on('message', (topic, payload) => {
      if (generation !== this.generation) return;
      if (topic !== responseTopic(this.actor) && topic !== capabilitiesTopic(this.actor)) return;
      this.countBytes('in', 'control', payload.length);
      if (topic === capabilitiesTopic(this.actor)) return this.onCapabilities(payload);
      try {
        this.sender.receive(this.config.name, payload);
      } catch (err) {
        this.dropConnection(client, generation, `route sync from ${server}: ${(err as Error).message}`);
        return;
      }
      this.refreshState();
      if (this.envelopeVersion === null && !this.capabilitiesTimer && this.routeSyncReady()) this.awaitCapabilities(generation);
    });
    client.on('error', (err) => {
      if (generation === this.generation) this.lastError = `${server}: ${err.message}`;
    });
    client.on('close', () => this.dropConnection(client, generation, this.lastError ?? `connection to ${server} closed`));
  }

  private clientOptions(server: string): IClientOptions {
    const colon = server.lastIndexOf(':');
    const { tls, username, passwordFile } = this.config;
    const options: IClientOptions = {
      host: server.slice(0, colon), port: Number(server.slice(colon + 1)), protocol: tls ? 'mqtts' : 'mqtt', protocolVersion: 4,
      // The link's name is part of it: two entries reaching one remote broker (one of them misconfigured) would
      // otherwise take each other's session over at every redial.
      clientId: `${this.config.clientIdPrefix}${this.ctx.localCluster}-${this.ctx.nodeName}-${this.config.name}`, clean: true,
      reconnectPeriod: 0, connectTimeout: 5000, keepalive: 15, resubscribe: false,
      username, password: passwordFile ? readFileSync(passwordFile, 'utf8').trim() : undefined,
    };
    if (tls) {
      options.ca = tls.caFile ? readFileSync(tls.caFile) : undefined;
      options.cert = tls.certFile ? readFileSync(tls.certFile) : undefined;
      options.key = tls.keyFile ? readFileSync(tls.keyFile) : undefined;
      options.servername = tls.serverName;
      options.rejectUnauthorized = tls.verify;
    }
    return options;
  }

  private onConnected(server: string): void {
    this.connected = true;
    this.reconnectDelay = RECONNECT_MIN_MS;
    this.lastError = null;
    if (this.misconfiguredBy === null) this.state = 'connecting';
    this.logger.info({ server }, 'link connected; route sync handshake');
    this.sender.connect(this.config.name);
    // Everything still in the queue may not have reached the remote: resend from the oldest (it de-duplicates).
    this.inflight = 0;
    this.carriersInFlight = 0;
    this.sentUpTo = 0;
    // Nothing is sent before the envelope format is known (the remote's capabilities, or the handshake without them).
    this.envelopeVersion = null;
    this.remoteReadsTwins = false;
    clearTimeout(this.capabilitiesTimer);
    this.capabilitiesTimer = undefined;
  }

  /** The remote accepts envelope batches (it sent its capabilities): they are used on this connection. */
  private onCapabilities(payload: Buffer): void {
    const version = payload.length > 0 ? payload[0] : 0;
    const known = decodeKnownEpoch(payload);
    if (known !== null && known.epoch !== this.ctx.store.epoch) this.ownStoreNew({ oldEpoch: known.epoch, oldMark: known.mark });
    if (version >= TWIN_VERSION) this.remoteReadsTwins = true;
    if (version < BATCH_VERSION || this.envelopeVersion === BATCH_VERSION) return;
    clearTimeout(this.capabilitiesTimer);
    this.capabilitiesTimer = undefined;
    this.envelopeVersion = BATCH_VERSION;
    this.pumpMessages();
  }

  /** The handshake is done without capabilities: after a grace period, the remote is taken for one from before batches. */
  private awaitCapabilities(generation: number): void {
    this.capabilitiesTimer = setTimeout(() => {
      this.capabilitiesTimer = undefined;
      if (generation !== this.generation || this.envelopeVersion !== null) return;
      this.envelopeVersion = LEGACY_VERSION;
      this.logger.warn({ server: this.currentServer() }, 'the remote did not announce envelope batches (an older version): sending one message per carrier, without store epoch');
      this.pumpMessages();
    }, CAPABILITIES_GRACE_MS);
  }

  private routeSyncReady(): boolean {
    return this.sender.sync.peers().find((p) => p.peer === this.config.name)?.outbound?.state === 'ready';
  }

  private dropConnection(client: MqttClient, generation: number, reason: string): void {
    if (generation !== this.generation) return;
    this.generation++;
    if (this.connected) this.logger.warn({ reason }, 'link connection lost');
    this.connected = false;
    this.connectedSince = null;
    this.sender.disconnect(this.config.name);
    client.removeAllListeners('close');
    client.end(true);
    this.fail(reason, 'disconnected');
  }

  /** The connection failed or could not be made: retry later (a misconfigured link stays so until a handshake succeeds). */
  private fail(reason: string, state: LinkState): void {
    this.lastError = reason;
    this.state = this.misconfiguredBy !== null ? 'misconfigured' : state;
    if (this.stopped) return;
    clearTimeout(this.reconnectTimer);
    this.serverIndex++;
    this.reconnectTimer = setTimeout(() => this.connect(), this.reconnectDelay);
    this.reconnectDelay = Math.min(RECONNECT_MAX_MS, this.reconnectDelay * 2);
  }

  // ── forwarding ───────────────────────────────────────────────────────────────────────────────────────────

  /** Committed entries become visible one microtask after another: pump once they all are (same loop turn). */
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    const pump = (): void => {
      this.pumpScheduled = false;
      this.pumpMessages();
    };
    // A sidecar: one turn later, after the transport wrote its acknowledgements of the copies just committed (also
    // scheduled with setImmediate, after this): a copy's carrier then leaves only once its node was told (or marks it).
    setImmediate(() => (this.ctx.copyUnacknowledged ? setImmediate(pump) : pump()));
  }

  /**
   * The entries queued so far may have twins: this agent comes back as standby for the link (it was probably away
   * beyond the grace, and the link moved): a copy it had queued but not acknowledged to the sending node before it
   * died was handed over to the new holder too. Its carriers mark them (with their origin identity) so that the remote
   * delivers one of each pair. Marking an entry without a twin costs only a record at the remote.
   */
  markQueuedAsTwins(): void {
    const queued = this.queue.peek(0, Number.MAX_SAFE_INTEGER);
    this.twinsUpTo = Math.max(this.twinsUpTo, queued.at(-1)?.seq ?? 0);
  }

  /** The entry with its twin identity when it may have a twin (handed over, or queued before a standby return). */
  private withTwinMark(entry: QueueEntry): QueueEntry | BatchEntry {
    const { originId, handedOver } = entry.message;
    if (originId === undefined) return entry;
    if (handedOver !== true && entry.seq > this.twinsUpTo && this.ctx.copyUnacknowledged?.(entry.message) !== true) return entry;
    this.counters.twinsMarked++;
    return { seq: entry.seq, message: entry.message, twinId: originId };
  }

  /** Sends every committed entry not yet sent, as carrier batches, within the window. */
  private pumpMessages(): void {
    const client = this.client;
    if (!client || !this.connected || this.envelopeVersion === null) return;
    const batches = this.envelopeVersion === BATCH_VERSION;
    const window = this.ctx.window ?? (batches ? DEFAULT_WINDOW : LEGACY_WINDOW);
    const maxCarriers = batches ? MAX_CARRIERS_IN_FLIGHT : LEGACY_WINDOW;
    const perCarrier = batches ? BATCH_MAX_MESSAGES : 1;
    while (this.inflight < window && this.carriersInFlight < maxCarriers) {
      const entries = this.queue.peek(this.sentUpTo, Math.min(perCarrier, window - this.inflight), BATCH_MAX_BYTES);
      if (entries.length === 0) return;
      this.sendCarrier(client, entries);
    }
  }

  /**
   * One carrier PUBLISH at QoS 1. That suffices: the remote acknowledges only after publishing and recording the
   * sequences, and it recognises a resend by them; QoS 2 would add a round trip and two store writes per carrier.
   */
  private sendCarrier(client: MqttClient, entries: QueueEntry[]): void {
    const generation = this.generation;
    const seqs = entries.map((e) => e.seq);
    this.sentUpTo = seqs[seqs.length - 1];
    this.inflight += entries.length;
    this.carriersInFlight++;
    const originCluster = this.ctx.localCluster;
    const frame = this.envelopeVersion === BATCH_VERSION
      ? encodeBatch({ originCluster, epoch: this.ctx.store.epoch, entries: this.remoteReadsTwins ? entries.map((e) => this.withTwinMark(e)) : entries }, this.config.compression)
      : encodeEnvelope({ originCluster, seq: entries[0].seq, message: entries[0].message }, this.config.compression);
    this.countBytes('out', 'carrier', frame.length);
    client.publish(messageTopic(this.actor), frame, { qos: 1 }, (err) => {
      if (generation !== this.generation) return;
      this.inflight -= entries.length;
      this.carriersInFlight--;
      if (err) return; // the connection is going: the entries stay and are resent after the reconnect
      this.counters.forwarded += entries.length;
      this.ctx.metrics.forwarded.inc({ link: this.name }, entries.length);
      this.queue.ackAll(seqs).catch((e: Error) => this.logger.error({ err: e.message, from: seqs[0], to: this.sentUpTo }, 'link queue acknowledgement not stored'));
      this.pumpMessages();
    });
  }

  // ── lost queue volume ────────────────────────────────────────────────────────────────────────────────────

  private remoteAgentReset(reset: OriginReset): void {
    this.counters.originResets++;
    this.ctx.metrics.originResets.inc({ link: this.name });
    this.addReport({ kind: 'remote-agent-reset', agent: reset.agent, at: reset.at.toISOString(), oldEpoch: reset.oldEpoch, newEpoch: reset.newEpoch, oldMark: reset.oldMark, knownIncarnation: null });
    this.logger.warn({ agent: reset.agent, oldEpoch: reset.oldEpoch, newEpoch: reset.newEpoch, oldMark: reset.oldMark },
      'remote link agent came back with a new store: its sequences start over; whatever it had queued beyond the old mark was lost with its old store');
  }

  /**
   * This agent's store is new but the remote knew an earlier one: from the store epoch the remote announced (with its
   * mark) or from a `stale_incarnation` answer. One report per link start; what a second source tells is added to it.
   */
  private ownStoreNew(known: { oldEpoch?: string; oldMark?: number; knownIncarnation?: number }): void {
    const report = this.lostQueueReports.find((r) => r.kind === 'own-store-new' && r.newEpoch === this.ctx.store.epoch);
    if (report) {
      report.oldEpoch ??= known.oldEpoch ?? null;
      report.oldMark ??= known.oldMark ?? null;
      report.knownIncarnation ??= known.knownIncarnation ?? null;
      return;
    }
    this.addReport({ kind: 'own-store-new', agent: this.actor, at: new Date().toISOString(), oldEpoch: known.oldEpoch ?? null, newEpoch: this.ctx.store.epoch,
      oldMark: known.oldMark ?? null, knownIncarnation: known.knownIncarnation ?? null });
    this.logger.warn({ oldEpoch: known.oldEpoch, oldMark: known.oldMark, knownIncarnation: known.knownIncarnation, epoch: this.ctx.store.epoch },
      'this link agent\'s store is new but the remote knew an earlier one: whatever the old store had queued for the remote was lost');
  }

  private addReport(report: LostQueueReport): void {
    this.lostQueueReports.push(report);
    if (this.lostQueueReports.length > MAX_LOST_QUEUE_REPORTS) this.lostQueueReports.shift();
  }

  // ── route sync events ────────────────────────────────────────────────────────────────────────────────────

  private onSenderEvent(event: RouteSyncEvent): void {
    if (event.type === 'stream_rejected') {
      if (event.result === 'stale_incarnation') {
        void this.renewIncarnation(event.knownIncarnation);
        return;
      }
      const reason = event.result === 'wrong_cluster'
        ? `the servers of link ${JSON.stringify(this.name)} belong to another cluster: the link name must be the remote's cluster name`
        : `route sync refused by the remote: ${event.result}`;
      this.logger.error({ result: event.result }, reason);
      this.markMisconfigured(reason);
    }
  }

  private onReceiverEvent(event: RouteSyncEvent): void {
    if (event.type === 'lane_new') {
      this.bootstraps++;
      this.lastBootstrapAt = new Date();
    }
    if (event.type === 'stream_refused') this.logger.warn({ ...event }, 'remote agent refused');
    else this.logger.info({ ...event }, `link route sync: ${event.type}`);
  }

  /** The remote saw a newer incarnation of this agent (its store was reset): continue above it. */
  private async renewIncarnation(known: number): Promise<void> {
    if (this.ctx.store.created && this.incarnation <= known) this.ownStoreNew({ knownIncarnation: known });
    this.incarnation = await bumpIncarnation(this.ctx.store, this.name, known);
    this.sender.stop();
    this.sender = this.createSender(this.incarnation);
    for (const [filter, count] of this.localFilters) {
      for (let i = 0; i < count; i++) for (const part of intersectAll(filter, this.config.topics)) this.sender.subscribe(part);
    }
    if (this.connected) this.sender.connect(this.config.name);
    this.logger.warn({ incarnation: this.incarnation }, 'link agent incarnation renewed above the one the remote knows');
  }

  /** Route-sync answers to a remote agent go to its response topic on this node. */
  private respond(peer: string, frame: Buffer): void {
    this.countBytes('out', 'control', frame.length);
    this.ctx.respond(responseTopic(peer), frame);
  }

  /**
   * Status of the link while connected: `connected` once the route-sync handshake is done (which also ends a
   * misconfiguration), else `connecting` (or still `misconfigured`). Called after every route-sync answer, so
   * `connectedSince` is the time the handshake completed.
   */
  refreshState(): void {
    if (!this.connected) return;
    if (this.routeSyncReady()) {
      if (this.misconfiguredBy !== null) this.logger.info({ was: this.misconfiguredBy }, 'link no longer misconfigured: route-sync handshake succeeded');
      this.misconfiguredBy = null;
      this.state = 'connected';
      this.connectedSince ??= new Date();
      return;
    }
    this.connectedSince = null;
    this.state = this.misconfiguredBy !== null ? 'misconfigured' : 'connecting';
  }

  /** Why the link is misconfigured now, or null. */
  get misconfiguration(): string | null {
    return this.misconfiguredBy;
  }

  private markMisconfigured(reason: string): void {
    this.misconfiguredBy = reason;
    this.lastError = reason;
    this.state = 'misconfigured';
    this.connectedSince = null;
  }

  /**
   * Payload bytes of the `$LINK` publishes of this link, both halves: `carrier` (forwarded messages: bytesOut,
   * bytesIn) or `control` (route sync and capabilities: controlBytesOut, controlBytesIn). MQTT framing excluded.
   */
  countBytes(direction: 'in' | 'out', kind: 'carrier' | 'control', bytes: number): void {
    const { metrics } = this.ctx;
    if (kind === 'carrier' && direction === 'out') this.counters.bytesOut += bytes;
    else if (kind === 'carrier') this.counters.bytesIn += bytes;
    else if (direction === 'out') this.counters.controlBytesOut += bytes;
    else this.counters.controlBytesIn += bytes;
    const counter = kind === 'carrier' ? (direction === 'out' ? metrics.bytesOut : metrics.bytesIn) : (direction === 'out' ? metrics.controlBytesOut : metrics.controlBytesIn);
    counter.inc({ link: this.name }, bytes);
  }
}

async function bumpIncarnation(store: NodeStore, link: string, atLeast: number): Promise<number> {
  const area = store.area(INCARNATION_AREA);
  const stored = await area.get(`inc:${link}`);
  const next = Math.max(stored ? Number(stored.readBigUInt64BE()) : 0, atLeast) + 1;
  const value = Buffer.alloc(8);
  value.writeBigUInt64BE(BigInt(next));
  await area.put(`inc:${link}`, value);
  return next;
}

/** Capabilities with the store epoch the remote knows for this agent: version (1 B), epoch (8 B), mark (u64). */
function encodeCapabilities(known: { epoch: string; mark: number }): Buffer {
  const payload = Buffer.alloc(17);
  payload[0] = TWIN_VERSION;
  Buffer.from(known.epoch, 'hex').copy(payload, 1);
  payload.writeBigUInt64BE(BigInt(known.mark), 9);
  return payload;
}

/** The known epoch and mark of capabilities that carry them; null for the plain one-byte form. */
function decodeKnownEpoch(payload: Buffer): { epoch: string; mark: number } | null {
  if (payload.length < 17) return null;
  return { epoch: payload.subarray(1, 9).toString('hex'), mark: Number(payload.readBigUInt64BE(9)) };
}

/**
 * The publish identity of a message that came over a link: stable across every resend of it by its origin agent, so
 * the stores of the nodes it is published on queue it for a session only once (store README, "QoS 2 receive state")
 * — a carrier resent after a partial failure or a crash of this side between the publish and the de-dup mark is then
 * published again without reaching a persistent session twice.
 */
export function linkedPublishId(link: string, actor: string, epoch: string | null, seq: number): string {
  return `link:${link}/${actor}/${epoch ?? 'v1'}:${seq}`;
}

/** The publish identity of a twin-marked message: the same for both twins (sent by two agents of the origin region). */
export function linkedTwinPublishId(link: string, twinId: string): string {
  return `link:${link}/twin:${twinId}`;
}
