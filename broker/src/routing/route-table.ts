import { FilterTrie } from './trie.js';

/** A route: "owner wants the messages whose topic matches filter", tagged with an owner-chosen route id. */
export interface Route {
  filter: string;
  /** Actor id of the owner: a node id or a link agent id. Only the owner adds or deletes its routes. */
  owner: string;
  /** Distinguishes several routes of one owner on the same filter (e.g. a shared-subscription group); '' by default. */
  routeId: string;
}

/** Where route changes go: a {@link RouteTable}, or an adapter (a link agent counts remote routes). */
export interface RouteSink {
  /** Returns false when the route was already there. */
  add(filter: string, owner: string, routeId: string): boolean;
  /** Returns false when the route was not there. */
  delete(filter: string, owner: string, routeId: string): boolean;
}

/**
 * The routes on one filter, grouped by owner. Most filters have one owner with the route id '', so an owner's
 * route ids are a plain string until a second one appears.
 */
class FilterRoutes {
  readonly byOwner = new Map<string, string | Set<string>>();

  constructor(readonly filter: string) {}

  add(owner: string, routeId: string): boolean {
    const ids = this.byOwner.get(owner);
    if (ids === undefined) {
      this.byOwner.set(owner, routeId);
      return true;
    }
    if (typeof ids === 'string') {
      if (ids === routeId) return false;
      this.byOwner.set(owner, new Set([ids, routeId]));
      return true;
    }
    if (ids.has(routeId)) return false;
    ids.add(routeId);
    return true;
  }

  delete(owner: string, routeId: string): boolean {
    const ids = this.byOwner.get(owner);
    if (ids === undefined) return false;
    if (typeof ids === 'string') {
      if (ids !== routeId) return false;
      this.byOwner.delete(owner);
      return true;
    }
    if (!ids.delete(routeId)) return false;
    if (ids.size === 1) this.byOwner.set(owner, ids.values().next().value as string);
    return true;
  }

  /** Removes every route of `owner` here; returns the removed route ids. */
  deleteOwner(owner: string): string[] {
    const ids = this.byOwner.get(owner);
    if (ids === undefined) return [];
    this.byOwner.delete(owner);
    return typeof ids === 'string' ? [ids] : [...ids];
  }

  *routeIds(owner: string): Generator<string> {
    const ids = this.byOwner.get(owner);
    if (ids === undefined) return;
    if (typeof ids === 'string') yield ids;
    else yield* ids;
  }
}

export interface RouteTableStats {
  routes: number;
  filters: number;
  owners: number;
}

/**
 * The cluster route table: every route has one owner; match(topic) says which owners want a message.
 *
 * Adds and deletes are idempotent, so a route sync replay never corrupts it. Deleting all routes of one owner
 * walks the whole table (it happens when a node dies, not per message); route sync deletes route by route.
 */
export class RouteTable implements RouteSink {
  private readonly trie = new FilterTrie<FilterRoutes>();
  private readonly perOwner = new Map<string, number>();
  private routeCount = 0;

  add(filter: string, owner: string, routeId = ''): boolean {
    const routes = this.trie.getOrCreate(filter, () => new FilterRoutes(filter));
    if (!routes.add(owner, routeId)) return false;
    this.perOwner.set(owner, (this.perOwner.get(owner) ?? 0) + 1);
    this.routeCount++;
    return true;
  }

  delete(filter: string, owner: string, routeId = ''): boolean {
    const routes = this.trie.get(filter);
    if (routes === undefined || !routes.delete(owner, routeId)) return false;
    if (routes.byOwner.size === 0) this.trie.delete(filter);
    this.countRemoved(owner, 1);
    return true;
  }

  has(filter: string, owner: string, routeId = ''): boolean {
    const ids = this.trie.get(filter)?.byOwner.get(owner);
    if (ids === undefined) return false;
    return typeof ids === 'string' ? ids === routeId : ids.has(routeId);
  }

  /** Removes every route of `owner` (walks the table); returns what was removed. */
  deleteOwner(owner: string): Route[] {
    if (!this.perOwner.has(owner)) return [];
    const removed: Route[] = [];
    for (const [filter, routes] of [...this.trie.entries()]) {
      for (const routeId of routes.deleteOwner(owner)) removed.push({ filter, owner, routeId });
      if (routes.byOwner.size === 0) this.trie.delete(filter);
    }
    this.countRemoved(owner, removed.length);
    return removed;
  }

  /** The owners with at least one route matching the topic name. Runs on every publish. */
  match(topic: string): Set<string> {
    const owners = new Set<string>();
    this.matchInto(topic, owners);
    return owners;
  }

  /** Adds the matching owners to `out` (lets a hot caller reuse one Set). */
  matchInto(topic: string, out: Set<string>): void {
    this.trie.match(topic, (routes) => {
      for (const owner of routes.byOwner.keys()) out.add(owner);
    });
  }

  /** Every matching route, for callers that need route ids (shared-subscription groups). */
  matchRoutes(topic: string): Route[] {
    const found: Route[] = [];
    this.trie.match(topic, (routes) => {
      for (const owner of routes.byOwner.keys()) {
        for (const routeId of routes.routeIds(owner)) found.push({ filter: routes.filter, owner, routeId });
      }
    });
    return found;
  }

  /** Number of routes of one owner (0 when unknown). */
  countOf(owner: string): number {
    return this.perOwner.get(owner) ?? 0;
  }

  owners(): IterableIterator<string> {
    return this.perOwner.keys();
  }

  get size(): number {
    return this.routeCount;
  }

  stats(): RouteTableStats {
    return { routes: this.routeCount, filters: this.trie.size, owners: this.perOwner.size };
  }

  /** Every route, in no particular order. */
  *routes(): Generator<Route> {
    for (const [filter, routes] of this.trie.entries()) {
      for (const owner of routes.byOwner.keys()) {
        for (const routeId of routes.routeIds(owner)) yield { filter, owner, routeId };
      }
    }
  }

  private countRemoved(owner: string, n: number): void {
    if (n === 0) return;
    const left = (this.perOwner.get(owner) ?? 0) - n;
    if (left <= 0) this.perOwner.delete(owner);
    else this.perOwner.set(owner, left);
    this.routeCount -= n;
  }
}
