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
 * The routes on one filter, grouped by owner. Most filters have one owner with the route id '', so the first
 * owner lives in plain fields (its ids a string until a second id appears) and a Map only holds the others.
 */
class FilterRoutes {
  private firstOwner: string | undefined = undefined;
  private firstIds: string | Set<string> = '';
  private others: Map<string, string | Set<string>> | undefined = undefined;

  constructor(readonly filter: string) {}

  get isEmpty(): boolean {
    return this.firstOwner === undefined;
  }

  add(owner: string, routeId: string): boolean {
    if (this.firstOwner === undefined) {
      this.firstOwner = owner;
      this.firstIds = routeId;
      return true;
    }
    if (this.firstOwner === owner) {
      const next = withId(this.firstIds, routeId);
      if (next === null) return false;
      this.firstIds = next;
      return true;
    }
    const ids = this.others?.get(owner);
    const next = ids === undefined ? routeId : withId(ids, routeId);
    if (next === null) return false;
    (this.others ??= new Map()).set(owner, next);
    return true;
  }

  delete(owner: string, routeId: string): boolean {
    if (this.firstOwner === owner) {
      const next = withoutId(this.firstIds, routeId);
      if (next === null) return false;
      if (next === undefined) this.promoteOther();
      else this.firstIds = next;
      return true;
    }
    const ids = this.others?.get(owner);
    if (ids === undefined) return false;
    const next = withoutId(ids, routeId);
    if (next === null) return false;
    if (next === undefined) this.dropOther(owner);
    else this.others?.set(owner, next);
    return true;
  }

  has(owner: string, routeId: string): boolean {
    const ids = this.firstOwner === owner ? this.firstIds : this.others?.get(owner);
    if (ids === undefined) return false;
    return typeof ids === 'string' ? ids === routeId : ids.has(routeId);
  }

  /** Removes every route of `owner` here; returns the removed route ids. */
  deleteOwner(owner: string): string[] {
    const removed = [...this.routeIds(owner)];
    if (this.firstOwner === owner) this.promoteOther();
    else this.dropOther(owner);
    return removed;
  }

  /** Calls `visit` once per owner with a route here. */
  forEachOwner(visit: (owner: string) => void): void {
    if (this.firstOwner === undefined) return;
    visit(this.firstOwner);
    if (this.others !== undefined) for (const owner of this.others.keys()) visit(owner);
  }

  *owners(): Generator<string> {
    if (this.firstOwner === undefined) return;
    yield this.firstOwner;
    if (this.others !== undefined) yield* this.others.keys();
  }

  *routeIds(owner: string): Generator<string> {
    const ids = this.firstOwner === owner ? this.firstIds : this.others?.get(owner);
    if (ids === undefined) return;
    if (typeof ids === 'string') yield ids;
    else yield* ids;
  }

  private promoteOther(): void {
    const next = this.others?.entries().next();
    if (next === undefined || next.done === true) {
      this.firstOwner = undefined;
      this.firstIds = '';
      return;
    }
    const [owner, ids] = next.value;
    this.firstOwner = owner;
    this.firstIds = ids;
    this.dropOther(owner);
  }

  private dropOther(owner: string): void {
    this.others?.delete(owner);
    if (this.others?.size === 0) this.others = undefined;
  }
}

/** `ids` plus `routeId`, or null when already there. */
function withId(ids: string | Set<string>, routeId: string): string | Set<string> | null {
  if (typeof ids === 'string') return ids === routeId ? null : new Set([ids, routeId]);
  if (ids.has(routeId)) return null;
  ids.add(routeId);
  return ids;
}

/** `ids` without `routeId`: null when it was not there, undefined when nothing is left. */
function withoutId(ids: string | Set<string>, routeId: string): string | Set<string> | null | undefined {
  if (typeof ids === 'string') return ids === routeId ? undefined : null;
  if (!ids.delete(routeId)) return null;
  return ids.size === 1 ? (ids.values().next().value as string) : ids;
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
    if (routes.isEmpty) this.trie.delete(filter);
    this.countRemoved(owner, 1);
    return true;
  }

  has(filter: string, owner: string, routeId = ''): boolean {
    return this.trie.get(filter)?.has(owner, routeId) ?? false;
  }

  /** Removes every route of `owner` (walks the table); returns what was removed. */
  deleteOwner(owner: string): Route[] {
    if (!this.perOwner.has(owner)) return [];
    const removed: Route[] = [];
    for (const [filter, routes] of [...this.trie.entries()]) {
      for (const routeId of routes.deleteOwner(owner)) removed.push({ filter, owner, routeId });
      if (routes.isEmpty) this.trie.delete(filter);
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
    const add = (owner: string): void => {
      out.add(owner);
    };
    this.trie.match(topic, (routes) => routes.forEachOwner(add));
  }

  /** Every matching route, for callers that need route ids (shared-subscription groups). */
  matchRoutes(topic: string): Route[] {
    const found: Route[] = [];
    this.trie.match(topic, (routes) => {
      for (const owner of routes.owners()) {
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
      for (const owner of routes.owners()) {
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
