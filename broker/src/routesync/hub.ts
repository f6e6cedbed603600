import { RouteTable, type RouteSink } from '../routing/route-table.js';
import { RouteSyncError } from './errors.js';
import { InboundSession } from './inbound.js';
import { LaneStore, type ApplyResult, type ExpiredLane, type LaneChange } from './lane-store.js';
import { nameProblem } from './limits.js';
import { DEFAULT_BATCH_LIMITS, LocalLane, type BatchLimits } from './local-lane.js';
import type {
  AckMessage,
  HeartbeatMessage,
  InitMessage,
  InitResult,
  LaneVersion,
  OpsMessage,
  RouteSpec,
  SenderMessage,
  SnapshotMessage,
  SyncMessage,
} from './messages.js';
import { DEFAULT_ROUTE_ID, PROTOCOL_VERSION } from './messages.js';
import { OutboundSession, type LaneSource, type OutboundOptions, type OutboundStats } from './outbound.js';
import { regionalClusterPolicy, type ExportPolicy } from './policy.js';

export interface RouteSyncOptions {
  cluster: string;
  /** This actor: a node id or a link agent id. */
  actor: string;
  /** Persisted counter bumped at every start of the actor. */
  incarnation: number;
  /** Announced in handshakes: 'core', 'replicant', 'agent'. */
  role: string;
  /** Where learned routes (and, with mirrorLocal, own routes) go. Default: a RouteTable of the hub's own. */
  sink?: RouteSink;
  /** Put this actor's own routes in the sink too (owner = this actor). Default true. */
  mirrorLocal?: boolean;
  policy?: ExportPolicy;
  /** An actor silent for longer loses its routes. Default 15 000 ms. */
  ttlMs?: number;
  /** Default ttlMs / 3. */
  heartbeatMs?: number;
  batch?: Partial<BatchLimits>;
  /** Routes per snapshot message. Default 4000. */
  snapshotChunkRoutes?: number;
  /** A snapshot message also ends at about this many bytes of filters. Default 1 MiB. */
  snapshotChunkBytes?: number;
  /** Unacknowledged sequenced messages per peer. Default 32. */
  window?: number;
  /** Default 2000 ms. */
  retransmitMs?: number;
  /** Default 2000 ms. */
  handshakeRetryMs?: number;
  /** Default 50 000 ops. */
  maxRetainedOps?: number;
  /** How long an expired actor's incarnation is remembered. Default 10 × ttlMs. */
  tombstoneMs?: number;
  /**
   * At most how long a new incarnation's lane keeps the previous one's link routes (`isHeldOverRoute`) when it
   * never marks itself complete (`LANE_COMPLETE_ROUTE`). Default 10 × ttlMs.
   */
  holdOverMs?: number;
  /** How often expired lanes are looked for. Default min(1000, ttlMs / 10) ms. */
  gcIntervalMs?: number;
  onEvent?: (event: RouteSyncEvent) => void;
}

export type RouteSyncEvent =
  | { type: 'lane_new'; actor: string; incarnation: number; version: number; routes: number; replacedIncarnation: number | null; from: string }
  | { type: 'lane_expired'; actor: string; incarnation: number; routes: number }
  | { type: 'stream_rejected'; peer: string; result: InitResult; knownIncarnation: number }
  | { type: 'stream_refused'; peer: string; result: InitResult; detail: string }
  | { type: 'resync_requested'; peer: string; actor: string };

export interface Outgoing {
  to: string;
  message: SyncMessage;
}

export interface LaneInfo extends LaneVersion {
  routes: number;
  /** Routes of earlier incarnations still routed to this actor until its lane is complete (`LaneStore`). */
  heldOver: number;
  lastHeardAt: number;
  local: boolean;
}

export interface PeerInfo {
  peer: string;
  outbound: OutboundStats | null;
  inbound: { incarnation: number; conn: number; role: string; assembling: number } | null;
}

export interface RouteSyncCounters {
  opsSent: number;
  opsMessagesSent: number;
  snapshotChunksSent: number;
  snapshotRoutesSent: number;
  heartbeatsSent: number;
  deltasApplied: number;
  opsApplied: number;
  snapshotsApplied: number;
  duplicates: number;
  stale: number;
  gaps: number;
  resyncsRequested: number;
  lanesExpired: number;
}

/** Refuses settings under which the protocol cannot work (an actor would expire between two heartbeats). */
function assertTimings(ttlMs: number, o: OutboundOptions): void {
  const positive: Array<[string, number]> = [
    ['ttlMs', ttlMs],
    ['heartbeatMs', o.heartbeatMs],
    ['batch.maxOps', o.maxOps],
    ['snapshotChunkRoutes', o.snapshotChunkRoutes],
    ['snapshotChunkBytes', o.snapshotChunkBytes],
    ['window', o.window],
    ['retransmitMs', o.retransmitMs],
    ['handshakeRetryMs', o.handshakeRetryMs],
  ];
  for (const [name, value] of positive) {
    if (!(value > 0)) throw new RouteSyncError(`${name} must be positive, got ${value}`);
  }
  if (!(o.batchDelayMs >= 0)) throw new RouteSyncError(`batch.maxDelayMs must not be negative, got ${o.batchDelayMs}`);
  if (o.heartbeatMs >= ttlMs) throw new RouteSyncError(`heartbeatMs (${o.heartbeatMs}) must be below ttlMs (${ttlMs})`);
}

const ZERO_COUNTERS: RouteSyncCounters = {
  opsSent: 0,
  opsMessagesSent: 0,
  snapshotChunksSent: 0,
  snapshotRoutesSent: 0,
  heartbeatsSent: 0,
  deltasApplied: 0,
  opsApplied: 0,
  snapshotsApplied: 0,
  duplicates: 0,
  stale: 0,
  gaps: 0,
  resyncsRequested: 0,
  lanesExpired: 0,
};

/**
 * Route sync of one actor: its own lane (from local subscriptions), the lanes it learns from peers, one outbound
 * stream per peer it sends to, one inbound stream per peer that sends to it, and relaying between them as the
 * export policy says. Pure: the caller moves messages (`receive` / `takeOutgoing`) and time (`tick(now)` at
 * `nextWakeup()`); nothing here opens a socket or sets a timer.
 */
export class RouteSync {
  /** The route table, when the hub owns one (no `sink` given). */
  readonly table: RouteTable | null;
  readonly ttlMs: number;
  private readonly sink: RouteSink;
  private readonly local: LocalLane;
  private readonly store: LaneStore;
  private readonly outbound = new Map<string, OutboundSession>();
  private readonly inbound = new Map<string, InboundSession>();
  private readonly outbox: Outgoing[] = [];
  private readonly policy: ExportPolicy;
  private readonly sessionOptions: OutboundOptions;
  private readonly mirrorLocal: boolean;
  private readonly gcIntervalMs: number;
  private readonly resyncRetryMs: number;
  private nextGcAt = 0;
  private readonly counters: RouteSyncCounters = { ...ZERO_COUNTERS };
  private readonly laneSource: LaneSource;
  private readonly snapshots = new Map<string, { incarnation: number; version: number; routes: WeakRef<readonly RouteSpec[]> }>();

  constructor(private readonly options: RouteSyncOptions) {
    for (const [what, value] of [['actor', options.actor], ['cluster', options.cluster], ['role', options.role]] as const) {
      const problem = nameProblem(value);
      if (problem !== null) throw new RouteSyncError(`${what} ${JSON.stringify(value)} ${problem}`);
    }
    if (!Number.isSafeInteger(options.incarnation) || options.incarnation < 0) {
      throw new RouteSyncError(`incarnation must be a non-negative integer, got ${options.incarnation}`);
    }
    this.ttlMs = options.ttlMs ?? 15_000;
    const heartbeatMs = options.heartbeatMs ?? Math.floor(this.ttlMs / 3);
    const batch = { ...DEFAULT_BATCH_LIMITS, ...options.batch };
    this.table = options.sink === undefined ? new RouteTable() : null;
    this.sink = options.sink ?? (this.table as RouteTable);
    this.mirrorLocal = options.mirrorLocal ?? true;
    this.policy = options.policy ?? regionalClusterPolicy;
    this.gcIntervalMs = options.gcIntervalMs ?? Math.min(1000, Math.max(1, Math.floor(this.ttlMs / 10)));
    this.local = new LocalLane(options.actor, options.incarnation, batch);
    this.store = new LaneStore(options.actor, this.sink, {
      ttlMs: this.ttlMs, tombstoneMs: options.tombstoneMs ?? 10 * this.ttlMs, holdOverMs: options.holdOverMs ?? 10 * this.ttlMs,
    });
    this.sessionOptions = {
      cluster: options.cluster,
      actor: options.actor,
      incarnation: options.incarnation,
      role: options.role,
      maxOps: batch.maxOps,
      batchDelayMs: batch.maxDelayMs,
      snapshotChunkRoutes: options.snapshotChunkRoutes ?? 4000,
      snapshotChunkBytes: options.snapshotChunkBytes ?? 1024 * 1024,
      window: options.window ?? 32,
      retransmitMs: options.retransmitMs ?? 2000,
      handshakeRetryMs: options.handshakeRetryMs ?? 2000,
      heartbeatMs,
      maxRetainedOps: options.maxRetainedOps ?? 50_000,
    };
    this.resyncRetryMs = this.sessionOptions.retransmitMs;
    assertTimings(this.ttlMs, this.sessionOptions);
    this.laneSource = { lane: (actor) => this.sourceLane(actor) };
  }

  get actor(): string {
    return this.options.actor;
  }

  get incarnation(): number {
    return this.options.incarnation;
  }

  // ── local subscriptions ────────────────────────────────────────────────────────────────────────────────

  /** A local subscriber to `filter` appeared; returns true when it is the first (the route now exists). */
  subscribe(filter: string, now: number, routeId: string = DEFAULT_ROUTE_ID): boolean {
    const created = this.local.subscribe(filter, routeId, now);
    if (created && this.mirrorLocal) this.sink.add(filter, this.options.actor, routeId);
    return created;
  }

  /** A local subscriber left; returns true when it was the last one (the route is deleted). */
  unsubscribe(filter: string, now: number, routeId: string = DEFAULT_ROUTE_ID): boolean {
    const removed = this.local.unsubscribe(filter, routeId, now);
    if (removed && this.mirrorLocal) this.sink.delete(filter, this.options.actor, routeId);
    return removed;
  }

  localSubscribers(filter: string, routeId: string = DEFAULT_ROUTE_ID): number {
    return this.local.subscribers(filter, routeId);
  }

  // ── peers ──────────────────────────────────────────────────────────────────────────────────────────────

  /** The transport to `peer` is up: (re)open this actor's stream to it. */
  connect(peer: string, now: number): void {
    if (peer === this.options.actor) throw new RouteSyncError('cannot connect to itself', peer);
    let session = this.outbound.get(peer);
    if (session === undefined) {
      session = new OutboundSession(peer, this.laneSource, this.sessionOptions);
      this.outbound.set(peer, session);
    }
    if (session.state !== 'down') session.disconnect();
    this.collect(peer, (out) => session.connect(now, out));
  }

  /** The transport to `peer` is down: both streams with it end (what the peer lacks is resent after reconnect). */
  disconnect(peer: string): void {
    this.outbound.get(peer)?.disconnect();
    if (this.inbound.delete(peer)) this.reevaluateLane(peer);
  }

  /** Drops everything kept for `peer` (it left the cluster for good). Its lane still expires by TTL. */
  forget(peer: string): void {
    this.outbound.delete(peer);
    if (this.inbound.delete(peer)) this.reevaluateLane(peer);
  }

  /**
   * Handles one decoded message from `peer`. Throws RouteSyncError, having applied nothing, when the message
   * breaks the protocol (an init claiming another actor); the caller should then drop the connection.
   */
  receive(peer: string, message: SyncMessage, now: number): void {
    switch (message.type) {
      case 'init':
        return this.onInit(peer, message, now);
      case 'init_ack':
        return this.onInitAck(peer, message, now);
      case 'ack':
        return this.onAck(peer, message, now);
      case 'ops':
        return this.onOps(peer, message, now);
      case 'snapshot':
        return this.onSnapshot(peer, message, now);
      case 'heartbeat':
        return this.onHeartbeat(peer, message, now);
    }
  }

  // ── time ───────────────────────────────────────────────────────────────────────────────────────────────

  /** Does what is due at `now`: local batches, relays, retransmissions, heartbeats, expiry of silent actors. */
  tick(now: number): void {
    this.flushLocal(now);
    if (now >= this.nextGcAt) {
      this.gc(now);
      this.nextGcAt = now + this.gcIntervalMs;
    }
    for (const [peer, session] of this.outbound) this.collect(peer, (out) => session.poll(now, out));
  }

  /** Messages to send, in order per peer. Acks for what was received since the last call are included. */
  takeOutgoing(): Outgoing[] {
    for (const [peer, session] of this.inbound) {
      const ack = session.takeAck();
      if (ack !== null) this.outbox.push({ to: peer, message: ack });
    }
    const taken = this.outbox.splice(0);
    for (const { message } of taken) this.countSent(message);
    return taken;
  }

  /** When tick() should run next (never earlier than `now`). */
  nextWakeup(now: number): number {
    let next = this.nextGcAt;
    const due = this.local.dueAt();
    if (due !== null) next = Math.min(next, due);
    for (const session of this.outbound.values()) {
      const at = session.nextWakeup(now);
      if (at !== null) next = Math.min(next, at);
    }
    return Math.max(next, now);
  }

  /** Removes the routes of actors silent for longer than the TTL; returns what was removed. */
  gc(now: number): ExpiredLane[] {
    for (const session of this.inbound.values()) session.expireAssemblies(now, this.ttlMs);
    const expired = this.store.gc(now);
    for (const lane of expired) {
      this.counters.lanesExpired++;
      this.snapshots.delete(lane.actor);
      for (const session of this.outbound.values()) session.untrack(lane.actor);
      this.emit({ type: 'lane_expired', actor: lane.actor, incarnation: lane.incarnation, routes: lane.routes.length });
    }
    return expired;
  }

  // ── introspection ──────────────────────────────────────────────────────────────────────────────────────

  lanes(): LaneInfo[] {
    const own: LaneInfo = {
      actor: this.options.actor,
      incarnation: this.options.incarnation,
      version: this.local.version,
      routes: this.local.publishedSize,
      heldOver: 0,
      lastHeardAt: Number.NaN,
      local: true,
    };
    const learned = [...this.store.lanes()].map((l) => ({
      actor: l.actor,
      incarnation: l.incarnation,
      version: l.version,
      routes: l.routes.size,
      heldOver: l.heldOver?.size ?? 0,
      lastHeardAt: l.lastHeardAt,
      local: false,
    }));
    return [own, ...learned];
  }

  /** This actor's own routes as peers know them: the lane at its current version (pending changes excluded). */
  ownRoutes(): RouteSpec[] {
    return [...this.local.published()];
  }

  /** Routes of one learned lane (not the local one). */
  laneRoutes(actor: string): RouteSpec[] {
    return this.store.get(actor)?.routes.toArray() ?? [];
  }

  peers(): PeerInfo[] {
    const names = new Set([...this.outbound.keys(), ...this.inbound.keys()]);
    return [...names].map((peer) => {
      const inbound = this.inbound.get(peer);
      return {
        peer,
        outbound: this.outbound.get(peer)?.stats() ?? null,
        inbound:
          inbound === undefined
            ? null
            : { incarnation: inbound.incarnation, conn: inbound.conn, role: inbound.role, assembling: inbound.assembling },
      };
    });
  }

  stats(): RouteSyncCounters & { pendingOps: number; lanes: number } {
    return { ...this.counters, pendingOps: this.local.pendingOps, lanes: this.store.size };
  }

  // ── handshake ──────────────────────────────────────────────────────────────────────────────────────────

  private onInit(peer: string, init: InitMessage, now: number): void {
    if (init.actor !== peer) throw new RouteSyncError(`init names actor ${JSON.stringify(init.actor)}`, peer);
    const refusal = this.refusalOf(init);
    if (refusal !== null) {
      this.emit({ type: 'stream_refused', peer, result: refusal, detail: this.refusalDetail(init, refusal) });
      this.sendInitAck(peer, init, refusal);
      return;
    }
    const existing = this.inbound.get(peer);
    const order = existing?.compareStream(init.incarnation, init.conn) ?? 1;
    if (order < 0) {
      // Same incarnation, lower connection number: either an init that outlived its connection (its sender ignores
      // an answer for a stream that is not current) or a peer that lost its state and counts again from the same
      // incarnation, which would otherwise wait for an answer forever.
      if (existing !== undefined && init.incarnation === existing.incarnation) this.refuseRepeatedIncarnation(peer, init, existing.conn);
      return;
    }
    if (order > 0) {
      this.store.observeIncarnation(peer, init.incarnation, now);
      this.inbound.set(peer, new InboundSession(peer, init.incarnation, init.conn, init.role, this.resyncRetryMs));
    }
    this.sendInitAck(peer, init, 'ok');
    if (existing === undefined) this.reevaluateLane(peer);
  }

  private refuseRepeatedIncarnation(peer: string, init: InitMessage, knownConn: number): void {
    const detail = `peer runs incarnation ${init.incarnation} connection ${init.conn}, connection ${knownConn} of that incarnation was seen before`;
    this.emit({ type: 'stream_refused', peer, result: 'stale_incarnation', detail });
    this.sendInitAck(peer, init, 'stale_incarnation');
  }

  private refusalOf(init: InitMessage): InitResult | null {
    if (init.protocol !== PROTOCOL_VERSION) return 'unsupported_protocol';
    if (init.cluster !== this.options.cluster) return 'wrong_cluster';
    const known = this.store.knownIncarnation(init.actor);
    if (known !== undefined && init.incarnation < known) return 'stale_incarnation';
    return null;
  }

  private refusalDetail(init: InitMessage, result: InitResult): string {
    if (result === 'wrong_cluster') return `peer is in cluster ${JSON.stringify(init.cluster)}, this node in ${JSON.stringify(this.options.cluster)}`;
    if (result === 'unsupported_protocol') return `peer speaks protocol ${init.protocol}, this node ${PROTOCOL_VERSION}`;
    return `peer runs incarnation ${init.incarnation}, incarnation ${this.store.knownIncarnation(init.actor)} was seen before`;
  }

  private sendInitAck(peer: string, init: InitMessage, result: InitResult): void {
    this.outbox.push({
      to: peer,
      message: {
        type: 'init_ack',
        incarnation: init.incarnation,
        conn: init.conn,
        result,
        cluster: this.options.cluster,
        actor: this.options.actor,
        actorIncarnation: this.options.incarnation,
        role: this.options.role,
        knownIncarnation: this.store.knownIncarnation(init.actor) ?? 0,
        lanes: result === 'ok' ? this.store.versions() : [],
      },
    });
  }

  private onInitAck(peer: string, message: Extract<SyncMessage, { type: 'init_ack' }>, now: number): void {
    const session = this.outbound.get(peer);
    if (session === undefined) return;
    if (message.result === 'ok' && message.actor !== peer) {
      throw new RouteSyncError(`init_ack names actor ${JSON.stringify(message.actor)}`, peer);
    }
    const report = session.acceptInitAck(message, now);
    if (report === null) {
      if (session.state === 'rejected') {
        this.emit({ type: 'stream_rejected', peer, result: message.result, knownIncarnation: message.knownIncarnation });
      }
      return;
    }
    this.reevaluateSession(session);
    session.resume(report);
    this.collect(peer, (out) => session.poll(now, out));
  }

  private onAck(peer: string, ack: AckMessage, now: number): void {
    const session = this.outbound.get(peer);
    if (session === undefined) return;
    for (const ref of ack.resync) this.emit({ type: 'resync_requested', peer, actor: ref.actor });
    this.collect(peer, (out) => {
      session.acceptAck(ack, now, out);
      session.poll(now, out); // the window may have opened
    });
  }

  // ── the receiving side ─────────────────────────────────────────────────────────────────────────────────

  /** The inbound session a stream message belongs to; null (after asking for a new handshake if need be). */
  private streamOf(peer: string, message: OpsMessage | SnapshotMessage | HeartbeatMessage): InboundSession | null {
    const session = this.inbound.get(peer);
    const order = session?.compareStream(message.incarnation, message.conn) ?? 1;
    if (order === 0) return session as InboundSession;
    if (order > 0) {
      const ack: AckMessage = { type: 'ack', incarnation: message.incarnation, conn: message.conn, seq: 0, resync: [], reinit: true };
      this.outbox.push({ to: peer, message: ack });
    }
    return null;
  }

  private onOps(peer: string, message: OpsMessage, now: number): void {
    const session = this.streamOf(peer, message);
    if (session === null || session.admit(message.seq) !== 'process') return;
    for (const delta of message.deltas) {
      session.noteDelta(delta.actor);
      const result = this.store.applyDelta(delta, now);
      this.afterApply(peer, session, delta, result, now);
      if (result.outcome === 'applied' && result.change?.kind === 'delta') {
        this.counters.deltasApplied++;
        this.counters.opsApplied += delta.ops.length;
      }
    }
  }

  private onSnapshot(peer: string, message: SnapshotMessage, now: number): void {
    const session = this.streamOf(peer, message);
    if (session === null || session.admit(message.seq) !== 'process') return;
    const complete = session.addChunk(message, now);
    if (complete === null) return;
    const result = this.store.applySnapshot(complete.lane, complete.routes, now);
    if (result.outcome === 'applied') this.counters.snapshotsApplied++;
    this.afterApply(peer, session, complete.lane, result, now);
  }

  private onHeartbeat(peer: string, message: HeartbeatMessage, now: number): void {
    const session = this.streamOf(peer, message);
    if (session === null) return;
    const inOrder = session.caughtUpTo(message.afterSeq);
    for (const lane of message.lanes) {
      const outcome = this.store.heartbeat(lane, now);
      if (outcome === 'alive' || outcome === 'behind') this.relayAlive(lane.actor);
      if ((outcome === 'behind' || outcome === 'unknown') && inOrder) this.askResync(session, lane, now);
    }
  }

  private afterApply(peer: string, session: InboundSession, lane: LaneVersion, result: ApplyResult, now: number): void {
    switch (result.outcome) {
      case 'applied':
        this.propagate(peer, result.change as LaneChange);
        return;
      case 'gap':
        this.counters.gaps++;
        this.askResync(session, lane, now);
        return;
      case 'duplicate':
        this.counters.duplicates++;
        return;
      case 'stale':
        this.counters.stale++;
        return;
      case 'own':
        return;
    }
  }

  private askResync(session: InboundSession, lane: LaneVersion, now: number): void {
    this.counters.resyncsRequested++;
    session.requestResync(lane, now);
  }

  /** Passes an accepted change on to the peers that export the lane. */
  private propagate(from: string, change: LaneChange): void {
    if (change.kind === 'delta') {
      for (const session of this.outbound.values()) session.enqueue(change.delta);
      return;
    }
    const lane = this.store.get(change.lane.actor);
    this.emit({
      type: 'lane_new',
      actor: change.lane.actor,
      incarnation: change.lane.incarnation,
      version: change.lane.version,
      routes: lane?.routes.size ?? 0,
      replacedIncarnation: change.replaced?.incarnation ?? null,
      from,
    });
    for (const session of this.outbound.values()) {
      if (this.exports(session, change.lane.actor)) session.track(change.lane, true);
      else session.untrack(change.lane.actor);
    }
  }

  private relayAlive(actor: string): void {
    for (const session of this.outbound.values()) session.noteAlive(actor);
  }

  // ── the sending side ───────────────────────────────────────────────────────────────────────────────────

  private flushLocal(now: number): void {
    for (let delta = this.local.takeBatch(now); delta !== null; delta = this.local.takeBatch(now)) {
      for (const session of this.outbound.values()) session.enqueue(delta);
    }
  }

  private sourceLane(actor: string): ReturnType<LaneSource['lane']> {
    if (actor === this.options.actor) {
      const { incarnation, version } = this.local;
      return { incarnation, version, routes: () => this.snapshotOf(actor, incarnation, version, () => this.local.published()) };
    }
    const lane = this.store.get(actor);
    if (lane === undefined) return undefined;
    const { incarnation, version } = lane;
    return { incarnation, version, routes: () => this.snapshotOf(actor, incarnation, version, () => lane.routes) };
  }

  /**
   * A lane's routes at one version as an array, built once and shared: when a core restarts, all its replicants
   * bootstrap from the same arrays instead of one copy of the table each.
   */
  private snapshotOf(actor: string, incarnation: number, version: number, routes: () => Iterable<RouteSpec>): readonly RouteSpec[] {
    const cached = this.snapshots.get(actor);
    const shared = cached?.incarnation === incarnation && cached.version === version ? cached.routes.deref() : undefined;
    if (shared !== undefined) return shared;
    const built: readonly RouteSpec[] = Array.from(routes());
    // Held weakly: the array lives as long as some peer is still being sent it.
    this.snapshots.set(actor, { incarnation, version, routes: new WeakRef(built) });
    return built;
  }

  private exports(session: OutboundSession, actor: string): boolean {
    const isLocal = actor === this.options.actor;
    const origin = this.inbound.get(actor);
    return this.policy({
      lane: actor,
      isLocal,
      originConnected: origin !== undefined,
      originRole: origin?.role,
      peer: session.peer,
      peerRole: session.peerRole,
    });
  }

  /** After a handshake: the lanes this session should export, given what is known now. */
  private reevaluateSession(session: OutboundSession): void {
    const versions: LaneVersion[] = [
      { actor: this.options.actor, incarnation: this.local.incarnation, version: this.local.version },
      ...this.store.versions(),
    ];
    const wanted = new Set<string>();
    for (const version of versions) {
      if (!this.exports(session, version.actor)) continue;
      wanted.add(version.actor);
      session.track(version, false);
    }
    for (const actor of [...session.exportedActors()]) if (!wanted.has(actor)) session.untrack(actor);
  }

  /** A lane's eligibility may have changed (its owner connected or disconnected). */
  private reevaluateLane(actor: string): void {
    const lane = this.store.get(actor);
    if (lane === undefined) return;
    const version = { actor, incarnation: lane.incarnation, version: lane.version };
    for (const session of this.outbound.values()) {
      if (session.state !== 'ready') continue;
      if (this.exports(session, actor)) session.track(version, false);
      else session.untrack(actor);
    }
  }

  private collect(peer: string, produce: (out: SenderMessage[]) => void): void {
    const out: SenderMessage[] = [];
    produce(out);
    for (const message of out) this.outbox.push({ to: peer, message });
  }

  private countSent(message: SyncMessage): void {
    if (message.type === 'ops') {
      this.counters.opsMessagesSent++;
      for (const d of message.deltas) this.counters.opsSent += d.ops.length;
    } else if (message.type === 'snapshot') {
      this.counters.snapshotChunksSent++;
      this.counters.snapshotRoutesSent += message.routes.length;
    } else if (message.type === 'heartbeat') {
      this.counters.heartbeatsSent++;
    }
  }

  private emit(event: RouteSyncEvent): void {
    this.options.onEvent?.(event);
  }
}
