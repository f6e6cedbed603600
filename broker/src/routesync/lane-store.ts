import type { RouteSink } from '../routing/route-table.js';
import type { LaneDelta, LaneRef, LaneVersion, RouteOp, RouteSpec } from './messages.js';
import { RouteSet } from './route-set.js';

/**
 * The route a lane carries once it is *complete* (a link agent adds it when its links know their remotes' routes).
 * Never published to: `$LINK/cluster/...` is the link control namespace and `$link/$control` keeps it out of what
 * the agents export.
 */
export const LANE_COMPLETE_ROUTE: RouteSpec = { filter: '$LINK/cluster/lane-complete', routeId: '$link/$control' };

/**
 * Routes an actor's next incarnation inherits until its lane is complete: a link agent's remote routes
 * (`$link/<link>`; not its control routes `$link/$...`). A restarted agent whose store was wiped starts without
 * them and gets them back only from the remotes' bootstrap; meanwhile they keep routing copies to it (same actor),
 * which holds them until it knows the remote routes.
 */
export function isHeldOverRoute(routeId: string): boolean {
  return routeId.startsWith('$link/') && !routeId.startsWith('$link/$');
}

/** The routes of one remote actor, at one version of one incarnation. */
export interface Lane {
  readonly actor: string;
  readonly incarnation: number;
  version: number;
  /** Exactly the actor's routes at `version`. */
  routes: RouteSet;
  /**
   * Routes of earlier incarnations still in the sink (never in `routes`) until the lane is complete or
   * `heldUntil`; not part of the lane's version, never relayed (each receiver holds over its own).
   */
  heldOver: RouteSet | null;
  heldUntil: number;
  lastHeardAt: number;
}

/**
 * What an accepted message did to the store, so the caller can relay it:
 * - `delta`: the lane moved forward within its incarnation (a snapshot that replaced a known lane is its diff);
 * - `new`: a lane appeared, or a higher incarnation replaced the lane (peers must hear of it afresh).
 */
export type LaneChange = { kind: 'delta'; delta: LaneDelta } | { kind: 'new'; lane: LaneVersion; replaced: LaneRef | null };

/**
 * - `applied`: the store changed (see `change`);
 * - `duplicate`: the store already holds that version or a later one;
 * - `stale`: from an incarnation older than one already seen;
 * - `gap`: cannot be applied to the lane as it is: ask the sender for a snapshot;
 * - `own`: about this actor itself, ignored.
 */
export type ApplyOutcome = 'applied' | 'duplicate' | 'stale' | 'gap' | 'own';

export interface ApplyResult {
  outcome: ApplyOutcome;
  change?: LaneChange;
}

/** A heartbeat's verdict: the lane is `alive` (and up to date), `behind` the sender, `unknown` here, or `stale`. */
export type HeartbeatOutcome = 'alive' | 'behind' | 'unknown' | 'stale' | 'own';

export interface ExpiredLane {
  actor: string;
  incarnation: number;
  version: number;
  routes: RouteSpec[];
}

export interface LaneStoreOptions {
  /** An actor silent for longer than this loses its lane. */
  ttlMs: number;
  /** How long the incarnation of an expired actor is remembered (to ignore late messages of older ones). */
  tombstoneMs: number;
  /** At most how long held-over routes stay when the new incarnation never marks its lane complete. */
  holdOverMs: number;
}

interface Seen {
  incarnation: number;
  /** For actors without a lane: when their last lane expired (the tombstone ages from there). */
  since: number;
}

/**
 * The receiving side's routes of many actors, one *lane* per actor: two actors holding the same filter never
 * conflict, and one actor's delete never touches another's route. Every change is mirrored into the sink (the
 * route table) with the lane's actor as owner.
 *
 * Incarnation rules: a message from an incarnation lower than the highest seen for its actor is stale and
 * ignored; a higher incarnation replaces the whole lane (atomically, when its first snapshot or its first delta
 * from the empty version 0 arrives). Within an incarnation, versions are linear: a delta applies only to its exact
 * base version, so replays and duplicates are harmless and an out-of-order delta is detected, never misapplied.
 */
export class LaneStore {
  private readonly lanesByActor = new Map<string, Lane>();
  private readonly seen = new Map<string, Seen>();

  constructor(
    readonly self: string,
    private readonly sink: RouteSink | null,
    private readonly options: LaneStoreOptions,
  ) {}

  get(actor: string): Lane | undefined {
    return this.lanesByActor.get(actor);
  }

  get size(): number {
    return this.lanesByActor.size;
  }

  lanes(): IterableIterator<Lane> {
    return this.lanesByActor.values();
  }

  versions(): LaneVersion[] {
    const out: LaneVersion[] = [];
    for (const l of this.lanesByActor.values()) out.push({ actor: l.actor, incarnation: l.incarnation, version: l.version });
    return out;
  }

  /** Highest incarnation seen for `actor`, with or without a lane; undefined when never seen (or forgotten). */
  knownIncarnation(actor: string): number | undefined {
    return this.seen.get(actor)?.incarnation;
  }

  /** Records that `actor` runs `incarnation` (from a handshake); older incarnations become stale. */
  observeIncarnation(actor: string, incarnation: number, now: number): void {
    const seen = this.seen.get(actor);
    if (seen === undefined || seen.incarnation < incarnation) this.seen.set(actor, { incarnation, since: now });
  }

  applyDelta(delta: LaneDelta, now: number): ApplyResult {
    const verdict = this.classify(delta.actor, delta.incarnation);
    if (verdict !== 'current' && verdict !== 'newer') return { outcome: verdict };
    const lane = this.lanesByActor.get(delta.actor);
    if (verdict === 'newer' || lane === undefined) {
      if (delta.base !== 0) return this.gapFor(delta.actor, delta.incarnation, now);
      const routes = new RouteSet();
      applyOps(routes, delta.ops);
      return this.replaceLane({ actor: delta.actor, incarnation: delta.incarnation, version: delta.version }, routes, now);
    }
    lane.lastHeardAt = now;
    if (delta.version <= lane.version) return { outcome: 'duplicate' };
    if (delta.base !== lane.version) return { outcome: 'gap' };
    this.applyToLane(lane, delta.ops);
    lane.version = delta.version;
    return { outcome: 'applied', change: { kind: 'delta', delta } };
  }

  /** Replaces the lane with a full snapshot (unless the store already has that version or a later one). */
  applySnapshot(version: LaneVersion, routes: RouteSet, now: number): ApplyResult {
    const verdict = this.classify(version.actor, version.incarnation);
    if (verdict !== 'current' && verdict !== 'newer') return { outcome: verdict };
    const lane = this.lanesByActor.get(version.actor);
    if (verdict === 'current' && lane !== undefined) {
      lane.lastHeardAt = now;
      if (version.version <= lane.version) return { outcome: 'duplicate' };
    }
    return this.replaceLane(version, routes, now);
  }

  heartbeat(version: LaneVersion, now: number): HeartbeatOutcome {
    const verdict = this.classify(version.actor, version.incarnation);
    if (verdict === 'own' || verdict === 'stale') return verdict;
    const lane = this.lanesByActor.get(version.actor);
    if (verdict === 'newer' || lane === undefined) {
      this.observeIncarnation(version.actor, version.incarnation, now);
      return 'unknown';
    }
    lane.lastHeardAt = now;
    return version.version > lane.version ? 'behind' : 'alive';
  }

  /** Removes the lanes of actors silent for longer than the TTL and forgets old tombstones. */
  gc(now: number): ExpiredLane[] {
    const expired: ExpiredLane[] = [];
    for (const lane of this.lanesByActor.values()) {
      if (lane.heldOver !== null && now >= lane.heldUntil) this.releaseHeldOver(lane);
      if (now - lane.lastHeardAt <= this.options.ttlMs) continue;
      expired.push({ actor: lane.actor, incarnation: lane.incarnation, version: lane.version, routes: lane.routes.toArray() });
      this.removeLane(lane, now);
    }
    for (const [actor, seen] of this.seen) {
      if (!this.lanesByActor.has(actor) && now - seen.since > this.options.tombstoneMs) this.seen.delete(actor);
    }
    return expired;
  }

  /** Earliest time at which gc() would remove a lane or release held-over routes, or null without lanes. */
  nextExpiry(): number | null {
    let earliest: number | null = null;
    for (const lane of this.lanesByActor.values()) {
      const expiry = lane.lastHeardAt + this.options.ttlMs + 1;
      const at = lane.heldOver === null ? expiry : Math.min(expiry, lane.heldUntil);
      if (earliest === null || at < earliest) earliest = at;
    }
    return earliest;
  }

  private classify(actor: string, incarnation: number): 'own' | 'stale' | 'current' | 'newer' {
    if (actor === this.self) return 'own';
    const known = this.seen.get(actor)?.incarnation;
    const laneIncarnation = this.lanesByActor.get(actor)?.incarnation;
    if (known !== undefined && incarnation < known) return 'stale';
    if (laneIncarnation !== undefined && incarnation < laneIncarnation) return 'stale';
    return laneIncarnation === undefined || incarnation > laneIncarnation ? 'newer' : 'current';
  }

  private gapFor(actor: string, incarnation: number, now: number): ApplyResult {
    this.observeIncarnation(actor, incarnation, now);
    return { outcome: 'gap' };
  }

  private replaceLane(version: LaneVersion, routes: RouteSet, now: number): ApplyResult {
    const old = this.lanesByActor.get(version.actor);
    const sameIncarnation = old !== undefined && old.incarnation === version.incarnation;
    this.observeIncarnation(version.actor, version.incarnation, now);
    const heldOver = this.heldOverFrom(old, routes, sameIncarnation);
    const heldUntil = old?.heldOver ? old.heldUntil : now + this.options.holdOverMs;
    const ops = this.swapRoutes(version.actor, old ?? null, routes, heldOver);
    const lane: Lane = { ...version, routes, heldOver, heldUntil, lastHeardAt: now };
    this.lanesByActor.set(version.actor, lane);
    if (old !== undefined && sameIncarnation) {
      const delta: LaneDelta = { ...version, base: old.version, ops };
      return { outcome: 'applied', change: { kind: 'delta', delta } };
    }
    const replaced = old === undefined ? null : { actor: old.actor, incarnation: old.incarnation };
    return { outcome: 'applied', change: { kind: 'new', lane: { ...version }, replaced } };
  }

  /**
   * Mirrors the old lane's routes and held-over routes → `next` and `heldOver` into the sink; returns the ops that
   * take the old lane's routes to `next` (held-over routes are not part of any version).
   */
  private swapRoutes(owner: string, old: Lane | null, next: RouteSet, heldOver: RouteSet | null): RouteOp[] {
    const ops: RouteOp[] = [];
    const inNext = (r: RouteSpec): boolean => next.has(r.filter, r.routeId) || heldOver?.has(r.filter, r.routeId) === true;
    const inOld = (r: RouteSpec): boolean => old !== null && (old.routes.has(r.filter, r.routeId) || old.heldOver?.has(r.filter, r.routeId) === true);
    if (old !== null) {
      for (const r of old.routes) {
        if (!next.has(r.filter, r.routeId)) ops.push({ op: 'delete', filter: r.filter, routeId: r.routeId });
        if (!inNext(r)) this.sink?.delete(r.filter, owner, r.routeId);
      }
      for (const r of old.heldOver ?? []) if (!inNext(r)) this.sink?.delete(r.filter, owner, r.routeId);
    }
    for (const r of next) {
      if (old?.routes.has(r.filter, r.routeId) !== true) ops.push({ op: 'add', filter: r.filter, routeId: r.routeId });
      if (!inOld(r)) this.sink?.add(r.filter, owner, r.routeId);
    }
    return ops;
  }

  private applyToLane(lane: Lane, ops: readonly RouteOp[]): void {
    for (const op of ops) {
      if (op.op === 'add') {
        // A held-over route the new incarnation adds again is already in the sink: it just stops being held.
        if (lane.routes.add(op.filter, op.routeId) && lane.heldOver?.delete(op.filter, op.routeId) !== true) {
          this.sink?.add(op.filter, lane.actor, op.routeId);
        }
      } else if (lane.routes.delete(op.filter, op.routeId)) {
        this.sink?.delete(op.filter, lane.actor, op.routeId);
      }
    }
    if (lane.heldOver !== null && (lane.heldOver.size === 0 || isComplete(lane.routes))) this.releaseHeldOver(lane);
  }

  /** The held-over routes leave the sink: the lane is complete, or they were held for `holdOverMs`. */
  private releaseHeldOver(lane: Lane): void {
    for (const r of lane.heldOver ?? []) this.sink?.delete(r.filter, lane.actor, r.routeId);
    lane.heldOver = null;
  }

  /**
   * What the next lane of `old`'s actor holds over: for a new incarnation, `old`'s held-over routes and those of
   * its routes that `isHeldOverRoute`; within one incarnation, what `old` held; none once `next` is complete.
   */
  private heldOverFrom(old: Lane | undefined, next: RouteSet, sameIncarnation: boolean): RouteSet | null {
    if (old === undefined || isComplete(next)) return null;
    const held = new RouteSet();
    for (const r of old.heldOver ?? []) if (!next.has(r.filter, r.routeId)) held.add(r.filter, r.routeId);
    if (!sameIncarnation) {
      for (const r of old.routes) if (isHeldOverRoute(r.routeId) && !next.has(r.filter, r.routeId)) held.add(r.filter, r.routeId);
    }
    return held.size > 0 ? held : null;
  }

  private removeLane(lane: Lane, now: number): void {
    this.releaseHeldOver(lane);
    for (const r of lane.routes) this.sink?.delete(r.filter, lane.actor, r.routeId);
    this.lanesByActor.delete(lane.actor);
    this.seen.set(lane.actor, { incarnation: lane.incarnation, since: now });
  }
}

function isComplete(routes: RouteSet): boolean {
  return routes.has(LANE_COMPLETE_ROUTE.filter, LANE_COMPLETE_ROUTE.routeId);
}

function applyOps(routes: RouteSet, ops: readonly RouteOp[]): void {
  for (const op of ops) {
    if (op.op === 'add') routes.add(op.filter, op.routeId);
    else routes.delete(op.filter, op.routeId);
  }
}
