import { readFileSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { Aedes, AedesPublishPacket, Client } from 'aedes';
import type { AdminServer } from '../admin/server.js';
import type { BrokerMetrics } from '../admin/metrics.js';
import { followNodeSubscriptions, LocalRoutes } from '../cluster/local-routes.js';
import type { Logger } from '../log/logger.js';
import type { Security } from '../mqtt/security.js';
import type { NodeStore, StoredPacket } from '../store/index.js';
import { linkFingerprint, LinksFileError, parseLinksFile, type LinkConfig, type LinkConfigIssue } from './config.js';
import { DedupWindow } from './dedup.js';
import { Link, type LinkContext, type LinkStatus } from './link.js';
import { LinkMetrics } from './metrics.js';
import { LinkQueueFullError, type LinkMessage } from './queue.js';
import { isLinkTopic, parseControlTopic, type ControlTopic } from './topics.js';
import { embeddedKeeper, embeddedMarkerFilter, embeddedStandbyFilter, holderMarkerFilter, isLinkRouteId, linkRouteId, parseEmbeddedMarker, parseEmbeddedStandby, parseHolderMarker, stickyHolder, type ArrivedCopy, type LinkRegion, type RegionMessage, type RegionRoutes, type SidecarRegion } from './region.js';
import { LANE_COMPLETE_ROUTE } from '../routesync/lane-store.js';
import { TakeoverDedup } from './takeover-dedup.js';
import { IntakeMarks, type CopyOrigin, type IntakeMessage } from './intake-marks.js';
import type { CopyIdentity, OriginIdentity } from '../cluster/forward-codec.js';
import { RetainedSync, type RetainedCopy } from './retained-sync.js';

/** What every agent has: its identity in the local cluster, a store, logging, metrics and the admin endpoint. */
export interface LinkAgentBase {
  clusterName: string;
  nodeName: string;
  logger: Logger;
  metrics: BrokerMetrics;
  admin: AdminServer;
  store: NodeStore;
}

/** An agent embedded in a broker node. */
export interface LinkAgentHost extends LinkAgentBase {
  aedes: Aedes;
  security: Security;
  /**
   * The regional cluster this node is part of; absent on a standalone node. With it, the links export the whole
   * region's routes (not only this node's) and the remote routes become this node's routes in the region.
   */
  region?: LinkRegion;
}

/** The sidecar agent (`meridian link-agent`): no broker of its own, a member of its regional cluster. */
export interface LinkSidecarHost extends LinkAgentBase {
  region: SidecarRegion;
}

/** How the agent reaches the local cluster: aedes on a node, cluster forwarding for a sidecar. */
interface LocalSide {
  /** Publishes in the local cluster as a local client would; `linked`: it came over a link. */
  publish(message: RegionMessage, linked: boolean): Promise<void>;
  routes?: RegionRoutes;
  /** Resolves when the regional table is complete (node or sidecar): routes are exported and linked messages published after it. */
  exportReady?: Promise<void>;
}

export interface LinkAgentOptions {
  file: string;
  /** Re-read interval of the links file besides change events. Default 2000 ms. */
  pollIntervalMs?: number;
  /**
   * Sidecar: how long an agent holding links may be away before they move to another agent (a restart within it
   * keeps them where they were). Default: `stickyGraceDefaultMs(routeTtlMs)`. Must be below the route TTL.
   */
  moveGraceMs?: number;
  /** Sidecar: the regional route TTL (a dead agent's lane, and its routes, expire after it). Default 15 s. */
  routeTtlMs?: number;
}

/** Two route-sync heartbeats of the agent's lane (heartbeat = TTL / 3): the default grace before a link moves. */
export function stickyGraceDefaultMs(routeTtlMs: number): number {
  return Math.floor((2 * routeTtlMs) / 3);
}

type Done = (err?: Error | null) => void;
/** The node's own publish handling (cluster forwarding, shared subscriptions) that runs after the link's. */
type LocalPublished = (done: Done) => void;

interface RemoteAgent {
  link: string;
  actor: string;
}

/**
 * Why the links file is not applied (unreadable, not YAML, not a `links:` list); the links of the last good file keep
 * running. `path`: the file; `reason`: what is wrong (with the key path inside the file when there is one).
 */
export interface LinksFileProblem {
  path: string;
  reason: string;
  /** When this problem was first seen. */
  since: string;
}

/** Whether this agent serves a link (sidecars share the links of a region: one active agent per link). */
export type LinkRole = 'active' | 'standby';

/** A link's running state besides its `Link`: role, the dial gate, the remote filters it would hold in the region. */
interface LinkSlot {
  role: LinkRole;
  /** The Link dials its remote once this opens (active, or standby with a queue to drain). */
  openGate: () => void;
  gateOpen: boolean;
  /** The `$link/<name>` routes are in the region (active, or standby until the release delay passed). */
  inRegion: boolean;
  /** The union of the remote agents' filters, held in the region as `$link/<name>` routes only while active. */
  remoteFilters: Set<string>;
  /** When the last message was queued (a draining standby link is recycled only after a quiet period). */
  lastEnqueueAt: number;
  /** The holder term of the link as this agent last held it (region.ts `holderMarkerFilter`), 0 if never held. */
  term: number;
  /** The term of the holder marker this agent has in the region for the link, if any. */
  markedTerm?: number;
  /** Embedded agent: its standby marker (`embeddedStandbyFilter`) is in the region (it yields the link). */
  standbyMarked?: boolean;
}

/** A link's role as persisted (`link-roles`), with the term under which this agent last held the link. */
interface StoredRole {
  role: LinkRole;
  term: number;
}

/** The liveness record a sidecar rewrites every second (`link-alive`): read at its next start. */
interface AliveRecord {
  at: number;
  /** The other agents it saw alive then. */
  peers: string[];
  /** Embedded agent: written by a clean stop (its markers were withdrawn, another node may have taken its links). */
  stopped?: boolean;
}

/**
 * Roles are looked at again this long after an agent peer disconnected (its links move only after the grace,
 * `moveGraceMs`, counted from the disconnect) and AGENT_JOIN_SETTLE_MS after one connected.
 */
const AGENT_CHANGE_SETTLE_MS = 500;
const AGENT_JOIN_SETTLE_MS = 50;
/**
 * An agent that stopped being active keeps its routes until the new active agent's control route is in its copy of
 * the regional table, plus this margin for the other nodes to learn it too; at most CONTROL_RELEASE_MAX_MS.
 */
const CONTROL_RELEASE_MARGIN_MS = 100;
const CONTROL_RELEASE_MAX_MS = 3000;
const CONTROL_ROUTE_ID = linkRouteId('$control');
/** How often a standby link's queue is checked (drained to the remote, then the connection closed). */
const DRAIN_CHECK_MS = 500;
const DRAIN_QUIET_MS = 2000;
const ROLE_AREA = 'link-roles';
/** The agent's liveness record (`AliveRecord`): when it was last alive and which agent peers it had. */
const ALIVE_AREA = 'link-alive';
const ALIVE_KEY = 'self';
const ALIVE_WRITE_MS = 1000;
/** A fresh agent (no stored role) waits this long after the regional table for its agent peers before it assigns. */
const FIRST_ASSIGN_SETTLE_MS = 1500;
/** A returning agent that was away beyond the grace joins only this long after its old lane expired. */
const OLD_LANE_EXPIRY_MARGIN_MS = 1000;
const ROUTES_KNOWN_POLL_MS = 50;
/** Embedded agent: a change of the region's markers is looked at on the next timer turn (0), with the others of its lane. */
const EMBEDDED_CHECK_SETTLE_MS = 0;
/** A keeper that stops cleanly waits at most this long for a standby node to take its links over (its marker appears). */
const EMBEDDED_STOP_HANDOVER_MS = 1000;
/** ... then at most this long for its queues of those links to drain to the remotes. */
const EMBEDDED_STOP_DRAIN_MS = 3000;
/** Embedded agent: `$link/...` routes another agent dropped this recently are adopted when this node takes the link. */
const ADOPT_GONE_WINDOW_MS = 5000;

/** Publishes through the node's aedes; a linked packet is marked so that neither the agent nor cluster forwarding sends it to a link again. */
function publishThroughAedes(host: LinkAgentHost, message: RegionMessage, linked: boolean): Promise<void> {
  const packet: { cmd: 'publish'; topic: string; payload: Buffer; qos: 0 | 1 | 2; retain: boolean; dup: boolean; publishId?: string } = {
    cmd: 'publish', topic: message.topic, payload: message.payload, qos: message.qos, retain: message.retain, dup: false,
  };
  if (message.publishId !== undefined) packet.publishId = message.publishId;
  if (linked) {
    linkedPackets.add(packet);
    host.region?.markLinked(packet);
  }
  return new Promise((resolve, reject) => {
    host.aedes.publish(packet as AedesPublishPacket, (err?: Error) => (err ? reject(err) : resolve()));
  });
}

/**
 * Test only (env MERIDIAN_TEST_AGENT_CRASH_AFTER_QUEUED=<internal topic>): a sidecar SIGKILLs itself once a first (not handed
 * over) copy on that topic is durable in its link queues, before acknowledging it to the node and before sending it:
 * the copy is then handed over to the agent the link moves to (a twin, `multi-agent-twins.test.ts`).
 */
const crashAfterQueuedTopic = process.env.MERIDIAN_TEST_AGENT_CRASH_AFTER_QUEUED || undefined;
/** With it, the copy is held unacknowledged this long first (as when it waits for another link; its carrier reaches the remote meanwhile). */
const crashAfterQueuedDelayMs = Number(process.env.MERIDIAN_TEST_AGENT_CRASH_DELAY_MS ?? 0);

/** A cluster-forwarded copy as the sidecar passes it on. */
type ForwardedCopy = RegionMessage & { linked?: boolean; copy?: CopyIdentity; origin?: OriginIdentity };
/** Where a queued copy came from: its node and its number in that node's delivery order (`inHandling`). */
interface CopyArrival { node: string; index: number }
const COPY_ARRIVAL = Symbol('copy arrival');
type ArrivalTagged = LinkMessage & { [COPY_ARRIVAL]?: CopyArrival };

/** Packets published from a link on this node: delivered locally, never queued for any link (no loops). */
const linkedPackets = new WeakSet<object>();

/**
 * The link agent, embedded in a node or running as a sidecar: the links file (validated, hot-reloaded), one Link per remote cluster, the
 * node's routes fed to every link, the `published` hook that queues what remote clusters want, and the handler of
 * the `$LINK/...` control messages remote agents publish on this node. See README.md in this directory.
 */
export class LinkAgent {
  private readonly links = new Map<string, Link>();
  private readonly fingerprints = new Map<string, string>();
  private issues: LinkConfigIssue[] = [];
  private disabled: LinkConfig[] = [];
  private fileError: LinksFileProblem | null = null;
  private lastText?: string;
  private watcher?: FSWatcher;
  private pollTimer?: NodeJS.Timeout;
  private debounce?: NodeJS.Timeout;
  private applying: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly localRoutes: LocalRoutes;
  /** The routes the links export, as filter → number of routes (owner, route id) on it. */
  private readonly exported = new Map<string, number>();
  private unwatchRegion?: () => void;
  private readonly dedup: DedupWindow;
  /** The window as carriers use it: remembers what was delivered, for carriers handed over after a link moved. */
  private readonly takeover: TakeoverDedup;
  private readonly metrics: LinkMetrics;
  private readonly linked = linkedPackets;
  /** Embedded agent: copies queued as they arrived from another node (`copyArrived`), until `published` takes them. */
  private readonly arrivals = new WeakMap<object, Promise<unknown> | null>();
  private readonly remoteAgents = new Map<Client, RemoteAgent>();
  private readonly logger: Logger;
  private readonly slots = new Map<string, LinkSlot>();
  /** Links being restarted closed (drained standby): copies for them wait instead of being missed. */
  private readonly restarting = new Map<string, Promise<void>>();
  /** Set for a sidecar: roles are assigned among the region's live agents. */
  private sidecarRegion?: SidecarRegion;
  private rolesAssigned = false;
  private roleTimer?: NodeJS.Timeout;
  private drainTimer?: NodeJS.Timeout;
  private unwatchAgents?: () => void;
  private intakeMarks?: IntakeMarks;
  /** Retained messages across links (a sidecar reads its region's retained messages from `RegionRetained`). */
  private retainedSync?: RetainedSync;
  /** Copies that waited for a link's remote routes (sidecar after a wiped store or an empty restore). */
  private heldForRoutes = 0;
  /**
   * Per node, the arrival numbers of its forwarded copies and control messages being handled, ascending. The transport
   * acknowledges a copy only once it and every earlier message of its node are handled: until then a carrier marks
   * the copy a twin (this agent may die first, and the node would hand the copy over).
   */
  private readonly inHandling = new Map<string, Set<number>>();
  private copyArrivals = 0;
  /** Sidecar: who holds each link in the region (holder markers of the regional table): link → agent → term. */
  private readonly holders = new Map<string, Map<string, number>>();
  /** Sidecar: agents seen alive once and gone now, with when they went (their links move after the grace). */
  private readonly absentSince = new Map<string, number>();
  private agentsSeen = new Set<string>();
  /** False while the first links start after an absence beyond the grace: stored active roles start as standby. */
  private resumeRoles = true;
  /** No stored role at all: the first assignment waits a little for agent peers starting at the same time. */
  private freshStart = true;
  /** Sidecar: it joins its cluster not before this time (its previous lane must have expired). */
  private joinNotBefore = 0;
  private aliveTimer?: NodeJS.Timeout;
  private graceTimer?: NodeJS.Timeout;
  private readonly waitingLogged = new Set<string>();
  /** Embedded agent in a cluster: other nodes' embedded markers (`embeddedMarkerFilter`): link → node → term. */
  private readonly embeddedMarkers = new Map<string, Map<string, number>>();
  /** Embedded agent in a cluster: the other nodes that yield each link (their standby markers): link → nodes. */
  private readonly embeddedStandbys = new Map<string, Set<string>>();
  /** Embedded agent: links another agent of the region serves, with the reason shown as `lastError`. */
  private readonly conflicts = new Map<string, string>();
  private readonly conflictsLogged = new Set<string>();
  private embeddedCheckTimer?: NodeJS.Timeout;
  /** Embedded agent: back from a short absence (its lane did not expire): stored active links keep their marker. */
  private embeddedResume = true;
  /** `$link/<name>` routes of other agents that went lately (link → filter → when): adopted when taking a link over. */
  private readonly recentlyGone = new Map<string, Map<string, number>>();
  /** Per link that awaits its remote's routes and holds copies: resolves when it knows them (or is stopped). */
  private readonly routesGates = new Map<string, Promise<void>>();
  private constructor(
    private readonly host: LinkAgentBase,
    private readonly local: LocalSide,
    private readonly options: LinkAgentOptions,
    /** The broker the agent is embedded in; absent for a sidecar. */
    private readonly embedded?: LinkAgentHost,
  ) {
    this.logger = host.logger.child({ component: 'link' });
    this.dedup = new DedupWindow(host.store.area('link-dedup'));
    this.takeover = new TakeoverDedup(this.dedup, host.store.area('link-dedup'));
    this.metrics = new LinkMetrics(host.metrics, () => this.statuses().filter((s): s is LinkStatus & { role: LinkRole } => 'queue' in s),
      () => ({ file: options.file, failing: this.fileError !== null }));
    this.localRoutes = new LocalRoutes((op, filter) => this.exportChanged(op, filter));
  }

  /** The agent embedded in a broker node (`meridian broker --links`). */
  static async start(host: LinkAgentHost, options: LinkAgentOptions): Promise<LinkAgent> {
    const agent = new LinkAgent(host, {
      publish: (message, linked) => publishThroughAedes(host, message, linked), routes: host.region, exportReady: host.region?.tableReady,
    }, options, host);
    const persistence = host.store.persistence;
    const copyOf = (packet: StoredPacket | undefined): RetainedCopy | undefined => {
      if (!packet || typeof packet.topic !== 'string') return undefined;
      const payload = packet.payload ?? Buffer.alloc(0);
      return { topic: packet.topic, payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload), qos: (packet.qos ?? 0) as 0 | 1 | 2 };
    };
    const retained = {
      matching: (filter: string) => persistence.matchRetained(filter).map(copyOf).filter((c): c is RetainedCopy => c !== undefined),
      get: (topic: string) => copyOf(persistence.getRetained(topic)),
    };
    agent.retainedSync = await RetainedSync.open(host.store.area('link-retained'), retained, agent.logger);
    if (host.region) agent.trackRegionRoutes(host.region);
    else followNodeSubscriptions(agent.localRoutes, host.aedes, host.store.persistence);
    if (host.region?.onCopyArrival) {
      agent.intakeMarks = await IntakeMarks.open(host.store.area('link-intake'), agent.logger);
      host.region.onCopyArrival((packet, copy) => agent.copyArrived(packet, copy));
    }
    agent.trackRemoteAgents(host.aedes);
    if (host.region) await agent.decideEmbeddedResume();
    await agent.run();
    if (host.region) agent.guardEmbedded(host.region);
    return agent;
  }

  /** The sidecar agent (`meridian link-agent`): messages reach it as cluster-forwarded copies (`forwarded`). */
  static async startSidecar(host: LinkSidecarHost, options: LinkAgentOptions): Promise<LinkAgent> {
    // Carriers and the retained sync wait for the region's retained messages too (suppression and sync read them).
    const exportReady = Promise.all([host.region.tableReady, host.region.retained.ready]).then(() => undefined);
    const agent = new LinkAgent(host, { publish: (message, linked) => host.region.publish(message, linked), routes: host.region, exportReady }, options);
    agent.sidecarRegion = host.region;
    const sync = await RetainedSync.open(host.store.area('link-retained'), host.region.retained, agent.logger);
    // The region's agents hold different links: each tells the others what came over its links (never sent onwards).
    sync.onOrigin = (topic, origin) => host.region.retained.shareOrigin(topic, origin);
    host.region.retained.onOrigin = (topic, origin) => void sync.adoptOrigin(topic, origin);
    agent.retainedSync = sync;
    agent.intakeMarks = await IntakeMarks.open(host.store.area('link-intake'), agent.logger);
    agent.trackRegionRoutes(host.region);
    await agent.decideResume();
    await agent.run();
    agent.resumeRoles = true;
    agent.shareLinks(host.region);
    return agent;
  }

  private get routeTtlMs(): number { return this.options.routeTtlMs ?? 15_000; }
  private get moveGraceMs(): number { return this.options.moveGraceMs ?? stickyGraceDefaultMs(this.routeTtlMs); }

  /**
   * A sidecar back from an absence resumes its stored roles (its links did not move) when it was away for less than
   * the grace or had no agent peers. Otherwise another agent has probably taken its links over: it starts them as
   * standby and joins the cluster only once its previous lane has expired, so that no copy meant for the new holder
   * is resent to it (`joinDelayMs`).
   */
  private async decideResume(): Promise<void> {
    const raw = await this.host.store.area(ALIVE_AREA).get(ALIVE_KEY).catch(() => undefined);
    const record = raw ? parseAliveRecord(raw) : undefined;
    if (!record) return;
    const awayMs = Date.now() - record.at;
    // The other agents count the absence until this one reconnects to them, later than now: keep a margin.
    if (record.peers.length === 0 || awayMs + ALIVE_WRITE_MS <= this.moveGraceMs) {
      this.logger.info({ awayMs, graceMs: this.moveGraceMs, peers: record.peers }, 'link agent back within the grace (or alone): resuming its link roles');
      return;
    }
    this.resumeRoles = false;
    this.joinNotBefore = record.at + ALIVE_WRITE_MS + this.routeTtlMs + OLD_LANE_EXPIRY_MARGIN_MS;
    this.logger.info({ awayMs, graceMs: this.moveGraceMs, peers: record.peers, joinInMs: this.joinDelayMs() },
      'link agent was away beyond the grace: its links start as standby, it joins once its previous lane expired');
  }

  /** How long the sidecar must wait before joining its cluster (see `decideResume`). */
  joinDelayMs(): number {
    return Math.max(0, this.joinNotBefore - Date.now());
  }

  private writeAlive(region: SidecarRegion): void {
    const record: AliveRecord = { at: Date.now(), peers: region.liveAgents().filter((agent) => agent !== this.host.nodeName) };
    this.host.store.area(ALIVE_AREA).put(ALIVE_KEY, Buffer.from(JSON.stringify(record), 'utf8'))
      .catch((err: Error) => this.logger.debug({ err: err.message }, 'liveness record not written'));
  }

  private async run(): Promise<void> {
    this.host.admin.route('GET', '/api/v1/links', () => ({ status: 200, body: this.describe() }));
    this.reload();
    await this.applying;
    this.watch();
    if (this.local.routes) this.markLaneCompleteWhenRoutesKnown(this.local.routes);
  }

  /**
   * The aedes `published` hook, ahead of the node's own (`local`). Control messages from remote agents are
   * handled here only. Any other message goes, once per link whose remote routes match it, into that link's
   * queue; a QoS ≥ 1 publisher is acknowledged only once every copy is durable.
   */
  published(packet: AedesPublishPacket, client: Client | null, local: LocalPublished, done: Done): void {
    if (client && isLinkTopic(packet.topic)) {
      // A link this node yields to a sidecar: the region forwards the remote agent's publish by the sidecar's control routes.
      if (this.controlledBySidecar(packet.topic)) return local(done);
      return this.onControl(packet, client, done);
    }
    const embedded = this.embedded as LinkAgentHost;
    if (this.linked.has(packet) || embedded.region?.isLinked(packet) || isLinkTopic(packet.topic)) return local(done);
    if (packet.retain) this.retainedSync?.localPublish(packet.topic);
    const message: LinkMessage = {
      topic: packet.topic, payload: typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload,
      qos: packet.qos, retain: packet.retain, publisherClientId: client?.id ?? '', timestamp: Date.now(),
    };
    // A pending QoS 2 message published again after a crash keeps its identity: each link queue takes it once.
    const publishId = (packet as { publishId?: unknown }).publishId;
    if (typeof publishId === 'string') message.publishId = publishId;
    const arrived = this.arrivals.get(packet);
    this.arrivals.delete(packet);
    // A client's publish on a node that yields a link reaches the link's keeper by the region's routes: not queued here.
    const queued = arrived !== undefined ? arrived : this.enqueue(message, undefined, client ? (link) => !this.yields(link.name) : undefined);
    if (queued === null) return local(done);
    if (packet.qos === 0) return local(done);
    const handled = new Promise<void>((resolve, reject) => local((err) => (err ? reject(err) : resolve())));
    Promise.all([queued, handled]).then(() => done(), (err: Error) => this.refusePublish(packet, client, err, done));
  }

  /**
   * Embedded agent in a cluster: a QoS ≥ 1 copy another node forwarded here is queued as it arrives, with its copy
   * identity, so that a copy resent to this node's next incarnation is skipped by the links that queued it (intake
   * marks). Queued here rather than in `published`: aedes' asynchronous steps before that hook need not keep one
   * node's copies in arrival order, and the marks rely on it. `published` then waits for this queuing.
   */
  private copyArrived(packet: ArrivedCopy, copy: CopyOrigin): void {
    if (packet.qos === 0 || packet.retain || isLinkTopic(packet.topic)) return;
    const message: LinkMessage = { topic: packet.topic, payload: packet.payload, qos: packet.qos, retain: false, publisherClientId: '', timestamp: Date.now() };
    if (packet.publishId !== undefined) message.publishId = packet.publishId;
    const queued = this.enqueue(message, copy);
    queued?.catch(() => undefined); // handled in `published`
    this.arrivals.set(packet, queued);
  }

  /**
   * A message that reached a sidecar agent as a cluster-forwarded copy: a control message of a remote agent (the
   * nodes let only superusers publish `$` topics), or a message some link may want. Resolves once it is handled
   * (for QoS ≥ 1: durable in every link queue that wants it), which is when the node that sent it may acknowledge
   * its publisher.
   */
  async forwarded(message: ForwardedCopy, from?: string): Promise<void> {
    if (from === undefined) return this.handleForwarded(message);
    // Numbered synchronously: calls come in the node's delivery order.
    const arrival = ++this.copyArrivals;
    const handling = this.inHandling.get(from) ?? new Set<number>();
    this.inHandling.set(from, handling.add(arrival));
    try {
      return await this.handleForwarded(message, { node: from, index: arrival });
    } finally {
      handling.delete(arrival);
      if (handling.size === 0 && this.inHandling.get(from) === handling) this.inHandling.delete(from);
    }
  }

  /** Is the copy this queued message came from still unacknowledged to its node (it, or an earlier message of that node, being handled)? */
  private copyUnacknowledged(message: LinkMessage): boolean {
    const arrival = (message as ArrivalTagged)[COPY_ARRIVAL];
    if (arrival === undefined) return false;
    const oldest = this.inHandling.get(arrival.node)?.values().next().value;
    return oldest !== undefined && oldest <= arrival.index;
  }

  private async handleForwarded(message: ForwardedCopy, arrival?: CopyArrival): Promise<void> {
    const from = arrival?.node;
    if (isLinkTopic(message.topic)) return this.handleControl(message.topic, message.payload, undefined, message.copy?.handedOver === true);
    const { linked, timestamp, copy, origin: publishOrigin, ...fields } = message;
    if (linked) return;
    if (fields.retain) this.retainedSync?.localPublish(message.topic);
    // A standby link being restarted closed must not miss a copy (the cluster acknowledges it anyway).
    if (this.restarting.size > 0) await Promise.all(this.restarting.values());
    if (this.stopped) throw new Error(`'${message.topic}' not queued: the link agent is stopping`);
    const origin = copy && from !== undefined ? { node: from, ...copy } : undefined;
    const entry: LinkMessage = { ...fields, timestamp: timestamp ?? Date.now() };
    // The publish's identity in the region and whether the copy was handed over: the carrier marks possible twins with it.
    if (publishOrigin !== undefined && message.qos > 0) entry.originId = `${publishOrigin.brokerId}:${publishOrigin.counter}`;
    if (copy?.handedOver === true) entry.handedOver = true;
    // In memory only (a symbol is neither stored nor sent); kept by the queue's copy of the entry.
    if (entry.originId !== undefined && arrival !== undefined) (entry as ArrivalTagged)[COPY_ARRIVAL] = arrival;
    await this.queueCopy(message, entry, origin);
    if (crashAfterQueuedTopic === message.topic && copy?.handedOver !== true) {
      if (crashAfterQueuedDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, crashAfterQueuedDelayMs));
      process.kill(process.pid, 'SIGKILL');
    }
  }

  /** `forwarded`'s queueing: at once for the links that know their remote routes, per link when its gate opens. */
  private async queueCopy(message: RegionMessage, entry: LinkMessage, origin: CopyOrigin | undefined): Promise<void> {
    const gates = this.untilRemoteRoutesKnown(message.topic);
    const queued = this.enqueue(entry, origin, (link) => !gates.has(link.name));
    // Each held part queues for its one link when that link's gate opens (a rejection leaves the copy
    // unacknowledged: resent to the next incarnation, the links that queued it skip it by the intake marks).
    const held = [...gates].map(([name, gate]) => gate.then(() => {
      if (this.stopped) throw new Error(`'${message.topic}' not queued for link '${name}': the link agent is stopping`);
      const part = this.enqueue(entry, origin, (link) => link.name === name);
      return message.qos > 0 ? part : undefined;
    }));
    await Promise.all([message.qos > 0 ? queued : null, ...held]);
  }

  /**
   * A copy reaches a sidecar only through a `$link/<name>` route of it in the regional table: some remote wanted it.
   * While an active link does not know its remote's routes yet (a wiped store or an empty restore: nothing
   * restored, no remote agent's lane since the start), its `wants()` would drop it, so for that link the copy waits
   * (unacknowledged) until the remote's routes are here, at most one route TTL after the link's start
   * (`Link.awaitingRemoteRoutes`); the other links take it at once. Returns the gates the copy waits at, per link.
   */
  private untilRemoteRoutesKnown(topic: string): Map<string, Promise<void>> {
    // Once a link holds a copy, every later one waits behind it for that link and all go on together, in arrival
    // order (one promise per link: its reactions run in registration order): a newer copy must not be queued
    // before an older held one.
    const gates = new Map(this.routesGates);
    if (this.stopped) return gates;
    for (const link of this.linksAwaitingRemoteRoutes()) {
      if (gates.has(link.name) || link.wants(topic)) continue;
      this.logger.info({ topic, link: link.name }, 'copies wait for the remote routes (none restored, none received yet)');
      const gate = (async (): Promise<void> => {
        while (!this.stopped && this.linksAwaitingRemoteRoutes().includes(link)) await new Promise((resolve) => setTimeout(resolve, ROUTES_KNOWN_POLL_MS));
      })().finally(() => {
        if (this.routesGates.get(link.name) === gate) this.routesGates.delete(link.name);
      });
      this.routesGates.set(link.name, gate);
      gates.set(link.name, gate);
    }
    if (gates.size > 0) this.heldForRoutes++;
    return gates;
  }

  /** Active links (every link before the roles are assigned) that do not know their remote's routes yet. */
  private linksAwaitingRemoteRoutes(): Link[] {
    return [...this.links.values()].filter((link) => (!this.rolesAssigned || this.roleOf(link.name) === 'active') && link.awaitingRemoteRoutes);
  }

  /**
   * Adds `LANE_COMPLETE_ROUTE` to this agent's lane once no link awaits its remote's routes (at most one route TTL
   * after the start): until then every node keeps the `$link/...` routes of this agent's previous incarnation, so
   * that copies published after a restart with a wiped store still reach it (held here, `untilRemoteRoutesKnown`).
   */
  private markLaneCompleteWhenRoutesKnown(region: RegionRoutes): void {
    const check = (): void => {
      if (this.stopped) return;
      if (this.linksAwaitingRemoteRoutes().length > 0) {
        setTimeout(check, ROUTES_KNOWN_POLL_MS).unref();
        return;
      }
      region.addRoute(LANE_COMPLETE_ROUTE.filter, LANE_COMPLETE_ROUTE.routeId);
      this.logger.info('link agent lane complete: the remote routes of its links are in the region');
    };
    check();
  }

  /**
   * Queues `message` once per link whose remote routes match it; null when none does. A QoS 0 message is queued
   * without waiting for durability (a failure is only logged). With `origin` (a sidecar's cluster-forwarded copy),
   * the copy's identity is stored with each queue entry and a resent copy is skipped for the links that queued it
   * before this agent restarted.
   */
  private enqueue(message: LinkMessage, origin?: CopyOrigin, only: (link: Link) => boolean = () => true): Promise<unknown> | null {
    let targets = [...this.links.values()].filter((link) => only(link) && link.wants(message.topic));
    if (targets.length === 0) return null;
    const sync = this.retainedSync;
    if (message.retain && sync) {
      targets = targets.filter((link) => !sync.isSyncedTwin(link.name, message));
      if (targets.length === 0) return null;
    }
    const marks = this.intakeMarks;
    if (origin && marks) {
      const fresh = targets.filter((link) => !marks.seenBefore(link.name, origin));
      if (fresh.length < targets.length) {
        marks.skipped += targets.length - fresh.length;
        this.logger.info({ topic: message.topic, from: origin.node, seq: origin.seq, links: targets.length - fresh.length }, 'resent copy already queued before the restart: not queued again');
      }
      targets = fresh;
      if (targets.length === 0) return null;
    }
    const entry: IntakeMessage = origin ? { ...message, intake: { node: origin.node, incarnation: origin.incarnation, seq: origin.seq } } : message;
    const durable = message.qos > 0;
    const now = Date.now();
    const queued = Promise.all(targets.map((link) => {
      const slot = this.slots.get(link.name);
      if (slot) slot.lastEnqueueAt = now;
      if (entry.retain) this.retainedSync?.queued(link.name, entry);
      return link.enqueue(entry, durable).then((seq) => {
        if (origin && marks) marks.recorded(link.name, origin);
        return seq;
      }, (err: Error) => {
        if (err instanceof LinkQueueFullError) this.metrics.queueRejected.inc({ link: link.name });
        throw err;
      });
    }));
    if (!durable) queued.catch((err: Error) => this.logger.warn({ topic: message.topic, err: err.message }, 'QoS 0 message not queued for a link'));
    return queued;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.aliveTimer);
    clearTimeout(this.embeddedCheckTimer);
    // Before the region's table is unwatched: it waits for a standby node's marker.
    await this.stopEmbedded();
    this.sidecarRegion?.beginStop();
    this.unwatchRegion?.();
    this.unwatchAgents?.();
    clearTimeout(this.roleTimer);
    clearTimeout(this.graceTimer);
    clearInterval(this.aliveTimer);
    clearInterval(this.drainTimer);
    this.watcher?.close();
    clearInterval(this.pollTimer);
    clearTimeout(this.debounce);
    await this.applying;
    await Promise.all([...this.links.values()].map((link) => link.stop()));
    this.links.clear();
  }

  statuses(): Array<(LinkStatus & { role: LinkRole }) | { name: string; state: 'misconfigured' | 'disabled'; lastError: string | null; connectedSince: null }> {
    const running = [...this.links.values()].map((link) => {
      const conflict = this.conflicts.get(link.name);
      const status = { ...link.status(), role: this.roleOf(link.name) };
      return conflict === undefined ? status : { ...status, state: 'misconfigured' as const, lastError: conflict };
    });
    const disabled = this.disabled.map((c) => ({ name: c.name, state: 'disabled' as const, lastError: null, connectedSince: null }));
    const bad = this.issues.map((i) => ({ name: i.name ?? `links[${i.index}]`, state: 'misconfigured' as const, lastError: `${i.path}: ${i.reason}`, connectedSince: null }));
    return [...running, ...disabled, ...bad];
  }

  /** Link name → why it is misconfigured now (a rejected entry or a running link the remote refused). */
  private misconfigurations(): Map<string, string> {
    const found = new Map<string, string>();
    for (const issue of this.issues) if (issue.name !== undefined) found.set(issue.name, `${issue.path}: ${issue.reason}`);
    for (const link of this.links.values()) if (link.misconfiguration !== null) found.set(link.name, link.misconfiguration);
    return found;
  }

  // ── publishes ───────────────────────────────────────────────────────────────────────────────────────────

  /**
   * A QoS ≥ 1 message that could not be queued is not acknowledged: aedes closes the publisher's connection and
   * it retransmits. For QoS 2 aedes has stored the packet id as received; forgetting it makes the retransmission
   * a new publish instead of a duplicate aedes would only acknowledge (and never queue).
   */
  private refusePublish(packet: AedesPublishPacket, client: Client | null, err: Error, done: Done): void {
    this.logger.warn({ topic: packet.topic, clientId: client?.id, err: err.message }, 'message not acknowledged: a link could not queue it');
    if (!client || packet.qos !== 2) return done(err);
    this.host.store.persistence.incomingDelPacket(client, { cmd: 'publish', messageId: packet.messageId }).then(() => done(err), () => done(err));
  }

  private onControl(packet: AedesPublishPacket, client: Client, done: Done): void {
    const identity = (this.embedded as LinkAgentHost).security.identityOf(client);
    if (!identity?.superuser) {
      this.logger.warn({ clientId: client.id, topic: packet.topic }, 'ignored a $LINK message: not from a link client');
      return done();
    }
    const refused = this.refusedControl(packet.topic, client);
    if (refused) return done(refused);
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    this.handleControl(packet.topic, payload, client).then(() => done(), (err: Error) => done(err));
  }

  /** A `$LINK/...` publish of a remote agent; rejects when it must not be acknowledged. */
  private handleControl(topicName: string, payload: Buffer, client?: Client, handedOver = false): Promise<void> {
    const topic = parseControlTopic(topicName);
    if (topic === null || topic.kind === 'resp') {
      this.logger.warn({ topic: topicName }, 'ignored a $LINK message: not a control topic');
      return Promise.resolve();
    }
    const restarting = this.restarting.get(topic.cluster);
    if (restarting && !this.links.has(topic.cluster)) return restarting.then(() => this.handleControl(topicName, payload, client, handedOver));
    const link = this.links.get(topic.cluster);
    if (!link) {
      // Not acknowledged: the remote keeps the message queued until this side has a link to it.
      return Promise.reject(new Error(`$LINK message from cluster ${JSON.stringify(topic.cluster)}, which has no link here`));
    }
    if (topic.kind === 'route') {
      // A standby agent does not answer route sync: the remote agent's stream belongs to the active one (a frame
      // here was routed before the control routes moved; the remote retransmits or re-initialises).
      if (this.roleOf(link.name) === 'standby') return Promise.resolve();
      if (client) this.remoteAgents.set(client, { link: link.name, actor: topic.actor });
      this.onRoutes(link, topic, payload);
      return Promise.resolve();
    }
    return this.onMessage(link, topic, payload, handedOver);
  }

  private onRoutes(link: Link, topic: ControlTopic, payload: Buffer): void {
    link.countBytes('in', 'control', payload.length);
    try {
      link.receiveRoutes(topic.actor, payload);
    } catch (err) {
      this.logger.warn({ link: link.name, agent: topic.actor, err: (err as Error).message }, 'bad route-sync message from a remote agent: stream reset');
      link.peerGone(topic.actor);
    }
  }

  /** A carrier of forwarded messages (the link decodes, de-duplicates and publishes them here as linked). */
  private async onMessage(link: Link, topic: ControlTopic, payload: Buffer, handedOver: boolean): Promise<void> {
    const dedup = handedOver ? this.takeover.handedOver : this.takeover;
    // Published before the regional table is complete, a message would miss the other nodes' subscribers, and its
    // de-dup mark would say it was delivered: the carrier waits (unacknowledged) for the table.
    if (this.local.exportReady) await this.local.exportReady;
    return link.receiveMessages(topic.actor, payload, dedup, (message, publishId) => this.publishLinked(link.name, message, publishId));
  }

  /** Publishes a message that came over `link`; a retained one is recorded as linked first (or skipped, see RetainedSync.admit). */
  private async publishLinked(link: string, message: LinkMessage, publishId: string): Promise<void> {
    if (message.retain && this.retainedSync && !(await this.retainedSync.admit(link, message))) return;
    return this.local.publish(message.qos > 0 ? { ...message, publishId } : message, true);
  }

  /**
   * The remote agents of `name` now hold `filter`: the local retained messages it matches are queued for the link
   * (read and queued in one step, so a later live publish on a topic queues after its synced copy). Only the agent
   * active for the link sends; after the link's start (a restored filter is reported while the link starts).
   */
  private syncRetained(name: string, filter: string): void {
    const sync = this.retainedSync;
    if (!sync) return;
    sync.beginSync(name, filter);
    // The filters that arrive together (a bootstrap brings ~100 k) are handled in one step, not one promise each.
    const waiting = this.retainedFiltersWaiting.get(name);
    if (waiting) {
      waiting.push(filter);
      return;
    }
    const filters = [filter];
    this.retainedFiltersWaiting.set(name, filters);
    void this.applying.then(() => this.local.exportReady).then(() => {
      this.retainedFiltersWaiting.delete(name);
      const link = this.links.get(name);
      if (!link || this.stopped || this.roleOf(name) !== 'active') return;
      for (const one of filters) this.queueRetainedFor(link, sync, one);
    }).catch((err: Error) => {
      this.retainedFiltersWaiting.delete(name);
      this.logger.error({ link: name, filters: filters.length, first: filters[0], err: err.message }, 'retained messages for new remote routes not queued');
    });
  }

  private readonly retainedFiltersWaiting = new Map<string, string[]>();

  private queueRetainedFor(link: Link, sync: RetainedSync, filter: string): void {
    const messages = sync.forNewRoute(link.name, filter);
    for (const message of messages) {
      link.enqueue(message, message.qos > 0).catch((err: Error) => {
        this.logger.warn({ link: link.name, topic: message.topic, err: err.message }, 'retained message not queued for a new remote route');
      });
    }
    if (messages.length > 0) this.logger.info({ link: link.name, filter, retained: messages.length }, 'retained messages queued for a new remote route');
  }

  // ── routes ──────────────────────────────────────────────────────────────────────────────────────────────

  /**
   * In a regional cluster the links export every route of the region — the remote routes of links excepted: a
   * message that came over a link is never forwarded to another one, so exporting them would only cost traffic.
   */
  private trackRegionRoutes(region: RegionRoutes): void {
    this.unwatchRegion = region.watchRoutes((op, filter, owner, routeId) => {
      if (!isLinkRouteId(routeId)) this.exportChanged(op, filter);
      else if (routeId === CONTROL_ROUTE_ID) {
        this.controlRouteChanged(op, filter, owner);
        this.holderMarkerChanged(op, filter, owner);
        this.embeddedMarkerChanged(op, filter, owner);
      } else {
        this.otherRemoteRouteChanged(op, filter, owner, routeId);
      }
    });
  }

  /** Who holds the control routes of each remote cluster in the region (`$LINK/cluster/msg/<remote>/+`). */
  private readonly controlOwners = new Map<string, Set<string>>();

  private controlRouteChanged(op: 'add' | 'delete', filter: string, owner: string): void {
    const match = /^\$LINK\/cluster\/msg\/([^/]+)\/\+$/.exec(filter);
    if (!match) return;
    const owners = this.controlOwners.get(match[1]) ?? new Set<string>();
    if (op === 'add') owners.add(owner);
    else owners.delete(owner);
    this.controlOwners.set(match[1], owners);
  }

  /** The `$link/<name>` remote routes other agents hold in the region: link → owner → filters. */
  private readonly othersRemoteRoutes = new Map<string, Map<string, Set<string>>>();

  private otherRemoteRouteChanged(op: 'add' | 'delete', filter: string, owner: string, routeId: string): void {
    if (owner === this.host.nodeName || routeId === CONTROL_ROUTE_ID) return;
    const link = routeId.slice(linkRouteId('').length);
    const owners = this.othersRemoteRoutes.get(link) ?? new Map<string, Set<string>>();
    const filters = owners.get(owner) ?? new Set<string>();
    if (op === 'add') filters.add(filter);
    else filters.delete(filter);
    owners.set(owner, filters);
    this.othersRemoteRoutes.set(link, owners);
    if (op === 'delete' && this.embedded?.region) {
      const gone = this.recentlyGone.get(link) ?? new Map<string, number>();
      const now = Date.now();
      if (gone.size >= 4096) for (const [old, at] of gone) if (at < now - ADOPT_GONE_WINDOW_MS) gone.delete(old);
      this.recentlyGone.set(link, gone.set(filter, now));
    }
  }

  private holderMarkerChanged(op: 'add' | 'delete', filter: string, owner: string): void {
    const marker = parseHolderMarker(filter);
    if (!marker) return;
    const holders = this.holders.get(marker.remote) ?? new Map<string, number>();
    if (op === 'add') holders.set(owner, Math.max(marker.term, holders.get(owner) ?? 0));
    else if (holders.get(owner) === marker.term) holders.delete(owner);
    this.holders.set(marker.remote, holders);
  }

  private exportChanged(op: 'add' | 'delete', filter: string): void {
    const count = this.exported.get(filter) ?? 0;
    if (op === 'delete' && count === 0) return;
    if (op === 'add') this.exported.set(filter, count + 1);
    else if (count === 1) this.exported.delete(filter);
    else this.exported.set(filter, count - 1);
    for (const link of this.links.values()) link.localRoute(op, filter);
  }

  /** One entry per exported route (a filter held by several routes appears that many times). */
  private currentRouteFilters(): string[] {
    return [...this.exported].flatMap(([filter, count]) => new Array<string>(count).fill(filter));
  }

  private trackRemoteAgents(aedes: Aedes): void {
    aedes.on('clientDisconnect', (client: Client) => {
      const agent = this.remoteAgents.get(client);
      if (!agent) return;
      this.remoteAgents.delete(client);
      this.links.get(agent.link)?.peerGone(agent.actor);
    });
  }

  // ── the links file ──────────────────────────────────────────────────────────────────────────────────────

  private watch(): void {
    const schedule = (): void => {
      clearTimeout(this.debounce);
      this.debounce = setTimeout(() => this.reload(), 100);
    };
    try {
      // A ConfigMap mount swaps a `..data` symlink: watch the directory, not the file.
      this.watcher = watch(path.dirname(path.resolve(this.options.file)), { persistent: false }, schedule);
      this.watcher.on('error', (err) => this.logger.warn({ file: this.options.file, err: err.message }, 'links file watch failed: relying on polling'));
    } catch (err) {
      this.logger.warn({ file: this.options.file, err: (err as Error).message }, 'cannot watch the links file directory: relying on polling');
    }
    this.pollTimer = setInterval(() => this.reload(), this.options.pollIntervalMs ?? 2000);
    this.pollTimer.unref();
  }

  private reload(): void {
    if (this.stopped) return;
    let text: string;
    try {
      text = readFileSync(this.options.file, 'utf8');
    } catch (err) {
      // Read again in full once readable, even if unchanged: that clears the problem.
      this.lastText = undefined;
      this.setFileError(`cannot read the file: ${(err as Error).message}`);
      return;
    }
    if (text === this.lastText) return;
    this.lastText = text;
    try {
      const parsed = parseLinksFile(text, this.host.clusterName);
      this.fileError = null;
      for (const issue of parsed.issues) this.logger.error({ file: this.options.file, path: issue.path, reason: issue.reason }, 'link entry rejected');
      this.applying = this.applying.then(() => this.apply(parsed.links, parsed.issues));
    } catch (err) {
      if (!(err instanceof LinksFileError)) throw err;
      this.setFileError(err.path === '(file)' ? err.reason : err.message);
    }
  }

  private setFileError(reason: string): void {
    if (this.fileError?.reason === reason) return;
    this.logger.error({ file: this.options.file, reason }, 'links file not applied: the running links are kept');
    this.fileError = { path: this.options.file, reason, since: new Date().toISOString() };
  }

  /** Stops removed and changed links, starts new and changed ones; the others are not touched. */
  private async apply(configs: LinkConfig[], issues: LinkConfigIssue[]): Promise<void> {
    if (this.stopped) return;
    const wanted = new Map(configs.filter((c) => c.enabled).map((c) => [c.name, c]));
    const misconfiguredBefore = this.misconfigurations();
    this.issues = issues;
    this.disabled = configs.filter((c) => !c.enabled);
    for (const [name, link] of [...this.links]) {
      const next = wanted.get(name);
      if (next && linkFingerprint(next) === this.fingerprints.get(name)) continue;
      this.links.delete(name);
      this.fingerprints.delete(name);
      await link.stop();
      this.dropSlot(name);
    }
    for (const [name, config] of wanted) {
      if (this.links.has(name)) continue;
      try {
        const link = await this.startLink(config, misconfiguredBefore.get(name) ?? null);
        this.links.set(name, link);
        this.fingerprints.set(name, linkFingerprint(config));
      } catch (err) {
        this.logger.error({ link: name, err: (err as Error).message }, 'link could not start');
        this.issues.push({ index: -1, name, path: `links.${name}`, reason: `could not start: ${(err as Error).message}` });
      }
    }
    this.logger.info({ links: [...this.links.keys()], rejected: issues.length, disabled: this.disabled.length }, 'links file applied');
    if (this.rolesAssigned) this.assignRoles();
  }

  /**
   * Starts a link. A sidecar's link starts as standby with its dial gate closed (its queue is open, so copies still
   * routed here are kept); the role assignment opens it. Links of an embedded agent are always active.
   */
  private async startLink(config: LinkConfig, misconfiguredBefore: string | null = null): Promise<Link> {
    const region = this.sidecarRegion;
    const shared = this.embedded?.region;
    const previous = this.slots.get(config.name);
    const stored = (region || shared) && !previous ? await this.storedRole(config.name) : undefined;
    if (stored) this.freshStart = false;
    const embeddedStart = shared && !previous ? this.embeddedStartRole(stored) : undefined;
    const role = region ? previous?.role ?? this.resumedRole(config.name, stored) : shared ? previous?.role ?? embeddedStart?.role ?? 'active' : 'active';
    const slot = this.newSlot(config.name, role);
    slot.term = previous?.term ?? stored?.term ?? 0;
    slot.markedTerm = previous?.markedTerm;
    slot.standbyMarked = previous?.standbyMarked;
    if (shared && !region) return this.startEmbeddedLink(config, slot, embeddedStart?.mark === true, misconfiguredBefore);
    const gate = new Promise<void>((resolve) => { slot.openGate = resolve; });
    if (role === 'active') {
      // Claimed before the link starts, so that a restarted agent's first lane in the region already holds them.
      region?.claimControl(config.name);
      if (region) this.markHolder(region, config.name, slot);
      this.openGate(slot);
    }
    const link = await Link.start(config, this.linkContext(gate), this.currentRouteFilters(), misconfiguredBefore);
    this.intakeMarks?.scanQueue(config.name, link.queue.peek(0, Number.MAX_SAFE_INTEGER));
    // A sidecar's link starting standby with queued entries: the link may have moved while they were in flight (twins).
    if (region && role === 'standby') link.markQueuedAsTwins();
    return link;
  }

  /**
   * The role a sidecar had for a link before it restarted: it resumes it until the assignment (once the regional
   * table is here) confirms or changes it, so a restarted agent never leaves its links' control messages unrouted.
   */
  private async storedRole(name: string): Promise<StoredRole | undefined> {
    const stored = await this.host.store.area(ROLE_AREA).get(name).catch(() => undefined);
    return stored ? parseStoredRole(stored.toString('utf8')) : undefined;
  }

  /** The role a link starts with: the stored one, unless the agent was away beyond the grace (then standby). */
  private resumedRole(name: string, stored: StoredRole | undefined): LinkRole {
    if (stored?.role !== 'active') return 'standby';
    if (this.resumeRoles) return 'active';
    this.storeRole(name, 'standby', stored.term);
    return 'standby';
  }

  private storeRole(name: string, role: LinkRole, term: number): void {
    const value: StoredRole = { role, term };
    this.host.store.area(ROLE_AREA).put(name, Buffer.from(JSON.stringify(value), 'utf8'))
      .catch((err: Error) => this.logger.warn({ link: name, role, err: err.message }, 'link role not stored (a restart starts it as the previous role)'));
  }

  /** Puts this agent's holder marker for the link (its term) into the region, replacing an older one. */
  private markHolder(region: SidecarRegion, name: string, slot: LinkSlot): void {
    if (slot.markedTerm === slot.term) return;
    this.unmarkHolder(region, name, slot);
    region.addRoute(holderMarkerFilter(name, slot.term), CONTROL_ROUTE_ID);
    slot.markedTerm = slot.term;
  }

  private unmarkHolder(region: SidecarRegion, name: string, slot: LinkSlot): void {
    if (slot.markedTerm === undefined) return;
    region.deleteRoute(holderMarkerFilter(name, slot.markedTerm), CONTROL_ROUTE_ID);
    slot.markedTerm = undefined;
  }

  private newSlot(name: string, role: LinkRole): LinkSlot {
    const slot: LinkSlot = { role, openGate: () => undefined, gateOpen: false, inRegion: role === 'active', remoteFilters: new Set(), lastEnqueueAt: 0, term: 0 };
    this.slots.set(name, slot);
    return slot;
  }

  private openGate(slot: LinkSlot): void {
    slot.gateOpen = true;
    slot.openGate();
  }

  private dropSlot(name: string): void {
    const slot = this.slots.get(name);
    if (this.sidecarRegion && slot) this.unmarkHolder(this.sidecarRegion, name, slot);
    if (this.embedded?.region && slot) {
      this.unmarkEmbedded(this.embedded.region, name, slot);
      this.markStandby(this.embedded.region, name, slot, false);
    }
    this.conflicts.delete(name);
    this.sidecarRegion?.releaseControl(name);
    this.slots.delete(name);
  }

  private roleOf(name: string): LinkRole {
    return this.slots.get(name)?.role ?? 'active';
  }

  private linkContext(gate: Promise<void>): LinkContext {
    const { host } = this;
    const region = this.local.routes;
    // A standalone embedded agent has no gate (its links are always active and dial at once).
    const exportReady = this.sidecarRegion || this.embedded?.region ? Promise.all([this.local.exportReady, gate]).then(() => undefined) : this.local.exportReady;
    return {
      localCluster: host.clusterName, nodeName: host.nodeName, store: host.store, logger: this.logger, metrics: this.metrics, exportReady, dedup: this.dedup,
      // A sidecar only: its copies come over the cluster transport (an embedded agent's link sends at once).
      ...(this.sidecarRegion ? { copyUnacknowledged: (message: LinkMessage) => this.copyUnacknowledged(message) } : {}),
      respond: (topic, payload) => this.local.publish({ topic, payload, qos: 0, retain: false, publisherClientId: '' }, false).catch((err: Error) => {
        this.logger.debug({ topic, err: err.message }, 'route-sync answer to a remote agent not delivered (it retries)');
      }),
      remoteRoute: (link, op, filter) => {
        if (region) this.remoteRouteChanged(region, link, op, filter);
        if (op === 'add') this.syncRetained(link, filter);
      },
    };
  }

  /** A remote filter of `link` appeared or went: held in the region only while this agent is active for it. */
  private remoteRouteChanged(region: RegionRoutes, link: string, op: 'add' | 'delete', filter: string): void {
    const slot = this.slots.get(link);
    const filters = slot?.remoteFilters;
    if (op === 'add') {
      if (filters?.has(filter)) return;
      filters?.add(filter);
    } else if (filters && !filters.delete(filter)) {
      return;
    }
    if (slot && !slot.inRegion) return;
    if (op === 'add') region.addRoute(filter, linkRouteId(link));
    else region.deleteRoute(filter, linkRouteId(link));
  }

  // ── several agents per region (sidecar) ────────────────────────────────────────────────────────────────────

  /**
   * Once the regional table is here: assign roles (a fresh agent first waits a little for agent peers starting with
   * it), then again whenever an agent joins or leaves, and when a gone holder's grace ends.
   */
  private shareLinks(region: SidecarRegion): void {
    void region.tableReady.then(async () => {
      if (this.stopped) return;
      this.agentsSeen = new Set(region.liveAgents());
      this.writeAlive(region);
      this.aliveTimer = setInterval(() => this.writeAlive(region), ALIVE_WRITE_MS);
      this.aliveTimer.unref();
      this.unwatchAgents = region.onAgentsChanged(() => {
        // An agent that joins (or comes back) is taken into account at once; one that leaves is marked absent now
        // (its links move only after the grace) and looked at again a little later (a blip of a connection).
        const joinedOnly = this.noteAgents(region.liveAgents());
        clearTimeout(this.roleTimer);
        this.roleTimer = setTimeout(() => this.assignRoles(), joinedOnly ? AGENT_JOIN_SETTLE_MS : AGENT_CHANGE_SETTLE_MS);
      });
      if (this.freshStart) await new Promise((resolve) => setTimeout(resolve, FIRST_ASSIGN_SETTLE_MS));
      if (this.stopped) return;
      this.rolesAssigned = true;
      this.assignRoles();
      this.drainTimer = setInterval(() => this.checkDraining(), DRAIN_CHECK_MS);
      this.drainTimer.unref();
    });
  }

  /** Records who is alive and since when the others are gone; true when no agent left since the last call. */
  private noteAgents(live: readonly string[]): boolean {
    const now = Date.now();
    let left = false;
    for (const agent of this.agentsSeen) {
      if (live.includes(agent) || this.absentSince.has(agent)) continue;
      this.absentSince.set(agent, now);
      left = true;
    }
    for (const agent of live) {
      this.absentSince.delete(agent);
      this.agentsSeen.add(agent);
    }
    return !left;
  }

  /** The link's holders: the markers in the regional table (other agents) and this agent's own active slot. */
  private holdersOf(name: string, slot: LinkSlot, live: readonly string[]): Map<string, number> {
    const holders = new Map([...this.holders.get(name) ?? []].filter(([agent]) => agent !== this.host.nodeName));
    if (slot.role === 'active') holders.set(this.host.nodeName, slot.term);
    const now = Date.now();
    // A holder never seen alive by this agent (it died before this one started) is absent from now on.
    for (const agent of holders.keys()) if (!live.includes(agent) && !this.absentSince.has(agent)) this.absentSince.set(agent, now);
    return holders;
  }

  /**
   * Sticky assignment (region.ts `stickyHolder`): a link stays with its live holder; a holder that went away keeps it
   * for the grace (`moveGraceMs`), after which the rendezvous winner among the live agents takes it with a higher term.
   */
  private assignRoles(): void {
    const region = this.sidecarRegion;
    if (!region) return this.scheduleEmbeddedCheck();
    if (this.stopped) return;
    const agents = region.liveAgents();
    const now = Date.now();
    const grace = this.moveGraceMs;
    let nextCheck = Number.POSITIVE_INFINITY;
    for (const name of this.links.keys()) {
      const slot = this.slots.get(name);
      if (!slot) continue;
      const holders = this.holdersOf(name, slot, agents);
      const decision = stickyHolder(name, holders, agents, (agent) => now - (this.absentSince.get(agent) ?? now) < grace);
      if (decision.kind === 'wait') {
        const graceEnds = Math.min(...decision.agents.map((agent) => (this.absentSince.get(agent) ?? now) + grace));
        nextCheck = Math.min(nextCheck, graceEnds);
        if (!this.waitingLogged.has(name)) this.logger.info({ link: name, holders: decision.agents, inMs: graceEnds - now }, 'link holder away: the link stays with it until its grace ends');
        this.waitingLogged.add(name);
      } else {
        this.waitingLogged.delete(name);
      }
      const role: LinkRole = decision.kind !== 'wait' && decision.agent === this.host.nodeName ? 'active' : 'standby';
      if (role === slot.role && (role === 'standby' || slot.gateOpen)) continue;
      const term = decision.kind === 'take' ? Math.max(decision.term, slot.term + 1) : slot.term;
      this.logger.info({ link: name, role, term, agents, holders: Object.fromEntries(holders) },
        role === 'active' ? 'link agent active for the link' : 'link agent standby for the link (another agent serves it)');
      if (role === 'active') this.activate(region, name, slot, term);
      else this.deactivate(region, name, slot);
      if (role === 'active' && decision.kind === 'take') this.adoptRoutesOf(name, [...holders.keys()]);
    }
    clearTimeout(this.graceTimer);
    if (Number.isFinite(nextCheck)) {
      this.graceTimer = setTimeout(() => this.assignRoles(), Math.max(0, nextCheck - Date.now()) + AGENT_JOIN_SETTLE_MS);
      this.graceTimer.unref();
    }
  }

  /**
   * Taking a link over from agents that went away: the remote routes they still hold in the region (their lanes have
   * not expired: the grace is below the route TTL) are held by this agent at once, so that copies handed over when
   * their lanes expire find this agent holding the routes even before the remote agents re-initialise with it.
   */
  private adoptRoutesOf(name: string, previousHolders: string[]): void {
    const owners = this.othersRemoteRoutes.get(name);
    const link = this.links.get(name);
    if (!owners || !link) return;
    const filters = previousHolders.filter((agent) => agent !== this.host.nodeName).flatMap((agent) => [...owners.get(agent) ?? []]);
    const adopted = link.adoptRemoteRoutes(filters);
    if (adopted > 0) this.logger.info({ link: name, from: previousHolders, routes: adopted }, 'remote routes of the previous holder taken over until the remote confirms them');
  }

  private activate(region: SidecarRegion, name: string, slot: LinkSlot, term: number): void {
    slot.role = 'active';
    slot.term = term;
    this.storeRole(name, 'active', term);
    region.claimControl(name);
    this.markHolder(region, name, slot);
    if (!slot.inRegion) for (const filter of slot.remoteFilters) region.addRoute(filter, linkRouteId(name));
    slot.inRegion = true;
    this.openGate(slot);
  }

  /**
   * Another agent serves the link now. The control routes and remote routes go after a delay, so that the new
   * active agent's routes are in the region first (a moment when both hold them costs duplicates, a moment when
   * none does would lose control messages). The connection to the remote closes once the queue is drained.
   */
  private deactivate(region: SidecarRegion, name: string, slot: LinkSlot): void {
    slot.role = 'standby';
    this.storeRole(name, 'standby', slot.term);
    const since = Date.now();
    const release = (): void => {
      if (this.slots.get(name) !== slot || slot.role !== 'standby' || this.stopped) return;
      const taken = [...this.controlOwners.get(name) ?? []].some((owner) => owner !== this.host.nodeName);
      if (!taken && Date.now() - since < CONTROL_RELEASE_MAX_MS) {
        setTimeout(release, 50).unref();
        return;
      }
      setTimeout(() => {
        if (this.slots.get(name) !== slot || slot.role !== 'standby') return;
        region.releaseControl(name);
        this.unmarkHolder(region, name, slot);
        if (slot.inRegion) for (const filter of slot.remoteFilters) region.deleteRoute(filter, linkRouteId(name));
        slot.inRegion = false;
        this.logger.info({ link: name, takenOver: taken }, 'link routes released to the active agent');
      }, CONTROL_RELEASE_MARGIN_MS).unref();
    };
    release();
  }

  /**
   * A standby link with queued messages dials its remote and sends them (they were queued while it was active, or
   * reached it while the routes moved); once drained and quiet, it is restarted closed.
   */
  private checkDraining(): void {
    for (const [name, link] of this.links) {
      const slot = this.slots.get(name);
      if (!slot || slot.role !== 'standby') continue;
      if (!slot.gateOpen && link.queue.depth > 0) {
        this.logger.info({ link: name, depth: link.queue.depth }, 'standby link drains its queue to the remote');
        this.openGate(slot);
      } else if (slot.gateOpen && !slot.inRegion && link.queue.depth === 0 && Date.now() - slot.lastEnqueueAt > DRAIN_QUIET_MS) {
        this.applying = this.applying.then(() => this.recycle(name, link));
      }
    }
  }

  /** Restarts a drained standby link closed (no connection to the remote). */
  private async recycle(name: string, link: Link): Promise<void> {
    const slot = this.slots.get(name);
    if (this.stopped || this.links.get(name) !== link || !slot || slot.role !== 'standby' || link.queue.depth > 0) return;
    const restart = (async (): Promise<void> => {
      this.links.delete(name);
      await link.stop();
      try {
        this.links.set(name, await this.startLink(link.config));
        this.logger.info({ link: name }, 'standby link drained: connection to the remote closed');
      } catch (err) {
        this.logger.error({ link: name, err: (err as Error).message }, 'link could not restart');
        this.issues.push({ index: -1, name, path: `links.${name}`, reason: `could not start: ${(err as Error).message}` });
      }
    })();
    this.restarting.set(name, restart);
    await restart;
    this.restarting.delete(name);
  }

  // ── one embedded agent per link and region ──────────────────────────────────────────────────────────────

  /**
   * An embedded agent in a cluster back from a short absence (its lane did not expire, it did not stop cleanly) puts
   * the markers of the links it served into its node's first lane: no other node took them meanwhile. Otherwise its
   * links start standby and the start check decides (another node may serve them now).
   */
  private async decideEmbeddedResume(): Promise<void> {
    const raw = await this.host.store.area(ALIVE_AREA).get(ALIVE_KEY).catch(() => undefined);
    const record = raw ? parseAliveRecord(raw) : undefined;
    if (!record) return;
    const awayMs = Date.now() - record.at;
    this.embeddedResume = record.stopped !== true && awayMs + ALIVE_WRITE_MS < this.routeTtlMs;
    if (!this.embeddedResume) {
      this.logger.info({ awayMs, stopped: record.stopped === true, routeTtlMs: this.routeTtlMs },
        'link agent back after a stop or beyond the route TTL: its links serve once the region shows no other agent serving them');
    }
  }

  /** The role an embedded link starts with and whether its marker goes into the node's first lane. */
  private embeddedStartRole(stored: StoredRole | undefined): { role: LinkRole; mark: boolean } {
    // No stored role: a new node, or one from before this guard (its restored routes must stay in its first lane).
    if (stored === undefined) return { role: 'active', mark: false };
    if (stored.role === 'active' && this.embeddedResume) return { role: 'active', mark: true };
    return { role: 'standby', mark: false };
  }

  private async startEmbeddedLink(config: LinkConfig, slot: LinkSlot, mark: boolean, misconfiguredBefore: string | null): Promise<Link> {
    const region = this.embedded?.region as LinkRegion;
    // The gate opens when the check (`checkEmbedded`, once the regional table is here) finds no other agent serving the link.
    const gate = new Promise<void>((resolve) => { slot.openGate = resolve; });
    if (mark) this.markEmbedded(region, config.name, slot);
    const link = await Link.start(config, this.linkContext(gate), this.currentRouteFilters(), misconfiguredBefore);
    this.intakeMarks?.scanQueue(config.name, link.queue.peek(0, Number.MAX_SAFE_INTEGER));
    this.scheduleEmbeddedCheck();
    return link;
  }

  /** Once the regional table is complete: the first check (before any link dials), then one after every marker change. */
  private guardEmbedded(region: LinkRegion): void {
    void region.tableReady.then(() => {
      if (this.stopped) return;
      this.rolesAssigned = true;
      this.checkEmbedded();
      void this.writeEmbeddedAlive(false);
      this.aliveTimer = setInterval(() => void this.writeEmbeddedAlive(false), ALIVE_WRITE_MS);
      this.aliveTimer.unref();
      this.drainTimer = setInterval(() => this.checkDraining(), DRAIN_CHECK_MS);
      this.drainTimer.unref();
    });
  }

  private writeEmbeddedAlive(stopped: boolean): Promise<void> {
    const record: AliveRecord = { at: Date.now(), peers: [], ...(stopped ? { stopped } : {}) };
    return this.host.store.area(ALIVE_AREA).put(ALIVE_KEY, Buffer.from(JSON.stringify(record), 'utf8'))
      .catch((err: Error) => this.logger.debug({ err: err.message }, 'liveness record not written'));
  }

  /** A control route changed: looked at again a little later (a restarted node's lane replaces its old one, marker included). */
  private scheduleEmbeddedCheck(): void {
    if (!this.embedded?.region || !this.rolesAssigned || this.stopped) return;
    clearTimeout(this.embeddedCheckTimer);
    this.embeddedCheckTimer = setTimeout(() => this.checkEmbedded(), EMBEDDED_CHECK_SETTLE_MS);
    this.embeddedCheckTimer.unref();
  }

  private embeddedMarkerChanged(op: 'add' | 'delete', filter: string, owner: string): void {
    const standby = parseEmbeddedStandby(filter);
    if (standby !== null && owner !== this.host.nodeName) {
      const nodes = this.embeddedStandbys.get(standby) ?? new Set<string>();
      if (op === 'add') nodes.add(owner);
      else nodes.delete(owner);
      this.embeddedStandbys.set(standby, nodes);
    }
    const marker = parseEmbeddedMarker(filter);
    if (marker && owner !== this.host.nodeName) {
      const markers = this.embeddedMarkers.get(marker.remote) ?? new Map<string, number>();
      if (op === 'add') markers.set(owner, Math.max(marker.term, markers.get(owner) ?? 0));
      else if (markers.get(owner) === marker.term) markers.delete(owner);
      this.embeddedMarkers.set(marker.remote, markers);
    }
    this.scheduleEmbeddedCheck();
  }

  /** Decides for every link (region.ts `embeddedKeeper`) whether this node serves it or yields it to another agent. */
  private checkEmbedded(): void {
    const region = this.embedded?.region;
    if (!region || this.stopped) return;
    const self = this.host.nodeName;
    for (const name of this.links.keys()) {
      const slot = this.slots.get(name);
      if (!slot) continue;
      const others = this.embeddedMarkers.get(name) ?? new Map<string, number>();
      const sidecars = [...new Set([...this.holders.get(name)?.keys() ?? [], ...this.controlOwners.get(name) ?? []])];
      slot.term = Math.max(slot.term, ...others.values());
      const decision = embeddedKeeper(self, { holding: slot.markedTerm, known: slot.term }, others, sidecars);
      if (decision.kind === 'yield') this.yieldEmbedded(region, name, slot, decision.to, decision.by);
      else this.serveEmbedded(region, name, slot, decision.kind, decision.term);
    }
  }

  private serveEmbedded(region: LinkRegion, name: string, slot: LinkSlot, kind: 'keep' | 'take', term: number): void {
    const changed = slot.role !== 'active' || !slot.gateOpen || kind === 'take';
    if (this.conflicts.delete(name)) this.logger.info({ link: name, term }, 'link served by this node again: no other agent of the region serves it');
    slot.role = 'active';
    slot.term = term;
    this.markStandby(region, name, slot, false);
    this.markEmbedded(region, name, slot);
    if (!slot.inRegion) for (const filter of slot.remoteFilters) region.addRoute(filter, linkRouteId(name));
    slot.inRegion = true;
    this.adoptGoneRoutes(name);
    if (!slot.gateOpen) this.openGate(slot);
    if (!changed) return;
    this.storeRole(name, 'active', term);
    this.logger.info({ link: name, term, kind }, 'link served by this node (embedded agent)');
  }

  /**
   * Another agent serves the link: this node stops taking messages for it (its marker and remote routes leave the
   * region, so copies go to the keeper; a remote agent connected here is sent away to its next server) and drains
   * what it had queued, as a standby sidecar does (`checkDraining`). Reported as `misconfigured` until that agent goes.
   */
  private yieldEmbedded(region: LinkRegion, name: string, slot: LinkSlot, to: string, by: 'sidecar' | 'embedded'): void {
    const reason = `link '${name}' is also served by ${to} in region ${this.host.clusterName}: run the embedded agent on one node only, or use link-agent sidecars`;
    this.conflicts.set(name, reason);
    const logged = `${name}\u0000${to}`;
    if (!this.conflictsLogged.has(logged)) {
      this.conflictsLogged.add(logged);
      this.logger.error({ link: name, servedBy: to, servedByKind: by, queued: this.links.get(name)?.queue.depth ?? 0 }, reason);
    }
    if (slot.role === 'standby' && !slot.inRegion && slot.markedTerm === undefined && slot.standbyMarked) return;
    slot.role = 'standby';
    this.storeRole(name, 'standby', slot.term);
    this.unmarkEmbedded(region, name, slot);
    this.markStandby(region, name, slot, true);
    if (slot.inRegion) for (const filter of slot.remoteFilters) region.deleteRoute(filter, linkRouteId(name));
    slot.inRegion = false;
    for (const [client, agent] of this.remoteAgents) if (agent.link === name) client.close();
  }

  /**
   * The `$link/<name>` routes other agents hold now or dropped lately (a keeper whose lane expired, a node that
   * yielded): held by this node until the remote confirms them (its bootstrap here) or a route TTL passes, so that
   * copies published before the remote agents re-initialise with this node still reach it.
   */
  private adoptGoneRoutes(name: string): void {
    const link = this.links.get(name);
    const since = Date.now() - ADOPT_GONE_WINDOW_MS;
    const gone = [...this.recentlyGone.get(name) ?? []].filter(([, at]) => at >= since).map(([filter]) => filter);
    const held = [...this.othersRemoteRoutes.get(name)?.values() ?? []].flatMap((filters) => [...filters]);
    this.recentlyGone.delete(name);
    if (!link || gone.length + held.length === 0) return;
    const adopted = link.adoptRemoteRoutes([...gone, ...held]);
    if (adopted > 0) this.logger.info({ link: name, routes: adopted }, 'remote routes of the other agent of the region taken over until the remote confirms them');
  }

  private markEmbedded(region: RegionRoutes, name: string, slot: LinkSlot): void {
    if (slot.markedTerm === slot.term) return;
    this.unmarkEmbedded(region, name, slot);
    region.addRoute(embeddedMarkerFilter(name, slot.term), CONTROL_ROUTE_ID);
    slot.markedTerm = slot.term;
  }

  private unmarkEmbedded(region: RegionRoutes, name: string, slot: LinkSlot): void {
    if (slot.markedTerm === undefined) return;
    region.deleteRoute(embeddedMarkerFilter(name, slot.markedTerm), CONTROL_ROUTE_ID);
    slot.markedTerm = undefined;
  }

  private markStandby(region: RegionRoutes, name: string, slot: LinkSlot, on: boolean): void {
    if (slot.standbyMarked === on) return;
    if (on) region.addRoute(embeddedStandbyFilter(name), CONTROL_ROUTE_ID);
    else if (slot.standbyMarked) region.deleteRoute(embeddedStandbyFilter(name), CONTROL_ROUTE_ID);
    slot.standbyMarked = on;
  }

  private controlledBySidecar(topicName: string): boolean {
    const topic = parseControlTopic(topicName);
    return topic !== null && this.yields(topic.cluster) && (this.controlOwners.get(topic.cluster)?.size ?? 0) > 0;
  }

  /** Does this embedded agent yield the link to another agent of its region? */
  private yields(name: string): boolean {
    return this.embedded?.region !== undefined && this.slots.get(name)?.role === 'standby';
  }

  /**
   * A remote agent's control publish for a link this node yields to another embedded agent is refused and its
   * connection closed (nothing is acknowledged): it tries its next server, and the keeper's node answers it.
   */
  private refusedControl(topicName: string, client: Client): Error | null {
    const topic = parseControlTopic(topicName);
    if (topic === null || !this.yields(topic.cluster)) return null;
    client.close();
    return new Error(`$LINK message of ${topic.actor} refused: ${this.conflicts.get(topic.cluster) ?? `link '${topic.cluster}' is served by another agent of the region`}`);
  }

  /**
   * A clean stop: the markers leave the region at once, and the links stop (withdrawing their routes) only once a
   * standby node's marker is here (it took them over), at most EMBEDDED_STOP_HANDOVER_MS: an overlap rather than a
   * moment when no node holds the link's routes (a message published then would reach no agent). Recorded for the
   * next start (it then checks before serving).
   */
  private async stopEmbedded(): Promise<void> {
    const region = this.embedded?.region;
    if (!region || !this.rolesAssigned) return;
    const handedOver: string[] = [];
    for (const [name, slot] of this.slots) {
      if (slot.markedTerm !== undefined && (this.embeddedStandbys.get(name)?.size ?? 0) > 0) handedOver.push(name);
      this.unmarkEmbedded(region, name, slot);
      this.markStandby(region, name, slot, false);
    }
    const taken = (): boolean => handedOver.every((name) => (this.embeddedMarkers.get(name)?.size ?? 0) > 0);
    const pause = (): Promise<unknown> => new Promise((resolve) => setTimeout(resolve, 20));
    const deadline = Date.now() + EMBEDDED_STOP_HANDOVER_MS;
    while (handedOver.length > 0 && !taken() && Date.now() < deadline) await pause();
    // Taken over: no new copies here (the routes go now), and what is queued leaves before the links stop (else it
    // would wait on this node's disk until its return, after newer messages), at most EMBEDDED_STOP_DRAIN_MS.
    for (const name of handedOver) {
      const slot = this.slots.get(name);
      if (slot?.inRegion) for (const filter of slot.remoteFilters) region.deleteRoute(filter, linkRouteId(name));
      if (slot) slot.inRegion = false;
    }
    const queued = (): number => handedOver.reduce((sum, name) => sum + (this.links.get(name)?.queue.depth ?? 0), 0);
    const drainDeadline = Date.now() + EMBEDDED_STOP_DRAIN_MS;
    while (handedOver.length > 0 && taken() && queued() > 0 && Date.now() < drainDeadline) await pause();
    if (handedOver.length > 0) this.logger.info({ links: handedOver, takenOver: taken(), leftQueued: queued() }, 'links handed to the standby node of the region before stopping');
    await this.writeEmbeddedAlive(true);
  }

  /** Link → agent → term, as this agent sees the holders (its own slot included). */
  private describeHolders(): Record<string, Record<string, number>> {
    const live = this.sidecarRegion?.liveAgents() ?? [];
    return Object.fromEntries([...this.slots].map(([name, slot]) => [name, Object.fromEntries(this.holdersOf(name, slot, live))]));
  }

  private describe(): object {
    return {
      cluster: this.host.clusterName, node: this.host.nodeName, file: this.options.file, fileError: this.fileError,
      agents: this.sidecarRegion?.liveAgents() ?? [this.host.nodeName],
      ...(this.sidecarRegion ? { moveGraceMs: this.moveGraceMs, holders: this.describeHolders() } : {}), intakeSkipped: this.intakeMarks?.skipped ?? 0,
      ...(this.conflicts.size > 0 ? { conflicts: Object.fromEntries(this.conflicts) } : {}), heldForRoutes: this.heldForRoutes,
      retainedSync: this.retainedSync ? { ...this.retainedSync.counters, linkedTopics: this.retainedSync.linkedTopics } : null,
      links: this.statuses(),
    };
  }
}

function parseStoredRole(text: string): StoredRole | undefined {
  // Before terms the value was the bare role.
  if (text === 'active' || text === 'standby') return { role: text, term: 0 };
  try {
    const value = JSON.parse(text) as Partial<StoredRole>;
    if ((value.role === 'active' || value.role === 'standby') && Number.isInteger(value.term)) return { role: value.role, term: value.term as number };
  } catch {
    // not JSON: ignored below
  }
  return undefined;
}

function parseAliveRecord(raw: Buffer): AliveRecord | undefined {
  try {
    const value = JSON.parse(raw.toString('utf8')) as Partial<AliveRecord>;
    if (typeof value.at === 'number' && Array.isArray(value.peers)) {
      return { at: value.at, peers: value.peers.filter((p): p is string => typeof p === 'string'), stopped: value.stopped === true };
    }
  } catch {
    // a torn or foreign record: treated as none
  }
  return undefined;
}
