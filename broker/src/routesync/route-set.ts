import type { RouteSpec } from './messages.js';

/** A set of (filter, route id) pairs, lean for the common case of one route id per filter. */
export class RouteSet {
  private readonly byFilter = new Map<string, string | Set<string>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  has(filter: string, routeId: string): boolean {
    const ids = this.byFilter.get(filter);
    if (ids === undefined) return false;
    return typeof ids === 'string' ? ids === routeId : ids.has(routeId);
  }

  add(filter: string, routeId: string): boolean {
    const ids = this.byFilter.get(filter);
    if (ids === undefined) {
      this.byFilter.set(filter, routeId);
    } else if (typeof ids === 'string') {
      if (ids === routeId) return false;
      this.byFilter.set(filter, new Set([ids, routeId]));
    } else {
      if (ids.has(routeId)) return false;
      ids.add(routeId);
    }
    this.count++;
    return true;
  }

  delete(filter: string, routeId: string): boolean {
    const ids = this.byFilter.get(filter);
    if (ids === undefined) return false;
    if (typeof ids === 'string') {
      if (ids !== routeId) return false;
      this.byFilter.delete(filter);
    } else {
      if (!ids.delete(routeId)) return false;
      if (ids.size === 1) this.byFilter.set(filter, ids.values().next().value as string);
    }
    this.count--;
    return true;
  }

  *[Symbol.iterator](): Generator<RouteSpec> {
    for (const [filter, ids] of this.byFilter) {
      if (typeof ids === 'string') yield { filter, routeId: ids };
      else for (const routeId of ids) yield { filter, routeId };
    }
  }

  toArray(): RouteSpec[] {
    return [...this];
  }

  static of(routes: Iterable<RouteSpec>): RouteSet {
    const set = new RouteSet();
    for (const r of routes) set.add(r.filter, r.routeId);
    return set;
  }
}

/** One string per route, for maps of pending operations. Filters never contain U+0000 (MQTT forbids it). */
export function routeKey(filter: string, routeId: string): string {
  return routeId === '' ? filter : `${filter}\u0000${routeId}`;
}
