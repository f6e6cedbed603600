import { RouteSyncError } from './errors.js';
import { routeFilterProblem, routeIdProblem } from './limits.js';
import type { LaneDelta, RouteOp, RouteSpec } from './messages.js';
import { routeKey } from './route-set.js';

export interface BatchLimits {
  /** A batch holds at most this many route operations. */
  maxOps: number;
  /** A pending operation waits at most this long for companions before its batch is due. */
  maxDelayMs: number;
}

export const DEFAULT_BATCH_LIMITS: BatchLimits = { maxOps: 4000, maxDelayMs: 10 };

interface LocalRoute {
  filter: string;
  routeId: string;
  subscribers: number;
  /** Whether the route is in the lane at the current version (what peers have been told). */
  published: boolean;
}

/**
 * The routes this actor owns, derived from local subscriber counts, and the batcher that turns their changes into
 * versioned deltas.
 *
 * A route exists from its first subscriber to its last. A route is *pending* while its published state differs
 * from "has subscribers": so an add followed by a delete within one batch window leaves nothing pending (they
 * cancel), and so does a delete followed by an add. Each batch moves the lane from version v to v + 1.
 */
export class LocalLane {
  private currentVersion = 0;
  private readonly routes = new Map<string, LocalRoute>();
  private readonly pending = new Map<string, LocalRoute>();
  private firstPendingAt = 0;
  private publishedCount = 0;

  constructor(
    readonly actor: string,
    readonly incarnation: number,
    private readonly limits: BatchLimits = DEFAULT_BATCH_LIMITS,
  ) {}

  get version(): number {
    return this.currentVersion;
  }

  get pendingOps(): number {
    return this.pending.size;
  }

  /** Adds a subscriber; returns true when it is the first one, i.e. the route comes into existence. */
  subscribe(filter: string, routeId: string, now: number): boolean {
    assertRoute(filter, routeId);
    const key = routeKey(filter, routeId);
    let route = this.routes.get(key);
    if (route === undefined) {
      route = { filter, routeId, subscribers: 0, published: false };
      this.routes.set(key, route);
    }
    route.subscribers++;
    if (route.subscribers !== 1) return false;
    this.markChanged(key, route, now);
    return true;
  }

  /** Removes a subscriber; returns true when it was the last one. Unknown routes are left alone (false). */
  unsubscribe(filter: string, routeId: string, now: number): boolean {
    const key = routeKey(filter, routeId);
    const route = this.routes.get(key);
    if (route === undefined || route.subscribers === 0) return false;
    route.subscribers--;
    if (route.subscribers !== 0) return false;
    this.markChanged(key, route, now);
    if (!route.published) this.routes.delete(key);
    return true;
  }

  subscribers(filter: string, routeId: string): number {
    return this.routes.get(routeKey(filter, routeId))?.subscribers ?? 0;
  }

  /** When the next batch is due (`now` or earlier: take it), or null when nothing is pending. */
  dueAt(): number | null {
    if (this.pending.size === 0) return null;
    if (this.pending.size >= this.limits.maxOps) return this.firstPendingAt;
    return this.firstPendingAt + this.limits.maxDelayMs;
  }

  /** The next batch when it is due (or `force`d), moving the lane one version up; null otherwise. */
  takeBatch(now: number, force = false): LaneDelta | null {
    const due = this.dueAt();
    if (due === null || (!force && due > now)) return null;
    const ops: RouteOp[] = [];
    for (const [key, route] of this.pending) {
      if (ops.length >= this.limits.maxOps) break;
      this.pending.delete(key);
      ops.push(this.publish(key, route));
    }
    // What did not fit overflowed a full batch: it is due at once.
    if (this.pending.size > 0) this.firstPendingAt = Math.min(this.firstPendingAt, now - this.limits.maxDelayMs);
    const base = this.currentVersion++;
    return { actor: this.actor, incarnation: this.incarnation, base, version: this.currentVersion, ops };
  }

  /** The lane at its current version (excludes pending changes). */
  *published(): Generator<RouteSpec> {
    for (const r of this.routes.values()) if (r.published) yield { filter: r.filter, routeId: r.routeId };
  }

  get publishedSize(): number {
    return this.publishedCount;
  }

  private markChanged(key: string, route: LocalRoute, now: number): void {
    if (this.pending.delete(key)) return; // the opposite operation was pending: they cancel out
    if (this.pending.size === 0) this.firstPendingAt = now;
    this.pending.set(key, route);
  }

  private publish(key: string, route: LocalRoute): RouteOp {
    const add = route.subscribers > 0;
    route.published = add;
    this.publishedCount += add ? 1 : -1;
    if (!add) this.routes.delete(key);
    return { op: add ? 'add' : 'delete', filter: route.filter, routeId: route.routeId };
  }
}

function assertRoute(filter: string, routeId: string): void {
  const problem = routeFilterProblem(filter) ?? routeIdProblem(routeId);
  if (problem !== null) {
    const what = routeFilterProblem(filter) !== null ? `filter ${JSON.stringify(filter)}` : `route id ${JSON.stringify(routeId)}`;
    throw new RouteSyncError(`cannot route ${what}: it ${problem}`);
  }
}
