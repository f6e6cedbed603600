import type { Aedes } from 'aedes';
import { parseSharedFilter, TopicError, type SharedFilter } from '../routing/topic.js';
import type { DurablePersistence } from '../store/index.js';

export type RouteChange = (op: 'add' | 'delete', filter: string, routeId: string) => void;

/**
 * This node's own routes, derived from its subscriptions. A filter has a route while a connected client is
 * subscribed to it (aedes' live subscriptions) or a stored persistent session is (offline sessions must keep
 * receiving, so their routes stay). `$share/<group>/<filter>` gives the route `(filter, '$share/<group>')`.
 * Reports only transitions: the first subscriber adds the route, the last one leaving deletes it.
 */
export class LocalRoutes {
  private readonly live = new Map<string, number>();
  private readonly storedByClient = new Map<string, Set<string>>();
  private readonly storedCount = new Map<string, number>();

  constructor(private readonly onChange: RouteChange) {}

  /** Every current route as (filter, routeId) — for a bootstrap snapshot. */
  *routes(): Generator<[string, string]> {
    const all = new Set([...this.live.keys(), ...this.storedCount.keys()]);
    for (const subscription of all) yield routeOf(subscription);
  }

  get size(): number {
    let n = this.storedCount.size;
    for (const filter of this.live.keys()) if (!this.storedCount.has(filter)) n++;
    return n;
  }

  liveSubscribed(filter: string): void {
    const count = this.live.get(filter) ?? 0;
    this.live.set(filter, count + 1);
    if (count === 0 && !this.storedCount.has(filter)) this.emit('add', filter);
  }

  liveUnsubscribed(filter: string): void {
    const count = this.live.get(filter);
    if (count === undefined) return;
    if (count > 1) {
      this.live.set(filter, count - 1);
      return;
    }
    this.live.delete(filter);
    if (!this.storedCount.has(filter)) this.emit('delete', filter);
  }

  stored(clientId: string, filters: readonly string[]): void {
    let mine = this.storedByClient.get(clientId);
    if (!mine) this.storedByClient.set(clientId, (mine = new Set()));
    for (const filter of filters) {
      if (mine.has(filter)) continue;
      mine.add(filter);
      const count = this.storedCount.get(filter) ?? 0;
      this.storedCount.set(filter, count + 1);
      if (count === 0 && !this.live.has(filter)) this.emit('add', filter);
    }
  }

  unstored(clientId: string, filters?: readonly string[]): void {
    const mine = this.storedByClient.get(clientId);
    if (!mine) return;
    for (const filter of filters ?? [...mine]) {
      if (!mine.delete(filter)) continue;
      const count = this.storedCount.get(filter) as number;
      if (count > 1) {
        this.storedCount.set(filter, count - 1);
        continue;
      }
      this.storedCount.delete(filter);
      if (!this.live.has(filter)) this.emit('delete', filter);
    }
    if (mine.size === 0) this.storedByClient.delete(clientId);
  }

  private emit(op: 'add' | 'delete', subscription: string): void {
    const [filter, routeId] = routeOf(subscription);
    this.onChange(op, filter, routeId);
  }
}

function routeOf(subscription: string): [string, string] {
  let shared: SharedFilter | null = null;
  try {
    shared = parseSharedFilter(subscription);
  } catch (err) {
    if (!(err instanceof TopicError)) throw err;
    // A malformed `$share/...` is an ordinary filter that no topic name can match except literally.
  }
  return shared ? [shared.filter, `$share/${shared.group}`] : [subscription, ''];
}

/**
 * Makes `routes` follow a node's subscriptions: aedes' live ones (its subscribe/unsubscribe are wrapped) and the
 * store's queueing ones (loaded now, then observed — chained after any observer already installed).
 */
export function followNodeSubscriptions(routes: LocalRoutes, aedes: Aedes, persistence: DurablePersistence): void {
  const subscribe = aedes.subscribe.bind(aedes);
  const unsubscribe = aedes.unsubscribe.bind(aedes);
  aedes.subscribe = (topic, func, done) => {
    routes.liveSubscribed(topic);
    subscribe(topic, func, done);
  };
  aedes.unsubscribe = (topic, func, done) => {
    routes.liveUnsubscribed(topic);
    unsubscribe(topic, func, done);
  };
  const byClient = new Map<string, string[]>();
  for (const [clientId, filter] of persistence.queueingSubscriptions()) {
    const list = byClient.get(clientId) ?? [];
    list.push(filter);
    byClient.set(clientId, list);
  }
  for (const [clientId, filters] of byClient) routes.stored(clientId, filters);
  const previous = persistence.subscriptionObserver;
  persistence.subscriptionObserver = {
    stored: (clientId, filters) => {
      routes.stored(clientId, filters);
      previous?.stored(clientId, filters);
    },
    unstored: (clientId, filters) => {
      routes.unstored(clientId, filters);
      previous?.unstored(clientId, filters);
    },
  };
}
