import type {
  AckMessage,
  InitAckMessage,
  InitResult,
  LaneDelta,
  LaneVersion,
  OpsMessage,
  RouteOp,
  RouteSpec,
  SenderMessage,
  SnapshotMessage,
} from './messages.js';
import { PROTOCOL_VERSION } from './messages.js';
import { routeKey } from './route-set.js';

/** Read access to the lanes a session exports (the local lane and relayed ones). */
export interface LaneSource {
  /**
   * The lane's current version, and its routes at exactly that version as an array that must not be modified
   * (sources share one array between all the peers that bootstrap from the same version).
   */
  lane(actor: string): { incarnation: number; version: number; routes(): readonly RouteSpec[] } | undefined;
}

export interface OutboundOptions {
  cluster: string;
  actor: string;
  incarnation: number;
  role: string;
  maxOps: number;
  /** Delay before a relayed liveness is passed on (they are batched like ops). */
  batchDelayMs: number;
  snapshotChunkRoutes: number;
  /** A snapshot chunk also ends once its filters and route ids reach about this many bytes. */
  snapshotChunkBytes: number;
  /** At most this many sequenced messages unacknowledged; more work waits (back-pressure). */
  window: number;
  retransmitMs: number;
  handshakeRetryMs: number;
  heartbeatMs: number;
  /** Deltas kept for a peer beyond this many ops are dropped in favour of a snapshot later. */
  maxRetainedOps: number;
}

export type OutboundState = 'down' | 'handshake' | 'ready' | 'rejected';

interface SentDelta {
  delta: LaneDelta;
  seq: number;
}

interface SnapshotProgress {
  version: number;
  routes: readonly RouteSpec[];
  offset: number;
  part: number;
}

/** What this session has told the peer about one lane. */
interface ExportedLane {
  actor: string;
  incarnation: number;
  /** Version the queued deltas lead to. */
  head: number;
  /** Version the emitted messages lead to (what a heartbeat claims). */
  emitted: number;
  /** Emitted but unacknowledged deltas, contiguous, oldest first: resent after a reconnect when they suffice. */
  retained: SentDelta[];
  queued: LaneDelta[];
  retainedOps: number;
  snapshot: 'none' | 'wanted' | SnapshotProgress;
}

interface Unacked {
  message: OpsMessage | SnapshotMessage;
  sentAt: number;
}

export interface OutboundStats {
  state: OutboundState;
  conn: number;
  lanes: number;
  unacked: number;
  queuedOps: number;
  snapshotsInProgress: number;
  rejection: InitResult | null;
}

/**
 * The sending half of one stream: this actor → one peer. It exports a set of lanes (chosen by the caller's
 * policy), keeps per lane the deltas the peer may still lack, and turns them into sequenced messages with a
 * bounded window, retransmission, and a handshake after every (re)connect from which it learns, lane by lane,
 * whether to resend deltas, bootstrap with a snapshot, or send nothing.
 */
export class OutboundSession {
  private currentState: OutboundState = 'down';
  private conn = 0;
  private nextSeq = 1;
  private unacked: Unacked[] = [];
  private readonly exported = new Map<string, ExportedLane>();
  /** Lanes with queued deltas or a snapshot to send. */
  private readonly dirty = new Set<string>();
  /** Lanes whose liveness is to be passed on in the next heartbeat. */
  private readonly alive = new Set<string>();
  private handshakeSentAt = 0;
  private nextHeartbeatAt = 0;
  private lastHeartbeatAt = Number.NEGATIVE_INFINITY;
  private rejection: InitResult | null = null;
  peerRole: string | undefined;
  peerIncarnation: number | undefined;

  constructor(
    readonly peer: string,
    private readonly source: LaneSource,
    private readonly options: OutboundOptions,
  ) {}

  get state(): OutboundState {
    return this.currentState;
  }

  get connection(): number {
    return this.conn;
  }

  /** The transport to the peer is up: start a new stream with a handshake. */
  connect(now: number, out: SenderMessage[]): void {
    this.conn++;
    this.currentState = 'handshake';
    this.rejection = null;
    this.unacked = [];
    this.nextSeq = 1;
    this.sendInit(now, out);
  }

  /** The transport went down: unacknowledged work stays per lane until the next handshake says what to resend. */
  disconnect(): void {
    this.currentState = 'down';
    this.unacked = [];
    for (const lane of this.exported.values()) {
      if (lane.snapshot !== 'none') lane.snapshot = 'wanted';
    }
  }

  isExporting(actor: string): boolean {
    return this.exported.has(actor);
  }

  exportedActors(): IterableIterator<string> {
    return this.exported.keys();
  }

  /**
   * Starts exporting a lane. With `bootstrap` (a lane new here, so surely new to the peer) a snapshot goes out
   * at once; otherwise the session assumes the peer is up to date and announces the lane in its next heartbeat,
   * and a peer that lacks it asks for a snapshot. Before the handshake, resume() decides from the peer's report.
   */
  track(version: LaneVersion, bootstrap: boolean): void {
    const current = this.exported.get(version.actor);
    if (current !== undefined && current.incarnation === version.incarnation) return;
    this.exported.set(version.actor, {
      actor: version.actor,
      incarnation: version.incarnation,
      head: version.version,
      emitted: version.version,
      retained: [],
      queued: [],
      retainedOps: 0,
      snapshot: 'none',
    });
    this.dirty.delete(version.actor);
    if (this.currentState !== 'ready') return;
    if (bootstrap) this.wantSnapshot(this.exported.get(version.actor) as ExportedLane);
    else this.alive.add(version.actor);
  }

  untrack(actor: string): void {
    this.exported.delete(actor);
    this.dirty.delete(actor);
    this.alive.delete(actor);
  }

  /** A change of an exported lane, to be passed on. */
  enqueue(delta: LaneDelta): void {
    const lane = this.exported.get(delta.actor);
    if (lane === undefined || lane.incarnation !== delta.incarnation || lane.snapshot === 'wanted') return;
    if (delta.version <= lane.head) return;
    if (delta.base !== lane.head) {
      this.wantSnapshot(lane);
      return;
    }
    appendDelta(lane, delta, this.options.maxOps);
    if (lane.retainedOps > this.options.maxRetainedOps) this.wantSnapshot(lane);
    else this.dirty.add(lane.actor);
  }

  /** A relayed lane showed signs of life: pass it on with the next heartbeat. */
  noteAlive(actor: string): void {
    if (this.exported.has(actor)) this.alive.add(actor);
  }

  /** Handles the handshake reply; returns the peer's lane report when the stream is accepted, else null. */
  acceptInitAck(message: InitAckMessage, now: number): Map<string, LaneVersion> | null {
    if (!this.isCurrentStream(message.incarnation, message.conn) || this.currentState !== 'handshake') return null;
    this.peerRole = message.role;
    this.peerIncarnation = message.actorIncarnation;
    if (message.result !== 'ok') {
      this.currentState = 'rejected';
      this.rejection = message.result;
      return null;
    }
    this.currentState = 'ready';
    this.nextHeartbeatAt = now;
    const report = new Map<string, LaneVersion>();
    for (const lane of message.lanes) report.set(lane.actor, lane);
    return report;
  }

  /** After the handshake: decides per exported lane what the peer still needs. */
  resume(report: ReadonlyMap<string, LaneVersion>): void {
    for (const lane of this.exported.values()) this.resumeLane(lane, report.get(lane.actor));
  }

  /** Handles an acknowledgement: prunes what the peer has, starts requested snapshots, restarts on `reinit`. */
  acceptAck(message: AckMessage, now: number, out: SenderMessage[]): void {
    if (!this.isCurrentStream(message.incarnation, message.conn)) return;
    if (message.reinit) {
      if (this.currentState === 'ready' || this.currentState === 'handshake') this.reconnect(now, out);
      return;
    }
    if (this.currentState !== 'ready') return;
    while (this.unacked.length > 0 && this.unacked[0].message.seq <= message.seq) this.unacked.shift();
    for (const lane of this.exported.values()) pruneAcked(lane, message.seq);
    for (const ref of message.resync) {
      const lane = this.exported.get(ref.actor);
      if (lane !== undefined && lane.incarnation >= ref.incarnation) this.wantSnapshot(lane);
    }
  }

  /** Emits what is due: init retries, retransmissions, deltas, snapshot chunks, heartbeats. */
  poll(now: number, out: SenderMessage[]): void {
    if (this.currentState === 'handshake') {
      if (now - this.handshakeSentAt >= this.options.handshakeRetryMs) this.sendInit(now, out);
      return;
    }
    if (this.currentState !== 'ready') return;
    this.retransmit(now, out);
    this.emitDeltas(now, out);
    this.emitSnapshots(now, out);
    this.emitHeartbeat(now, out);
  }

  /** When poll() has something to do next (`now` or earlier: right away); null when idle. */
  nextWakeup(now: number): number | null {
    if (this.currentState === 'handshake') return this.handshakeSentAt + this.options.handshakeRetryMs;
    if (this.currentState !== 'ready') return null;
    let next = this.nextHeartbeatAt;
    if (this.alive.size > 0) next = Math.min(next, this.lastHeartbeatAt + this.options.batchDelayMs);
    if (this.unacked.length > 0) next = Math.min(next, this.unacked[0].sentAt + this.options.retransmitMs);
    if (this.dirty.size > 0 && this.unacked.length < this.options.window) next = Math.min(next, now);
    return next;
  }

  stats(): OutboundStats {
    let queuedOps = 0;
    let snapshots = 0;
    for (const lane of this.exported.values()) {
      for (const d of lane.queued) queuedOps += d.ops.length;
      if (lane.snapshot !== 'none') snapshots++;
    }
    return {
      state: this.currentState,
      conn: this.conn,
      lanes: this.exported.size,
      unacked: this.unacked.length,
      queuedOps,
      snapshotsInProgress: snapshots,
      rejection: this.rejection,
    };
  }

  private reconnect(now: number, out: SenderMessage[]): void {
    this.disconnect();
    this.connect(now, out);
  }

  private isCurrentStream(incarnation: number, conn: number): boolean {
    return incarnation === this.options.incarnation && conn === this.conn;
  }

  private sendInit(now: number, out: SenderMessage[]): void {
    this.handshakeSentAt = now;
    const { cluster, actor, incarnation, role } = this.options;
    out.push({ type: 'init', protocol: PROTOCOL_VERSION, cluster, actor, incarnation, role, conn: this.conn });
  }

  private resumeLane(lane: ExportedLane, reported: LaneVersion | undefined): void {
    const current = this.source.lane(lane.actor);
    if (reported !== undefined && reported.incarnation > lane.incarnation) {
      this.settle(lane, lane.head); // the peer knows a newer incarnation: ours has nothing to offer
      return;
    }
    if (reported === undefined || reported.incarnation < lane.incarnation || current === undefined) {
      this.wantSnapshot(lane);
      return;
    }
    if (lane.snapshot !== 'none') {
      if (reported.version >= current.version) this.settle(lane, current.version);
      else this.wantSnapshot(lane);
      return;
    }
    if (reported.version >= lane.head) {
      this.settle(lane, lane.head);
      return;
    }
    const chain = [...lane.retained.map((s) => s.delta), ...lane.queued];
    const from = chain.findIndex((d) => d.base === reported.version);
    if (from < 0) {
      this.wantSnapshot(lane);
      return;
    }
    lane.retained = [];
    lane.queued = [];
    lane.retainedOps = 0;
    for (const delta of chain.slice(from)) appendDelta(lane, delta, this.options.maxOps);
    lane.emitted = reported.version;
    this.dirty.add(lane.actor);
    this.alive.add(lane.actor);
  }

  /** The peer has (at least) `version`: nothing to resend. */
  private settle(lane: ExportedLane, version: number): void {
    lane.retained = [];
    lane.queued = [];
    lane.retainedOps = 0;
    lane.snapshot = 'none';
    lane.head = version;
    lane.emitted = version;
    this.dirty.delete(lane.actor);
    this.alive.add(lane.actor);
  }

  private wantSnapshot(lane: ExportedLane): void {
    lane.snapshot = 'wanted';
    lane.retained = [];
    lane.queued = [];
    lane.retainedOps = 0;
    this.dirty.add(lane.actor);
  }

  private retransmit(now: number, out: SenderMessage[]): void {
    if (this.unacked.length === 0 || now - this.unacked[0].sentAt < this.options.retransmitMs) return;
    for (const entry of this.unacked) {
      entry.sentAt = now;
      out.push(entry.message);
    }
  }

  private emitDeltas(now: number, out: SenderMessage[]): void {
    let message: OpsMessage | null = null;
    let ops = 0;
    for (const actor of this.dirty) {
      const lane = this.exported.get(actor);
      if (lane === undefined || lane.snapshot !== 'none') continue;
      while (lane.queued.length > 0) {
        const delta = lane.queued[0];
        if (message !== null && ops + delta.ops.length > this.options.maxOps) {
          this.sendSequenced(message, now, out);
          message = null;
        }
        if (message === null) {
          if (this.unacked.length >= this.options.window) return;
          message = { type: 'ops', incarnation: this.options.incarnation, conn: this.conn, seq: this.nextSeq++, deltas: [] };
          ops = 0;
        }
        lane.queued.shift();
        message.deltas.push(delta);
        ops += delta.ops.length;
        lane.retained.push({ delta, seq: message.seq });
        lane.emitted = delta.version;
      }
      this.dirty.delete(actor);
    }
    if (message !== null) this.sendSequenced(message, now, out);
  }

  private emitSnapshots(now: number, out: SenderMessage[]): void {
    for (const actor of this.dirty) {
      const lane = this.exported.get(actor);
      if (lane === undefined || lane.snapshot === 'none') continue;
      while (snapshotPending(lane)) {
        if (this.unacked.length >= this.options.window) return;
        this.emitSnapshotChunk(lane, now, out);
      }
      if (lane.queued.length === 0) this.dirty.delete(actor);
    }
    // Deltas queued behind a snapshot that just completed may go out at once.
    if (this.dirty.size > 0) this.emitDeltas(now, out);
  }

  private emitSnapshotChunk(lane: ExportedLane, now: number, out: SenderMessage[]): void {
    if (lane.snapshot === 'wanted') {
      const current = this.source.lane(lane.actor);
      if (current === undefined || current.incarnation !== lane.incarnation) {
        this.untrack(lane.actor); // the lane is gone or replaced: the caller re-tracks the new one
        lane.snapshot = 'none';
        return;
      }
      lane.snapshot = { version: current.version, routes: current.routes(), offset: 0, part: 0 };
      lane.head = current.version;
    }
    const progress = lane.snapshot as SnapshotProgress;
    const end = chunkEnd(progress.routes, progress.offset, this.options.snapshotChunkRoutes, this.options.snapshotChunkBytes);
    const last = end === progress.routes.length;
    this.sendSequenced(
      {
        type: 'snapshot',
        incarnation: this.options.incarnation,
        conn: this.conn,
        seq: this.nextSeq++,
        lane: { actor: lane.actor, incarnation: lane.incarnation, version: progress.version },
        part: progress.part,
        last,
        routes: progress.routes.slice(progress.offset, end),
      },
      now,
      out,
    );
    progress.offset = end;
    progress.part++;
    if (!last) return;
    lane.snapshot = 'none';
    lane.emitted = progress.version;
  }

  private emitHeartbeat(now: number, out: SenderMessage[]): void {
    const periodic = now >= this.nextHeartbeatAt;
    if (periodic) {
      this.nextHeartbeatAt = now + this.options.heartbeatMs;
      if (this.exported.has(this.options.actor)) this.alive.add(this.options.actor);
    }
    if (this.alive.size === 0) return;
    if (!periodic && now - this.lastHeartbeatAt < this.options.batchDelayMs) return;
    const lanes: LaneVersion[] = [];
    for (const actor of this.alive) {
      const lane = this.exported.get(actor);
      if (lane !== undefined) lanes.push({ actor, incarnation: lane.incarnation, version: lane.emitted });
    }
    this.alive.clear();
    this.lastHeartbeatAt = now;
    if (lanes.length === 0) return;
    out.push({ type: 'heartbeat', incarnation: this.options.incarnation, conn: this.conn, afterSeq: this.nextSeq - 1, lanes });
  }

  private sendSequenced(message: OpsMessage | SnapshotMessage, now: number, out: SenderMessage[]): void {
    this.unacked.push({ message, sentAt: now });
    out.push(message);
  }
}

/** Where a chunk starting at `offset` ends: after `maxRoutes` routes or about `maxBytes` (at least one route). */
function chunkEnd(routes: readonly RouteSpec[], offset: number, maxRoutes: number, maxBytes: number): number {
  const limit = Math.min(routes.length, offset + maxRoutes);
  let bytes = 0;
  for (let i = offset; i < limit; i++) {
    bytes += routes[i].filter.length + routes[i].routeId.length + 2;
    if (bytes >= maxBytes && i > offset) return i;
  }
  return limit;
}

function snapshotPending(lane: ExportedLane): boolean {
  return lane.snapshot !== 'none';
}

function pruneAcked(lane: ExportedLane, seq: number): void {
  let dropped = 0;
  while (lane.retained.length > 0 && lane.retained[0].seq <= seq) {
    dropped += (lane.retained.shift() as SentDelta).delta.ops.length;
  }
  lane.retainedOps -= dropped;
}

/** Queues a delta that starts at lane.head, merged into the last queued one while the batch stays small. */
function appendDelta(lane: ExportedLane, delta: LaneDelta, maxOps: number): void {
  const last = lane.queued[lane.queued.length - 1];
  if (last !== undefined && last.version === delta.base && last.ops.length + delta.ops.length <= maxOps) {
    const merged = mergeDeltas(last, delta);
    lane.queued[lane.queued.length - 1] = merged;
    lane.retainedOps += merged.ops.length - last.ops.length;
  } else {
    lane.queued.push(delta);
    lane.retainedOps += delta.ops.length;
  }
  lane.head = delta.version;
}

/** `first` then `second` as one delta from first.base: the later operation on a route wins. */
export function mergeDeltas(first: LaneDelta, second: LaneDelta): LaneDelta {
  const byRoute = new Map<string, RouteOp>();
  for (const op of first.ops) byRoute.set(routeKey(op.filter, op.routeId), op);
  for (const op of second.ops) byRoute.set(routeKey(op.filter, op.routeId), op);
  return { actor: first.actor, incarnation: first.incarnation, base: first.base, version: second.version, ops: [...byRoute.values()] };
}
