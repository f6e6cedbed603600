import type { Logger } from '../log/logger.js';
import type { SharedMessage, SharedSubscriptions } from '../mqtt/shared-subscriptions.js';
import { rendezvousWinner } from '../routing/rendezvous.js';
import { RouteTable, type RouteSink, type RouteTableStats } from '../routing/route-table.js';
import { SHARE_PREFIX } from '../routing/topic.js';
import { FilterTrie } from '../routing/trie.js';
import type { ForwardedMessage } from './forward-codec.js';

/**
 * Shared subscriptions across the cluster: for each `$share/<group>/<filter>` that matches a message, the
 * publishing node picks one node that has the group's route, and that node hands the message to one of its
 * members (mqtt/shared-subscriptions.ts). See "Shared subscriptions" in README.md.
 */

/** The nodes with a route for one (group, filter), taken in turn. */
export class ShareOwners {
  readonly owners: string[] = [];
  private turn = 0;

  constructor(readonly group: string, readonly filter: string) {}

  /**
   * The next owner in turn that is not excluded. This node is passed over while it has no connected member and
   * another owner may have one: an offline member here would get a message a connected one elsewhere could take.
   * A message with a publish identity (`publishId`) goes to the owner that identity picks instead (`ownerFor`), the
   * same on every publish of it: the node that recorded the group's copy is the one a republish after a crash reaches.
   */
  next(self: string, selfConnected: boolean, excluded?: ReadonlySet<string>, publishId?: string): string | undefined {
    if (publishId !== undefined) return this.ownerFor(publishId, self, selfConnected, excluded);
    const n = this.owners.length;
    let fallback: string | undefined;
    for (let i = 0; i < n; i++) {
      const index = (this.turn + i) % n;
      const owner = this.owners[index];
      if (excluded?.has(owner)) continue;
      if (owner === self && !selfConnected) {
        fallback = owner;
        continue;
      }
      this.turn = index + 1;
      return owner;
    }
    return fallback;
  }

  /** Rendezvous choice among the owners not excluded (this node only if it has a connected member or is the only one). */
  private ownerFor(publishId: string, self: string, selfConnected: boolean, excluded?: ReadonlySet<string>): string | undefined {
    const eligible = this.owners.filter((owner) => !excluded?.has(owner));
    const preferred = selfConnected ? eligible : eligible.filter((owner) => owner !== self);
    return rendezvousWinner(publishId, preferred.length > 0 ? preferred : eligible);
  }
}

/** The shared-subscription routes on one filter, by group. */
class FilterShares {
  readonly groups = new Map<string, ShareOwners>();

  constructor(readonly filter: string) {}
}

/** The cluster's shared-subscription routes: (filter, group) → owner nodes. Kept apart from the ordinary routes. */
export class SharedRouteIndex {
  private readonly trie = new FilterTrie<FilterShares>();
  private readonly perOwner = new Map<string, number>();
  private count = 0;
  /**
   * Filters per first level, and filters starting with a wildcard: a topic whose first level no filter has skips
   * the trie (splitting the topic costs more than the look-up), so shared groups elsewhere cost other topics little.
   */
  private readonly firstLevels = new Map<string, number>();
  private wildcardFirst = 0;

  /** Number of routes (filter, group, owner). */
  get size(): number {
    return this.count;
  }

  get filters(): number {
    return this.trie.size;
  }

  owners(): IterableIterator<string> {
    return this.perOwner.keys();
  }

  add(filter: string, owner: string, group: string): boolean {
    const shares = this.trie.getOrCreate(filter, () => {
      this.countFirstLevel(filter, 1);
      return new FilterShares(filter);
    });
    let entry = shares.groups.get(group);
    if (entry === undefined) shares.groups.set(group, (entry = new ShareOwners(group, filter)));
    if (entry.owners.includes(owner)) return false;
    entry.owners.push(owner);
    this.perOwner.set(owner, (this.perOwner.get(owner) ?? 0) + 1);
    this.count++;
    return true;
  }

  delete(filter: string, owner: string, group: string): boolean {
    const shares = this.trie.get(filter);
    const entry = shares?.groups.get(group);
    const index = entry?.owners.indexOf(owner) ?? -1;
    if (shares === undefined || entry === undefined || index < 0) return false;
    entry.owners.splice(index, 1);
    if (entry.owners.length === 0) shares.groups.delete(group);
    if (shares.groups.size === 0) {
      this.trie.delete(filter);
      this.countFirstLevel(filter, -1);
    }
    const left = (this.perOwner.get(owner) ?? 1) - 1;
    if (left === 0) this.perOwner.delete(owner);
    else this.perOwner.set(owner, left);
    this.count--;
    return true;
  }

  get(filter: string, group: string): ShareOwners | undefined {
    return this.trie.get(filter)?.groups.get(group);
  }

  /** Every (group, filter) whose filter matches the topic name; null when none (no allocation then). */
  match(topic: string): ShareOwners[] | null {
    if (this.count === 0) return null;
    if (this.wildcardFirst === 0 && !this.firstLevels.has(firstLevel(topic))) return null;
    let found: ShareOwners[] | null = null;
    this.trie.match(topic, (shares) => {
      for (const entry of shares.groups.values()) (found ??= []).push(entry);
    });
    return found;
  }

  private countFirstLevel(filter: string, delta: 1 | -1): void {
    const first = firstLevel(filter);
    if (first === '+' || first === '#') {
      this.wildcardFirst += delta;
      return;
    }
    const n = (this.firstLevels.get(first) ?? 0) + delta;
    if (n === 0) this.firstLevels.delete(first);
    else this.firstLevels.set(first, n);
  }
}

function firstLevel(topic: string): string {
  const slash = topic.indexOf('/');
  return slash < 0 ? topic : topic.slice(0, slash);
}

/** The share route id of a group is `$share/<group>`; '' and any other id are ordinary routes. */
export function shareGroupOfRouteId(routeId: string): string | undefined {
  return routeId.startsWith(SHARE_PREFIX) ? routeId.slice(SHARE_PREFIX.length) : undefined;
}

/**
 * Where route sync puts the cluster's routes: ordinary ones in a RouteTable (one copy per owner node), shared ones
 * in a SharedRouteIndex (one copy per group). Keeping them apart leaves the ordinary match as it was, and a
 * cluster without shared subscriptions pays one size check per publish for them.
 */
export class ClusterRoutes implements RouteSink {
  readonly table = new RouteTable();
  readonly shares = new SharedRouteIndex();

  add(filter: string, owner: string, routeId: string): boolean {
    const group = shareGroupOfRouteId(routeId);
    return group === undefined ? this.table.add(filter, owner, routeId) : this.shares.add(filter, owner, group);
  }

  delete(filter: string, owner: string, routeId: string): boolean {
    const group = shareGroupOfRouteId(routeId);
    return group === undefined ? this.table.delete(filter, owner, routeId) : this.shares.delete(filter, owner, group);
  }

  /** A filter with both ordinary and shared routes counts once in each. */
  stats(): RouteTableStats {
    const table = this.table.stats();
    const owners = new Set([...this.table.owners(), ...this.shares.owners()]);
    return { routes: table.routes + this.shares.size, filters: table.filters + this.shares.filters, owners: owners.size };
  }
}

/** Hops a shared copy may make between nodes without a connected member before one of them queues or drops it. */
export const MAX_REDIRECTS = 3;

/** Hands a forwarded message to a node; resolves false when that node is gone (its routes are going away). */
export type SendToNode = (nodeId: string, message: ForwardedMessage) => Promise<boolean>;

/**
 * The cluster part of shared subscriptions: which node gets a group's copy, and what a node does with a copy it
 * was chosen for.
 */
export class ClusterSharedSubscriptions {
  private readonly logger: Logger;

  constructor(
    private readonly selfId: string,
    private readonly index: SharedRouteIndex,
    private readonly local: SharedSubscriptions,
    private readonly send: SendToNode,
    logger: Logger,
  ) {
    this.logger = logger.child({ component: 'shared-subscriptions' });
  }

  /** The groups a published topic matches, or null: call it once per publish, before building any message. */
  match(topic: string): ShareOwners[] | null {
    return this.index.match(topic);
  }

  /** One copy per matched group, to one owner node each; resolves once every copy is handed over. */
  dispatch(matched: readonly ShareOwners[], message: ForwardedMessage): Promise<void>[] {
    return matched.map(async (share) => {
      // Published again after a crash of this node, whose member had it: its members may not be back yet, so the
      // choice below could pass this node over for another one.
      if (message.publishId !== undefined && this.local.isRepeat(share.group, share.filter, sharedMessageOf(message))) {
        this.local.count('repeat');
        return;
      }
      if (!(await this.deliverToGroup(share, message, new Set()))) {
        this.local.count('dropped');
        this.logger.warn({ group: share.group, filter: share.filter, topic: message.topic }, 'shared message dropped: no node of the group is reachable');
      }
    });
  }

  /**
   * A copy this node was chosen for: a connected member here; else another owner, which may have one (route changes
   * travel slower than messages, so a copy can reach a node whose last connected member just left); after
   * MAX_REDIRECTS such hops, or with no other owner, an offline member here gets it queued.
   */
  async receive(message: ForwardedMessage, fromNode: string): Promise<void> {
    const group = message.shareGroup as string;
    const filter = message.shareFilter as string;
    const redirects = message.redirects ?? 0;
    const local = sharedMessageOf(message);
    if (this.local.isRepeat(group, filter, local)) {
      // The group had this message here before (republished after a crash): no member gets it again, none elsewhere.
      this.local.count('repeat');
      return;
    }
    if (redirects < MAX_REDIRECTS && !this.local.hasConnectedMember(group, filter)) {
      const share = this.index.get(filter, group);
      if (share !== undefined && share.owners.some((owner) => owner !== this.selfId)) {
        this.local.count('redirected');
        this.logger.debug({ group, filter, from: fromNode, redirects }, 'no connected member here: shared message passed on');
        if (await this.deliverToGroup(share, { ...message, redirects: redirects + 1 }, new Set([this.selfId]))) return;
      }
    }
    await this.deliverHere(group, filter, message);
  }

  /** Tries owners in turn until one takes the copy (a node found gone is skipped); false when none did. */
  private async deliverToGroup(share: ShareOwners, message: ForwardedMessage, excluded: Set<string>): Promise<boolean> {
    for (;;) {
      const owner = share.next(this.selfId, this.local.hasConnectedMember(share.group, share.filter), excluded, message.publishId);
      if (owner === undefined) return false;
      if (owner === this.selfId) {
        await this.deliverHere(share.group, share.filter, message);
        return true;
      }
      this.local.count('forwarded');
      if (await this.send(owner, { ...message, shareGroup: share.group, shareFilter: share.filter })) return true;
      excluded.add(owner);
    }
  }

  private async deliverHere(group: string, filter: string, message: ForwardedMessage): Promise<void> {
    const outcome = await this.local.deliver(group, filter, sharedMessageOf(message));
    if (outcome === 'dropped') this.logger.debug({ group, filter, topic: message.topic }, 'shared message dropped: no member here can take it');
  }
}

/** What a member here gets of a forwarded copy: the publish identity goes with it (the group gets it once here). */
function sharedMessageOf(message: ForwardedMessage): SharedMessage {
  const local: SharedMessage = { topic: message.topic, payload: message.payload, qos: message.qos, publisherClientId: message.publisherClientId || undefined };
  if (message.publishId !== undefined) local.publishId = message.publishId;
  return local;
}

/**
 * The group choice for a cluster member without clients of its own (a sidecar link agent publishing linked
 * messages into its region): one copy per matched group to one owner node, chosen like a node does
 * (`ShareOwners.next`: by the message's publish identity when it has one — a linked QoS ≥ 1 message always does —,
 * else in turn); an owner found gone (`send` resolves false) is passed over for the next. The owner then hands the
 * copy to a connected member or redirects it (`ClusterSharedSubscriptions.receive`), and skips it when the group had
 * it there before (a carrier republished after the agent crashed). Resolves with the groups no owner took.
 */
export async function dispatchToGroupOwners(matched: readonly ShareOwners[], message: ForwardedMessage, selfId: string, send: SendToNode): Promise<ShareOwners[]> {
  const untaken: ShareOwners[] = [];
  await Promise.all(matched.map(async (share) => {
    const excluded = new Set<string>([selfId]);
    for (;;) {
      const owner = share.next(selfId, false, excluded, message.publishId);
      if (owner === undefined) {
        untaken.push(share);
        return;
      }
      if (await send(owner, { ...message, shareGroup: share.group, shareFilter: share.filter })) return;
      excluded.add(owner);
    }
  }));
  return untaken;
}
