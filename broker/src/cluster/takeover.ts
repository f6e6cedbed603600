import { randomUUID } from 'node:crypto';
import type { AedesOptions, AuthenticateError, Client } from 'aedes';
import type { AdminServer } from '../admin/server.js';
import type { Logger } from '../log/logger.js';
import type { DetachedSession, DurablePersistence, SessionImport, SessionSnapshot, StoredPacket } from '../store/persistence.js';
import type { RpcHandler, RpcHeader, RpcMessage } from './rpc.js';
import { checkClaims, checkRouteCheck, checkRoutesReady, decodeSnapshot, encodeSnapshot, type ClaimsMessage, type RouteCheck } from './session-codec.js';

/**
 * Cluster-wide client identity (see README.md, "Client identity and session takeover"). Every node announces the
 * client ids it holds — a connection or a stored session — each with the time of the claim; a CONNECT on this
 * node, once authenticated, asks every other holder of its id to hand over: the holder closes its connections and,
 * for a CleanSession 0 CONNECT, the session moves here in three steps (export, commit, release) so that a crash at
 * any point leaves a copy somewhere. Of two claims the later (time, then node id) wins.
 */

export type TakeoverRole = 'taken' | 'handed' | 'superseded' | 'unreachable';

export interface TakeoverOptions {
  /** How long a CONNECT waits for an unreachable node holding its client id, counted from when the node went down. */
  unreachableWaitMs: number;
  /** Reply timeout of one takeover request to another node. */
  requestTimeoutMs: number;
  /** How long a node keeps a session it exported ready for its commit and release before taking it back. */
  handoverTimeoutMs: number;
  /** How long a CONNECT keeps retrying a node busy with the same client id (its own connect or handover). */
  busyRetryMs: number;
  /** Claims per message when a node sends all of its claims to a peer. */
  claimsPerMessage: number;
  /** How long a taker waits for every peer to hold the routes of an imported session before it commits anyway. */
  routeWaitMs: number;
}

export const DEFAULT_TAKEOVER_OPTIONS: TakeoverOptions = {
  unreachableWaitMs: 5000, requestTimeoutMs: 5000, handoverTimeoutMs: 15000, busyRetryMs: 10000, claimsPerMessage: 5000, routeWaitMs: 3000,
};

/** A connection as this module uses it (aedes' Client). */
export type TakeoverClient = Pick<Client, 'id' | 'clean' | 'close'> & { conn: { once(event: 'close', listener: () => void): unknown } };

export type SessionStore = Pick<DurablePersistence,
  'hasSession' | 'sessionClientIds' | 'exportSession' | 'importSession' | 'detachSession' | 'reattachSession' |
  'deleteDetachedSession' | 'deleteSession' | 'queuedCount' | 'subscriptionObserver' | 'outgoingEnqueueCombi'>;

export interface TakeoverRpc {
  handle(kind: string, handler: RpcHandler): void;
  request(nodeId: string, header: RpcHeader, body?: Buffer, timeoutMs?: number): Promise<RpcMessage>;
  notify(nodeId: string, header: RpcHeader, body?: Buffer): Promise<void>;
}

export interface TakeoverPeers {
  /** `since`: when the node's current state (connected or not) began, ms since the epoch. */
  get(nodeId: string): { connected: boolean; since: number } | undefined;
  /** `role`: `core` and `replicant` nodes run this protocol; others (a sidecar link agent: `agent`) do not. */
  list(): { nodeId: string; connected: boolean; role?: string }[];
}

/** The cluster route table, as the handover reads it. */
export interface TakeoverRoutes {
  has(filter: string, owner: string, routeId: string): boolean;
}

export interface TakeoverDeps {
  nodeId: string;
  /**
   * The cluster route table: with it a taker commits only once every peer holds its routes for the session (see
   * README.md, "Handover"). Without it (a test of the protocol alone) the handover commits right after the import.
   */
  routes?: TakeoverRoutes;
  /**
   * Told that a peer reads the origin identity of forwarded copies (forward format version 3): each node announces
   * it to every peer it connects to. A copy to a node that did not is sent without it (an older node refuses it).
   */
  originIds?: (nodeId: string) => void;
  store: SessionStore;
  rpc: TakeoverRpc;
  peers: TakeoverPeers;
  /** `meridian_cluster_takeovers_total{role}`. */
  takeovers: { inc(labels: { role: TakeoverRole }): void };
  logger: Logger;
  now?: () => number;
}

/** A claim on a client id: the later time wins, the node id breaks ties. */
export interface Claim {
  time: number;
  node: string;
}

export function compareClaims(a: Claim, b: Claim): number {
  if (a.time !== b.time) return a.time - b.time;
  return a.node < b.node ? -1 : a.node > b.node ? 1 : 0;
}

const KIND = {
  claims: 'session.claims', takeover: 'session.takeover', commit: 'session.commit', release: 'session.release',
  routes: 'session.routes', routesReady: 'session.routes-ready', flush: 'session.flush', originIds: 'session.origin-ids',
} as const;
const ROUTE_POLL_MS = 5;
/**
 * How long a taker remembers the late messages of a handover: the holder forwards a message it published itself
 * only after its durable write, so that copy can reach the taker after the late import (and the client's ack of it).
 */
const LATE_MEMORY_MS = 10_000;
const EMPTY = Buffer.alloc(0);
const BUSY_BACKOFF_MS = { first: 20, max: 500 };

type PullOutcome = 'done' | 'superseded' | 'unreachable' | 'failed';

/** Which node claims which client id, with the claim times: this node's own claims and those other nodes announced. */
export class ClaimRegistry {
  private readonly own = new Map<string, number>();
  private readonly remote = new Map<string, Map<string, number>>();
  private readonly byNode = new Map<string, Set<string>>();

  ownTime(clientId: string): number | undefined { return this.own.get(clientId); }
  setOwn(clientId: string, time: number): void { this.own.set(clientId, time); }
  dropOwn(clientId: string): boolean { return this.own.delete(clientId); }
  ownClaims(): [string, number][] { return [...this.own]; }
  get ownCount(): number { return this.own.size; }

  remoteTime(clientId: string, node: string): number | undefined { return this.remote.get(clientId)?.get(node); }

  /** Other nodes claiming the id. */
  holders(clientId: string): string[] { return [...(this.remote.get(clientId)?.keys() ?? [])]; }

  /** Every claim on the id, this node's included. */
  claims(clientId: string, self: string): Claim[] {
    const all = [...(this.remote.get(clientId) ?? [])].map(([node, time]) => ({ node, time }));
    const own = this.own.get(clientId);
    if (own !== undefined) all.push({ node: self, time: own });
    return all.sort(compareClaims);
  }

  /** The latest claim time known for the id (0 if none). */
  latest(clientId: string): number {
    let latest = this.own.get(clientId) ?? 0;
    for (const time of this.remote.get(clientId)?.values() ?? []) latest = Math.max(latest, time);
    return latest;
  }

  setRemote(node: string, clientId: string, time: number): void {
    let claims = this.remote.get(clientId);
    if (!claims) {
      claims = new Map();
      this.remote.set(clientId, claims);
    }
    claims.set(node, time);
    let ids = this.byNode.get(node);
    if (!ids) {
      ids = new Set();
      this.byNode.set(node, ids);
    }
    ids.add(clientId);
  }

  dropRemote(node: string, clientId: string): void {
    const claims = this.remote.get(clientId);
    if (claims?.delete(node) && claims.size === 0) this.remote.delete(clientId);
    this.byNode.get(node)?.delete(clientId);
  }

  dropNode(node: string): void {
    for (const clientId of this.byNode.get(node) ?? []) {
      const claims = this.remote.get(clientId);
      if (claims?.delete(node) && claims.size === 0) this.remote.delete(clientId);
    }
    this.byNode.delete(node);
  }

  remoteCounts(): Record<string, number> {
    return Object.fromEntries([...this.byNode].map(([node, ids]) => [node, ids.size]));
  }
}

/** One holder of each client id's lock at a time; others wait in order. */
class ClientLocks {
  private readonly waiting = new Map<string, (() => void)[]>();

  isHeld(clientId: string): boolean { return this.waiting.has(clientId); }

  tryAcquire(clientId: string): (() => void) | undefined {
    if (this.waiting.has(clientId)) return undefined;
    this.waiting.set(clientId, []);
    return this.releaser(clientId);
  }

  acquire(clientId: string): Promise<() => void> {
    const queue = this.waiting.get(clientId);
    if (!queue) return Promise.resolve(this.tryAcquire(clientId) as () => void);
    return new Promise((resolve) => queue.push(() => resolve(this.releaser(clientId))));
  }

  private releaser(clientId: string): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.get(clientId)?.shift();
      if (next) next();
      else this.waiting.delete(clientId);
    };
  }
}

/** A session this node exported to `to`, waiting for its commit (then `detached` is set) and release. */
interface Handover {
  token: string;
  to: string;
  watermark: number;
  /** This node's claim time before the handover, restored if the session is taken back. */
  claimTime: number;
  release: () => void;
  timer: NodeJS.Timeout;
  detached?: DetachedSession;
}

export class SessionTakeover {
  readonly registry = new ClaimRegistry();
  private readonly options: TakeoverOptions;
  private readonly locks = new ClientLocks();
  /** Connections of each client id admitted here and not closed yet. */
  private readonly connections = new Map<string, Set<TakeoverClient>>();
  private readonly handovers = new Map<string, Handover>();
  private readonly reconciling = new Set<string>();
  private readonly pendingClaims = new Map<string, number | null>();
  private readonly peerWaiters = new Map<string, Set<() => void>>();
  /** Per client id: identities of the late messages of a recent handover here (see `skipLateRepeats`). */
  private readonly recentLate = new Map<string, { ids: Set<string>; timer: NodeJS.Timeout }>();
  /** Route confirmations this node waits for as a taker, by `<token>\0<peer>`. */
  private readonly routeWaiters = new Map<string, (ready: RouteReadiness) => void>();
  private flushScheduled = false;
  private stopped = false;
  private readonly now: () => number;
  private readonly logger: Logger;

  constructor(private readonly deps: TakeoverDeps, options: Partial<TakeoverOptions> = {}) {
    this.options = { ...DEFAULT_TAKEOVER_OPTIONS, ...options };
    this.now = deps.now ?? Date.now;
    this.logger = deps.logger.child({ component: 'takeover' });
    // Stored sessions claim from time 0: older than any CONNECT, so a client connecting anywhere takes them over.
    for (const clientId of deps.store.sessionClientIds()) this.registry.setOwn(clientId, 0);
    this.skipLateRepeats();
    deps.rpc.handle(KIND.claims, (from, message) => this.onClaims(from, message.header));
    deps.rpc.handle(KIND.takeover, (from, message) => this.onTakeover(from, message.header));
    deps.rpc.handle(KIND.commit, (from, message) => this.onCommit(from, message.header));
    deps.rpc.handle(KIND.release, (from, message) => this.onRelease(from, message.header));
    deps.rpc.handle(KIND.routes, (from, message) => this.onRouteCheck(from, message.header));
    deps.rpc.handle(KIND.routesReady, (from, message) => this.onRoutesReady(from, message.header));
    // Acknowledged by the transport only after every earlier message from the sender was handled (see flushTo).
    deps.rpc.handle(KIND.flush, () => undefined);
    deps.rpc.handle(KIND.originIds, (from) => this.deps.originIds?.(from));
  }

  private get self(): string { return this.deps.nodeId; }

  /**
   * A copy of a late message that reaches this node after the handover is not queued again for the session, which
   * has (or had, if the client already acknowledged it) the holder's entry. aedes' own check for a resumed session's
   * replayed messages keeps it from being sent live as well.
   */
  private skipLateRepeats(): void {
    const { store } = this.deps;
    const enqueue = store.outgoingEnqueueCombi.bind(store);
    store.outgoingEnqueueCombi = (subs, packet) => {
      if (this.recentLate.size === 0) return enqueue(subs, packet);
      const identity = publishIdentity(packet);
      const fresh = subs.filter((sub) => !this.recentLate.get(sub.clientId)?.ids.has(identity));
      if (fresh.length === subs.length) return enqueue(subs, packet);
      return fresh.length > 0 ? enqueue(fresh, packet) : Promise.resolve();
    };
  }

  private rememberLate(clientId: string, late: readonly StoredPacket[]): void {
    const ids = new Set(late.map(publishIdentity).filter((id) => id !== ''));
    clearTimeout(this.recentLate.get(clientId)?.timer);
    if (ids.size === 0) {
      this.recentLate.delete(clientId);
      return;
    }
    const timer = setTimeout(() => this.recentLate.delete(clientId), LATE_MEMORY_MS);
    timer.unref();
    this.recentLate.set(clientId, { ids, timer });
  }

  /**
   * Called for an authenticated CONNECT before aedes reads the session: takes the client id over from every other
   * node holding it. Resolves false when a later CONNECT of the same id (on another node) wins: the caller closes
   * this connection. Rejects when the session could not be imported here.
   */
  async admit(client: TakeoverClient): Promise<boolean> {
    const clientId = client.id;
    this.track(client);
    const release = await this.locks.acquire(clientId);
    try {
      if (this.stopped) return true;
      const previous = this.registry.ownTime(clientId);
      const claim: Claim = { time: Math.max(this.now(), this.registry.latest(clientId) + 1), node: this.self };
      this.claim(clientId, claim.time);
      const outcome = await this.pullAll(clientId, claim, client.clean);
      if (outcome !== 'superseded') return true;
      this.untrack(client);
      this.settleClaim(clientId, previous);
      this.deps.takeovers.inc({ role: 'superseded' });
      this.logger.info({ clientId, claim }, 'takeover: a later CONNECT of this client id on another node wins; closing this one');
      return false;
    } finally {
      release();
      this.reviewClaim(clientId);
    }
  }

  peerConnected(nodeId: string): void {
    this.sendAllClaims(nodeId);
    this.deps.rpc.notify(nodeId, { kind: KIND.originIds }).catch((err: Error) => {
      this.logger.debug({ peer: nodeId, err: err.message }, 'origin identity support not announced (announced again when the peer reconnects)');
    });
    const waiters = this.peerWaiters.get(nodeId);
    this.peerWaiters.delete(nodeId);
    for (const wake of waiters ?? []) wake();
  }

  /** The node is gone from the cluster (its routes expired): forget its claims; they come back if it does. */
  nodeGone(nodeId: string): void {
    this.registry.dropNode(nodeId);
  }

  stop(): void {
    this.stopped = true;
    for (const [clientId, handover] of this.handovers) {
      clearTimeout(handover.timer);
      this.takeBack(clientId, handover.token);
    }
    for (const waiters of this.peerWaiters.values()) for (const wake of waiters) wake();
    this.peerWaiters.clear();
    for (const settle of this.routeWaiters.values()) settle('timeout');
    this.routeWaiters.clear();
    for (const { timer } of this.recentLate.values()) clearTimeout(timer);
    this.recentLate.clear();
  }

  /** `/api/v1/cluster/sessions`: claims and local state of one client id, or counts. */
  describe(clientId?: string): object {
    if (clientId === undefined) {
      return { nodeId: this.self, claims: this.registry.ownCount, remoteClaims: this.registry.remoteCounts(), handovers: this.handovers.size };
    }
    const claims = this.registry.claims(clientId, this.self);
    return {
      clientId,
      holder: claims.at(-1)?.node,
      claims: claims.map((c) => ({ node: c.node, time: c.time })),
      local: {
        connections: this.connections.get(clientId)?.size ?? 0,
        stored: this.deps.store.hasSession(clientId),
        queued: this.deps.store.queuedCount(clientId),
        handover: this.handovers.get(clientId)?.to,
      },
    };
  }

  // ---- taking a client id over (the CONNECT side) ----

  /** Asks every other holder of the id in turn; stops at the first that holds a later claim. */
  private async pullAll(clientId: string, claim: Claim, clean: boolean): Promise<PullOutcome> {
    const asked = new Set<string>();
    for (;;) {
      const holder = this.registry.holders(clientId).find((node) => !asked.has(node));
      if (holder === undefined) return 'done';
      asked.add(holder);
      const outcome = await this.pullFrom(holder, clientId, claim, clean, true);
      if (outcome === 'superseded') return outcome;
    }
  }

  private async pullFrom(holder: string, clientId: string, claim: Claim, clean: boolean, waitIfDown: boolean): Promise<PullOutcome> {
    const busyUntil = this.now() + this.options.busyRetryMs;
    let backoff = BUSY_BACKOFF_MS.first;
    for (;;) {
      if (this.stopped) return 'failed';
      if (!this.deps.peers.get(holder)?.connected) {
        if (!waitIfDown) return 'failed';
        if (await this.waitForPeer(holder)) continue;
        return this.unreachable(holder, clientId);
      }
      let reply: RpcMessage;
      try {
        reply = await this.deps.rpc.request(holder, { kind: KIND.takeover, clientId, time: claim.time, clean }, EMPTY, this.options.requestTimeoutMs);
      } catch (err) {
        if (!this.deps.peers.get(holder)?.connected) continue;
        this.logger.warn({ clientId, holder, err: (err as Error).message }, 'takeover: request failed; continuing without that node\'s session (it is merged later if it still holds it)');
        return 'failed';
      }
      const outcome = reply.header.outcome;
      if (outcome === 'busy' && this.now() < busyUntil) {
        await sleep(backoff);
        backoff = Math.min(backoff * 2, BUSY_BACKOFF_MS.max);
        continue;
      }
      return this.settlePull(holder, clientId, reply, waitIfDown);
    }
  }

  /** `connecting`: a CONNECT here waits for the pull (no connection of the id reads the session here yet). */
  private async settlePull(holder: string, clientId: string, reply: RpcMessage, connecting: boolean): Promise<PullOutcome> {
    switch (reply.header.outcome) {
      case 'refused':
        this.registry.setRemote(holder, clientId, Number(reply.header.time));
        return 'superseded';
      case 'none':
        this.registry.dropRemote(holder, clientId);
        return 'done';
      case 'ended':
        this.registry.dropRemote(holder, clientId);
        this.deps.takeovers.inc({ role: 'taken' });
        this.logger.info({ clientId, from: holder }, 'takeover: the client\'s connection on another node was closed and its session ended (clean start here)');
        return 'done';
      case 'exported':
        return this.completeImport(holder, clientId, String(reply.header.token), reply.body, connecting);
      default:
        this.logger.warn({ clientId, holder, outcome: reply.header.outcome }, 'takeover: the holder stayed busy; continuing without its session (it is merged later)');
        return 'failed';
    }
  }

  /**
   * Import the snapshot (durably; this node queues for the session from now on), wait until every peer routes the
   * session's messages here too, then commit (the holder detaches it and sends what it queued since, which skips
   * what this node queued already), then release.
   */
  private async completeImport(holder: string, clientId: string, token: string, body: Buffer, connecting: boolean): Promise<PullOutcome> {
    const snapshot = decodeSnapshot(body);
    const importing = this.deps.store.importSession(snapshot);
    // Entries above the mark are the ones this node queues from now on: taken as soon as the import's entries are in
    // memory (before its durable write), which is at once for the store.
    let mark = this.deps.store.exportSession(clientId)?.watermark;
    const imported = await importing;
    mark ??= this.deps.store.exportSession(clientId)?.watermark ?? 0;
    let late;
    let routesMs;
    try {
      routesMs = await this.awaitRoutesEverywhere(holder, clientId, snapshot.subscriptions);
      const reply = await this.deps.rpc.request(holder, { kind: KIND.commit, clientId, token }, EMPTY, this.options.requestTimeoutMs);
      const lateSnapshot = decodeSnapshot(reply.body);
      late = connecting ? await this.importLateInOrder(lateSnapshot, mark) : await this.deps.store.importSession(lateSnapshot);
      this.rememberLate(clientId, lateSnapshot.outgoing);
    } catch (err) {
      this.logger.warn({ clientId, holder, err: (err as Error).message },
        'takeover: session imported but the handover was not committed; the holder keeps its copy and the two are merged later (repeats skipped, messages delivered meanwhile may come twice)');
      return 'done';
    }
    this.registry.dropRemote(holder, clientId);
    this.deps.rpc.notify(holder, { kind: KIND.release, clientId, token }).catch((err: Error) => {
      this.logger.warn({ clientId, holder, err: err.message }, 'takeover: release not delivered; the holder takes its copy back after the handover timeout');
    });
    this.deps.takeovers.inc({ role: 'taken' });
    this.logger.info({
      clientId, from: holder, subscriptions: snapshot.subscriptions.length, queued: imported.queued + late.queued,
      queuedDuringHandover: late.queued, qos2Received: imported.received, routesConfirmedMs: routesMs,
    }, 'takeover: session taken over from another node');
    return 'done';
  }

  /**
   * The holder's late messages were published before this node's own since the import (per publishing node: before
   * it routed the session here), so they go before them in the queue [MQTT-4.6.0-6]; of a message both nodes queued
   * the holder's entry stays, at its place. The session is taken out of memory and put back rearranged in the same
   * event-loop turn (no publish can fall in between), written as a delete and an import: if this node fails between
   * the two, the holder — which keeps the session's keys until the release — takes it back after the handover
   * timeout. Only while the CONNECT waits: nothing has been sent from the queue yet.
   */
  private async importLateInOrder(late: SessionSnapshot, mark: number): Promise<SessionImport> {
    const { store } = this.deps;
    const { clientId } = late;
    if (!store.hasSession(clientId)) return store.importSession(late);
    const lateIds = new Set(late.outgoing.map(publishIdentity).filter((id) => id !== ''));
    // The subscriptions come back as they were: observers (routes, shared groups) must not see them go and return.
    const observer = store.subscriptionObserver;
    store.subscriptionObserver = undefined;
    let written: Promise<[void, SessionImport]>;
    let repeats = 0;
    try {
      const current = store.detachSession(clientId) as DetachedSession;
      const own = current.outgoing.filter((entry) => entry.seq > mark).map((entry) => entry.packet);
      const ownNew = own.filter((packet) => !lateIds.has(publishIdentity(packet)));
      repeats = own.length - ownNew.length;
      const merged: SessionSnapshot = {
        clientId, stored: current.stored, subscriptions: current.subscriptions, incoming: current.incoming, watermark: 0,
        outgoing: [...current.outgoing.filter((entry) => entry.seq <= mark).map((entry) => entry.packet), ...late.outgoing, ...ownNew],
      };
      written = Promise.all([store.deleteDetachedSession(current), store.importSession(merged)]);
    } finally {
      store.subscriptionObserver = observer;
    }
    await written;
    return { subscriptions: 0, queued: late.outgoing.length - repeats, received: 0 };
  }

  /**
   * Until every node routes the session's filters here, a message published on a node that does not yet reaches
   * only the holder: the holder must keep queueing for the session until each node (the holder included) holds this
   * node's routes and has had what it forwarded to the holder before handled there. Each peer confirms that, then
   * this node flushes its own forwards to the holder. A peer that does not confirm within `routeWaitMs` is logged
   * and not waited for further.
   */
  private async awaitRoutesEverywhere(holder: string, clientId: string, subscriptions: readonly { topic: string; qos: number }[]): Promise<number> {
    const filters = routedFilters(subscriptions);
    if (!this.deps.routes || filters.length === 0) return 0;
    const started = this.now();
    const check: RouteCheck = { clientId, token: randomUUID(), filters, holder };
    const peers = this.deps.peers.list().filter((peer) => peer.connected && peer.nodeId !== this.self && takesPart(peer.role)).map((peer) => peer.nodeId);
    const answers = await Promise.all(peers.map((peer) => this.confirmRoutes(peer, check)));
    const flushed = await this.flushTo(holder);
    const unconfirmed = peers.filter((_, i) => answers[i] !== 'ready');
    const details = { clientId, holder, peers: peers.length, waitedMs: this.now() - started };
    if (unconfirmed.length === 0 && flushed) this.logger.debug(details, 'takeover: every peer routes the session here; committing');
    else this.logger.warn({ ...details, unconfirmed, flushed }, 'takeover: not every peer confirmed routing the session here; committing anyway (messages still in flight to the holder may miss the session)');
    return details.waitedMs;
  }

  private confirmRoutes(peer: string, check: RouteCheck): Promise<RouteReadiness> {
    const key = `${check.token}\u0000${peer}`;
    return new Promise((resolve) => {
      const settle = (ready: RouteReadiness): void => {
        clearTimeout(timer);
        this.routeWaiters.delete(key);
        resolve(ready);
      };
      const timer = setTimeout(() => settle('timeout'), this.options.routeWaitMs + this.options.requestTimeoutMs);
      this.routeWaiters.set(key, settle);
      this.deps.rpc.notify(peer, { kind: KIND.routes, ...check }).catch(() => settle('timeout'));
    });
  }

  private onRoutesReady(from: string, header: RpcHeader): void {
    const { token, ready } = checkRoutesReady(header, from);
    this.routeWaiters.get(`${token}\u0000${from}`)?.(ready ? 'ready' : 'missing');
  }

  /** A taker asks: answered in the background (a handler never waits). */
  private onRouteCheck(from: string, header: RpcHeader): void {
    const check = checkRouteCheck(header, from);
    void this.answerRouteCheck(from, check);
  }

  private async answerRouteCheck(taker: string, check: RouteCheck): Promise<void> {
    const routes = this.deps.routes;
    const routed = (): boolean => routes === undefined || check.filters.every((filter) => routes.has(filter, taker, ''));
    const deadline = this.now() + this.options.routeWaitMs;
    while (!routed() && this.now() < deadline && !this.stopped) await sleep(ROUTE_POLL_MS);
    const present = routed();
    // From here on this node sends the session's messages to the taker; what it sent the holder before must be handled there.
    const flushed = check.holder === this.self || await this.flushTo(check.holder);
    if (!present) this.logger.warn({ clientId: check.clientId, taker, filters: check.filters.length }, 'takeover: the taker\'s routes did not arrive here in time');
    await this.deps.rpc.notify(taker, { kind: KIND.routesReady, clientId: check.clientId, token: check.token, ready: present && flushed }).catch((err: Error) => {
      this.logger.debug({ clientId: check.clientId, taker, err: err.message }, 'takeover: route confirmation not delivered');
    });
  }

  /**
   * Resolves true once `node` handled everything this node sent it before: the transport acknowledges in order and
   * holds a message's acknowledgement until it was handled (a forwarded copy: published, queued for its sessions).
   */
  private async flushTo(node: string): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), this.options.requestTimeoutMs); });
    try {
      return await Promise.race([this.deps.rpc.notify(node, { kind: KIND.flush }).then(() => true, () => false), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private unreachable(holder: string, clientId: string): PullOutcome {
    this.deps.takeovers.inc({ role: 'unreachable' });
    this.logger.warn({ clientId, holder, waitedMs: this.options.unreachableWaitMs },
      'takeover: the node holding this client id is unreachable; continuing without its session. If it returns with the session, the session is merged into the one here');
    return 'unreachable';
  }

  /** Waits until the node reconnects or `unreachableWaitMs` after it went down; true if it reconnected. */
  private waitForPeer(nodeId: string): Promise<boolean> {
    const member = this.deps.peers.get(nodeId);
    const remaining = member ? member.since + this.options.unreachableWaitMs - this.now() : 0;
    if (remaining <= 0 || this.stopped) return Promise.resolve(false);
    this.logger.info({ node: nodeId, waitMs: remaining }, 'takeover: waiting for the node holding this client id to come back');
    return new Promise((resolve) => {
      const waiters = this.peerWaiters.get(nodeId) ?? new Set();
      this.peerWaiters.set(nodeId, waiters);
      const wake = (): void => {
        clearTimeout(timer);
        waiters.delete(wake);
        resolve(this.deps.peers.get(nodeId)?.connected === true);
      };
      const timer = setTimeout(wake, remaining);
      waiters.add(wake);
    });
  }

  // ---- handing a client id over (the holder side) ----

  private async onTakeover(from: string, header: RpcHeader): Promise<RpcMessage> {
    const clientId = String(header.clientId);
    const requester: Claim = { time: Number(header.time), node: from };
    const own = this.ownClaim(clientId);
    if (own && compareClaims(own, requester) > 0) return reply(KIND.takeover, { outcome: 'refused', time: own.time });
    this.registry.setRemote(from, clientId, requester.time);
    if (!own) return reply(KIND.takeover, { outcome: 'none' });
    const release = this.locks.tryAcquire(clientId);
    if (!release) return reply(KIND.takeover, { outcome: 'busy' });
    try {
      await this.closeConnections(clientId, from);
      if (header.clean === true || !this.deps.store.hasSession(clientId)) return await this.endSession(clientId, from, release);
      return this.exportFor(clientId, from, own.time, release);
    } catch (err) {
      release();
      throw new Error(`handing ${clientId} over to ${from} failed: ${(err as Error).message}`);
    }
  }

  private async endSession(clientId: string, to: string, release: () => void): Promise<RpcMessage> {
    await this.deps.store.deleteSession(clientId);
    this.unclaim(clientId);
    release();
    this.deps.takeovers.inc({ role: 'handed' });
    this.logger.info({ clientId, to }, 'takeover: client id taken over by another node (clean start there); connection closed, session ended here');
    return reply(KIND.takeover, { outcome: 'ended' });
  }

  private exportFor(clientId: string, to: string, claimTime: number, release: () => void): RpcMessage {
    const snapshot = this.deps.store.exportSession(clientId);
    if (!snapshot) throw new Error(`session of ${clientId} vanished during its export`);
    const token = randomUUID();
    const timer = setTimeout(() => this.takeBack(clientId, token), this.options.handoverTimeoutMs);
    this.handovers.set(clientId, { token, to, watermark: snapshot.watermark, claimTime, release, timer });
    return { header: { kind: KIND.takeover, outcome: 'exported', token }, body: encodeSnapshot(snapshot) };
  }

  /** The taker imported the snapshot durably: stop queueing here, send what was queued since the export. */
  private onCommit(from: string, header: RpcHeader): RpcMessage {
    const clientId = String(header.clientId);
    const handover = this.handoverOf(clientId, from, header.token);
    const detached = this.deps.store.detachSession(clientId);
    if (!detached) throw new Error(`session of ${clientId} vanished during its handover to ${from}`);
    handover.detached = detached;
    this.unclaim(clientId);
    const late = detached.outgoing.filter((entry) => entry.seq > handover.watermark).map((entry) => entry.packet);
    return {
      header: { kind: KIND.commit },
      body: encodeSnapshot({ clientId, stored: false, subscriptions: [], outgoing: late, incoming: [], watermark: 0 }),
    };
  }

  /** The taker holds everything durably: delete the session here. */
  private async onRelease(from: string, header: RpcHeader): Promise<void> {
    const clientId = String(header.clientId);
    const handover = this.handoverOf(clientId, from, header.token);
    if (!handover.detached) throw new Error(`release of ${clientId} from ${from} before its commit`);
    clearTimeout(handover.timer);
    this.handovers.delete(clientId);
    try {
      await this.deps.store.deleteDetachedSession(handover.detached);
    } finally {
      handover.release();
    }
    this.deps.takeovers.inc({ role: 'handed' });
    this.logger.info({ clientId, to: from }, 'takeover: session handed over to another node and deleted here');
  }

  /** No commit or release in time: the session stays (or is put back) here; its disk copy was never touched. */
  private takeBack(clientId: string, token: string): void {
    const handover = this.handovers.get(clientId);
    if (handover?.token !== token) return;
    this.handovers.delete(clientId);
    try {
      if (handover.detached) {
        this.deps.store.reattachSession(handover.detached);
        this.claim(clientId, handover.claimTime);
      }
    } catch (err) {
      this.logger.error({ clientId, err: (err as Error).message }, 'takeover: could not take a session back into memory; its disk copy returns at the next restart');
    } finally {
      handover.release();
    }
    this.logger.warn({ clientId, to: handover.to, committed: handover.detached !== undefined, timeoutMs: this.options.handoverTimeoutMs },
      'takeover: handover not completed in time; the session stays here (if the other node imported it too, the copies are merged later)');
  }

  private handoverOf(clientId: string, from: string, token: unknown): Handover {
    const handover = this.handovers.get(clientId);
    if (!handover || handover.token !== token || handover.to !== from) {
      throw new Error(`no handover of ${clientId} to ${from} in progress (it timed out after ${this.options.handoverTimeoutMs} ms, or was never started)`);
    }
    return handover;
  }

  private async closeConnections(clientId: string, takenBy: string): Promise<void> {
    const open = [...(this.connections.get(clientId) ?? [])];
    this.connections.delete(clientId);
    if (open.length === 0) return;
    this.logger.info({ clientId, takenBy, connections: open.length }, 'takeover: closing the connection of a client id that connected on another node');
    await Promise.all(open.map((client) => new Promise<void>((resolve) => client.close(() => resolve()))));
  }

  // ---- claims ----

  private ownClaim(clientId: string): Claim | undefined {
    const time = this.registry.ownTime(clientId);
    if (time !== undefined) return { time, node: this.self };
    const held = this.connections.has(clientId) || this.deps.store.hasSession(clientId);
    return held ? { time: 0, node: this.self } : undefined;
  }

  private claim(clientId: string, time: number): void {
    this.registry.setOwn(clientId, time);
    this.queueClaim(clientId, time);
  }

  private unclaim(clientId: string): void {
    if (this.registry.dropOwn(clientId)) this.queueClaim(clientId, null);
  }

  /** After a lost CONNECT: back to the claim before it if a session is still stored here, else none. */
  private settleClaim(clientId: string, previous: number | undefined): void {
    if (this.connections.has(clientId)) return;
    if (this.deps.store.hasSession(clientId)) this.claim(clientId, previous ?? 0);
    else this.unclaim(clientId);
  }

  /** A claim lasts while a connection of the id is open here or its session is stored here. */
  private reviewClaim(clientId: string): void {
    if (this.locks.isHeld(clientId) || this.connections.has(clientId) || this.deps.store.hasSession(clientId)) return;
    this.unclaim(clientId);
  }

  private track(client: TakeoverClient): void {
    let open = this.connections.get(client.id);
    if (!open) {
      open = new Set();
      this.connections.set(client.id, open);
    }
    open.add(client);
    client.conn.once('close', () => {
      this.untrack(client);
      // aedes finishes a closing client's store updates (clean session: QoS 2 state) right after the socket closes.
      setImmediate(() => this.reviewClaim(client.id));
    });
  }

  private untrack(client: TakeoverClient): void {
    const open = this.connections.get(client.id);
    if (open?.delete(client) && open.size === 0) this.connections.delete(client.id);
  }

  private queueClaim(clientId: string, time: number | null): void {
    this.pendingClaims.set(clientId, time);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flushClaims());
  }

  private flushClaims(): void {
    this.flushScheduled = false;
    if (this.pendingClaims.size === 0 || this.stopped) return;
    const message: ClaimsMessage = { reset: false, claims: [], dropped: [] };
    for (const [clientId, time] of this.pendingClaims) {
      if (time === null) message.dropped.push(clientId);
      else message.claims.push([clientId, time]);
    }
    this.pendingClaims.clear();
    for (const peer of this.deps.peers.list()) if (peer.connected) this.sendClaims(peer.nodeId, message);
  }

  private sendAllClaims(nodeId: string): void {
    const all = this.registry.ownClaims();
    const size = this.options.claimsPerMessage;
    for (let i = 0; i === 0 || i < all.length; i += size) {
      this.sendClaims(nodeId, { reset: i === 0, claims: all.slice(i, i + size), dropped: [] });
    }
  }

  private sendClaims(nodeId: string, message: ClaimsMessage): void {
    this.deps.rpc.notify(nodeId, { kind: KIND.claims, ...message }).catch((err: Error) => {
      this.logger.debug({ peer: nodeId, err: err.message }, 'session claims not delivered (the peer gets all of them when it reconnects)');
    });
  }

  private onClaims(from: string, header: RpcHeader): void {
    const message = checkClaims(header, from);
    if (message.reset) this.registry.dropNode(from);
    for (const clientId of message.dropped) this.registry.dropRemote(from, clientId);
    for (const [clientId, time] of message.claims) {
      this.registry.setRemote(from, clientId, time);
      const own = this.ownClaim(clientId);
      if (own && compareClaims(own, { time, node: from }) > 0) this.reconcile(clientId, from);
    }
  }

  /**
   * Another node holds an older claim on an id this node holds (both proceeded while unaware of each other, or one
   * was unreachable): pull from it — its connection closes, its session is merged here (or ended, if this node's
   * holder is a clean connection). A merged session reaches a client connected here at its next CONNECT.
   */
  private reconcile(clientId: string, holder: string): void {
    const key = `${clientId}\u0000${holder}`;
    if (this.reconciling.has(key)) return;
    this.reconciling.add(key);
    void this.locks.acquire(clientId).then(async (release) => {
      try {
        const own = this.registry.ownTime(clientId);
        const theirs = this.registry.remoteTime(clientId, holder);
        if (own === undefined || theirs === undefined || compareClaims({ time: own, node: this.self }, { time: theirs, node: holder }) <= 0) return;
        // A clean connection here ends the other node's session; a persistent one (or a stored session) merges it.
        const persistent = this.deps.store.hasSession(clientId) || [...(this.connections.get(clientId) ?? [])].some((c) => !c.clean);
        const clean = !persistent;
        this.logger.info({ clientId, holder }, 'takeover: another node holds an older claim on a client id held here; taking it over');
        await this.pullFrom(holder, clientId, { time: own, node: this.self }, clean, false);
      } catch (err) {
        this.logger.warn({ clientId, holder, err: (err as Error).message }, 'takeover: reconciling a client id held by two nodes failed');
      } finally {
        release();
        this.reconciling.delete(key);
        this.reviewClaim(clientId);
      }
    });
  }
}

type RouteReadiness = 'ready' | 'missing' | 'timeout';

/** Nodes answer the route confirmation; a sidecar link agent (role `agent`) does not (README.md, "Limits"). */
function takesPart(role: string | undefined): boolean {
  return role === undefined || role === 'core' || role === 'replicant';
}

/** A queued publish's identity (broker id and counter: the same on every node, see README.md, "Handover"); '' for none. */
function publishIdentity(packet: StoredPacket): string {
  return packet.cmd === 'publish' && packet.brokerId != null ? `${packet.brokerId}\u0000${packet.brokerCounter}` : '';
}

/** The ordinary filters a session queues on (QoS > 0), whose routes the taker waits for; shared groups route apart. */
function routedFilters(subscriptions: readonly { topic: string; qos: number }[]): string[] {
  return subscriptions.filter((s) => s.qos > 0 && !s.topic.startsWith('$share/')).map((s) => s.topic);
}

function reply(kind: string, fields: Record<string, unknown>): RpcMessage {
  return { header: { kind, ...fields }, body: EMPTY };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

type ConnectHooks = Required<Pick<AedesOptions, 'preConnect' | 'authenticate'>>;

/** CONNACK 0x03, Server unavailable: the session could not be taken over from the node holding it. */
const SERVER_UNAVAILABLE = 3;

/**
 * Runs the takeover after a successful authentication and before aedes reads the session (so an unauthenticated
 * CONNECT can never close another node's connection or move its session). A CONNECT that loses to a later one of
 * the same id is closed without a CONNACK, as a taken-over connection is.
 */
export function withSessionTakeover(hooks: ConnectHooks, current: () => SessionTakeover | undefined): ConnectHooks {
  return {
    preConnect: hooks.preConnect,
    authenticate(client, username, password, done) {
      hooks.authenticate(client, username, password, (err, success) => {
        const takeover = current();
        if (err || !success || !takeover) return done(err, success);
        takeover.admit(client).then((admitted) => {
          if (admitted) return done(null, true);
          client.close();
          done(null, false);
        }, (failure: Error) => {
          const error = Object.assign(new Error(`session takeover of ${client.id} failed: ${failure.message}`), { returnCode: SERVER_UNAVAILABLE });
          done(error as AuthenticateError, false);
        });
      });
    },
  };
}

/** `GET /api/v1/cluster/sessions[?clientId=…]`. */
export function registerTakeoverApi(takeover: SessionTakeover, admin: AdminServer): void {
  admin.route('GET', '/api/v1/cluster/sessions', (query) => ({ status: 200, body: takeover.describe(query.get('clientId') ?? undefined) }));
}
