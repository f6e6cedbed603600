import type { Aedes, AedesPublishPacket, Client, Subscription } from 'aedes';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../log/logger.js';
import { FilterTrie } from '../routing/trie.js';
import { parseSharedFilter, SHARE_PREFIX, TopicError } from '../routing/topic.js';
import type { StoredPacket, SubscriptionObserver } from '../store/index.js';
import { clientsOf, subscriptionsOf } from './aedes-internals.js';

/**
 * Shared subscriptions `$share/<group>/<filter>` on one node: each message goes to one member of the group.
 *
 * aedes 1.2 has no shared subscriptions: it would register a `$share/...` subscription as an mqemitter listener on
 * that literal string. Here the subscription is taken out of mqemitter and kept as a member of its (group, filter)
 * instead; `deliver()` hands a message to one member, round-robin among the connected ones, else queues it for one
 * offline persistent session. A standalone node calls `published()` from aedes' published hook; a cluster node
 * lets the cluster choose the node first (cluster/shared-subscriptions.ts) and calls `deliver()` on the chosen one.
 */

type DeliverFunc = (packet: AedesPublishPacket, callback: () => void) => void;

/** `repeat`: the group had a message with this publish identity here before (republished after a crash): not sent again. */
export type ShareOutcome = 'delivered' | 'queued' | 'dropped' | 'repeat';

/** What the metric counts: the local outcomes, plus the cluster's hand-overs to other nodes. */
export type ShareMetricOutcome = ShareOutcome | 'forwarded' | 'redirected';

export interface SharedMessage {
  /** Internal (mounted) topic name. */
  topic: string;
  payload: Buffer | string;
  qos: 0 | 1 | 2;
  /** The original publisher, when known. */
  publisherClientId?: string;
  /**
   * The message's publish identity (a linked message's, or a persistent session's QoS 2 message's: store README):
   * the group gets it once here even when it is published again after a crash (`SharedSessionStore.sharedRepeat`).
   */
  publishId?: string;
}

/** The store operations shared delivery needs (DurablePersistence has them). */
export interface SharedSessionStore {
  outgoingEnqueueCombi(subs: { clientId: string }[], packet: StoredPacket): Promise<void>;
  subscriptionsByTopic(topic: string): Promise<{ clientId: string; topic: string; qos: number }[]>;
  queueingSubscriptions(): Iterable<[string, string]>;
  subscriptionObserver?: SubscriptionObserver;
  /** Whether group `shareTopic`'s copy of the message `publishId` was queued here before (store without identities: absent). */
  sharedRepeat?(publishId: string, shareTopic: string): boolean;
  /** Queues a group's copy for one member and records the group in the same commit; false when the group had it. */
  outgoingEnqueueShared?(clientId: string, packet: StoredPacket, publishId: string, shareTopic: string): Promise<boolean>;
}

export interface SharedSubscriptionsOptions {
  logger: Logger;
  /** Where the outcome counter is registered; none in unit tests. */
  registry?: Registry;
}

/** A connected client's subscription to a shared group, with the deliver function aedes made for it. */
export interface ShareMember {
  readonly client: Client;
  readonly func: DeliverFunc;
  /** The member's previous deliver call, while it waits for a store write: later calls go after it. */
  pendingCall?: Promise<void>;
}

/** One `$share/<group>/<filter>` on this node: its connected members and the persistent sessions that stored it. */
export class ShareGroup {
  readonly live: ShareMember[] = [];
  /** Client ids whose stored session holds this subscription at QoS > 0 (so it can queue while offline). */
  readonly stored = new Set<string>();
  private liveTurn = 0;
  private storedTurn = 0;

  constructor(readonly topic: string, readonly group: string, readonly filter: string) {}

  get isEmpty(): boolean {
    return this.live.length === 0 && this.stored.size === 0;
  }

  hasConnectedMember(): boolean {
    return this.live.some(isUsable);
  }

  /** The next connected member in turn (round-robin), skipping closing ones; undefined when there is none. */
  nextLive(): ShareMember | undefined {
    const picked = pickInTurn(this.live, this.liveTurn, isUsable);
    if (picked === undefined) return undefined;
    this.liveTurn = picked.index + 1;
    return picked.item;
  }

  /** The next of `candidates` (offline sessions, in a stable order) in turn. */
  nextStored<T>(candidates: readonly T[]): T | undefined {
    const picked = pickInTurn(candidates, this.storedTurn, () => true);
    if (picked === undefined) return undefined;
    this.storedTurn = picked.index + 1;
    return picked.item;
  }
}

/**
 * The first item from position `turn` on (wrapping around) that `usable` accepts. Round-robin over a list that
 * changes between calls: removals only shift who is next, nobody is skipped twice in a row.
 */
export function pickInTurn<T>(items: readonly T[], turn: number, usable: (item: T) => boolean): { item: T; index: number } | undefined {
  const n = items.length;
  for (let i = 0; i < n; i++) {
    const index = (turn + i) % n;
    if (usable(items[index])) return { item: items[index], index };
  }
  return undefined;
}

function isUsable(member: ShareMember): boolean {
  return !member.client.closed;
}

/** The subscription topic of group `group` on `filter`: `$share/<group>/<filter>`. */
function shareTopicOf(group: string, filter: string): string {
  return `${SHARE_PREFIX}${group}/${filter}`;
}

/** `$share/<group>/<filter>` → its parts; null for an ordinary or a malformed one (aedes keeps those literal). */
export function sharedSubscriptionOf(topic: string): { group: string; filter: string } | null {
  if (!topic.startsWith(SHARE_PREFIX)) return null;
  try {
    return parseSharedFilter(topic);
  } catch (err) {
    if (err instanceof TopicError) return null;
    throw err;
  }
}

export class SharedSubscriptions {
  private readonly byTopic = new Map<string, ShareGroup>();
  /** Groups by filter, to match a published topic. */
  private readonly byFilter = new FilterTrie<ShareGroup[]>();
  /** Clients authorized to subscribe to a shared topic whose aedes.subscribe() has not come yet. */
  private readonly expected = new Map<string, Set<Client>>();
  /** Shared deliveries are numbered apart from aedes' own packets: see deliverTo(). */
  private readonly brokerId: string;
  private counter = 0;
  /**
   * Groups that handed a message with a publish identity to a member without storing it (a clean session, or a
   * QoS 0 grant): `<publish id>\0<share topic>`, oldest first, at most MAX_UNSTORED_REPEATS. Nothing durable records
   * those, yet the sender may publish the message again after its own crash (a link agent's carrier resent) while
   * this node runs on: the group must not get it twice then either.
   */
  private readonly unstoredDeliveries = new Set<string>();
  private readonly logger: Logger;
  private readonly outcomes: Counter<'outcome'>;

  private constructor(private readonly aedes: Aedes, private readonly store: SharedSessionStore, options: SharedSubscriptionsOptions) {
    this.brokerId = `${aedes.id}/share`;
    this.logger = options.logger.child({ component: 'shared-subscriptions' });
    this.outcomes = new Counter({
      name: 'meridian_shared_subscription_messages_total',
      help: 'Messages for shared-subscription groups, by outcome (delivered to a member here, queued for an offline member, dropped for lack of one, forwarded or redirected to another node)',
      labelNames: ['outcome'], registers: options.registry ? [options.registry] : [],
    });
  }

  /**
   * Takes over aedes' handling of `$share/...` subscriptions. Call it right after creating aedes, before anything
   * else wraps aedes.subscribe (the cluster's route tracking must still see the `$share/...` subscriptions).
   */
  static attach(aedes: Aedes, store: SharedSessionStore, options: SharedSubscriptionsOptions): SharedSubscriptions {
    const shared = new SharedSubscriptions(aedes, store, options);
    shared.wrapAedes();
    shared.trackStoredSessions();
    return shared;
  }

  /** Number of (group, filter) pairs with a member on this node. */
  get size(): number {
    return this.byTopic.size;
  }

  count(outcome: ShareMetricOutcome): void {
    this.outcomes.inc({ outcome });
  }

  group(group: string, filter: string): ShareGroup | undefined {
    return this.byTopic.get(shareTopicOf(group, filter));
  }

  hasConnectedMember(group: string, filter: string): boolean {
    return this.group(group, filter)?.hasConnectedMember() ?? false;
  }

  /** The group's copy of `message` was queued here before (same publish identity): it must not go to a member again. */
  isRepeat(group: string, filter: string, message: SharedMessage): boolean {
    if (message.publishId === undefined || message.qos === 0) return false;
    const shareTopic = shareTopicOf(group, filter);
    return (this.store.sharedRepeat?.(message.publishId, shareTopic) ?? false) || this.unstoredDeliveries.has(unstoredKey(message.publishId, shareTopic));
  }

  /** Calls `visit` for every group here whose filter matches the topic name. */
  matching(topic: string, visit: (group: ShareGroup) => void): void {
    if (this.byTopic.size === 0) return;
    this.byFilter.match(topic, (groups) => groups.forEach(visit));
  }

  /**
   * The aedes `published` hook of a standalone node: one copy to one member of every matching group, before the
   * publisher is acknowledged (a copy queued for an offline session is stored by then).
   */
  published(packet: AedesPublishPacket, client: Client | null, done: (err?: Error | null) => void): void {
    if (this.byTopic.size === 0) return done();
    const deliveries: Promise<ShareOutcome>[] = [];
    const message: SharedMessage = { topic: packet.topic, payload: packet.payload, qos: packet.qos, publisherClientId: client?.id };
    const publishId = (packet as { publishId?: unknown }).publishId;
    if (typeof publishId === 'string') message.publishId = publishId;
    this.matching(packet.topic, (group) => deliveries.push(this.deliverToGroup(group, message)));
    if (deliveries.length === 0) return done();
    Promise.all(deliveries).then(() => done(), (err: Error) => done(err));
  }

  /**
   * One copy of `message` to one member of `$share/<group>/<filter>` here: a connected member in turn, else one
   * offline persistent session (queued, QoS > 0 only). At min(message QoS, the member's granted QoS).
   */
  deliver(group: string, filter: string, message: SharedMessage): Promise<ShareOutcome> {
    const share = this.group(group, filter);
    if (share === undefined) {
      this.count('dropped');
      return Promise.resolve('dropped');
    }
    return this.deliverToGroup(share, message);
  }

  private deliverToGroup(share: ShareGroup, message: SharedMessage): Promise<ShareOutcome> {
    if (this.isRepeat(share.group, share.filter, message)) {
      this.count('repeat');
      return Promise.resolve('repeat');
    }
    const member = share.nextLive();
    if (member !== undefined) {
      this.count('delivered');
      return this.deliverTo(member, share.topic, message).then(() => 'delivered');
    }
    if (message.qos === 0 || share.stored.size === 0) {
      this.count('dropped');
      return Promise.resolve('dropped');
    }
    return this.queueForOffline(share, message);
  }

  /**
   * Calls the member's aedes deliver function with a packet of its own numbering. aedes drops a packet whose
   * counter is not above the last one a client got from the same broker id (its dedupe), so a member's deliveries
   * must reach the deliver function in counter order: one that waits for a store write holds back the later ones.
   */
  private deliverTo(member: ShareMember, sharedTopic: string, message: SharedMessage): Promise<void> {
    const granted = subscriptionsOf(member.client)[sharedTopic]?.qos ?? 0;
    const packet = this.packetFor(message, Math.min(message.qos, granted));
    const storeFirst = packet.qos > 0 && member.client.clean === false;
    if (!storeFirst) this.rememberUnstored(sharedTopic, message);
    if (!storeFirst && member.pendingCall === undefined) return callDeliver(member, packet);
    // aedes updates a persistent session's copy in the store as it sends it: the copy must be there first.
    const stored = storeFirst ? this.enqueue(member.client.id, packet, sharedTopic, message) : undefined;
    const previous = member.pendingCall?.catch(() => undefined);
    let written: Promise<void> | undefined;
    const call = Promise.all([previous, stored]).then(([, queued]) => {
      // false: a republish the group had here already (recorded meanwhile): not sent again.
      if (queued !== false) written = callDeliver(member, packet);
    });
    member.pendingCall = call;
    const settled = (): void => {
      if (member.pendingCall === call) member.pendingCall = undefined;
    };
    call.then(settled, settled);
    return call.then(() => written);
  }

  private rememberUnstored(shareTopic: string, message: SharedMessage): void {
    if (message.publishId === undefined || message.qos === 0) return;
    const remembered = this.unstoredDeliveries;
    if (remembered.size >= MAX_UNSTORED_REPEATS) remembered.delete(remembered.values().next().value as string);
    remembered.add(unstoredKey(message.publishId, shareTopic));
  }

  private async queueForOffline(share: ShareGroup, message: SharedMessage): Promise<ShareOutcome> {
    const sessions = (await this.store.subscriptionsByTopic(share.topic))
      .filter((sub) => sub.topic === share.topic && sub.qos > 0)
      .sort((a, b) => (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0));
    const session = share.nextStored(sessions);
    if (session === undefined) {
      this.count('dropped');
      return 'dropped';
    }
    const packet = this.packetFor(message, Math.min(message.qos, session.qos));
    if (!(await this.enqueue(session.clientId, packet, share.topic, message))) {
      this.count('repeat');
      return 'repeat';
    }
    this.count('queued');
    return 'queued';
  }

  /**
   * Stores a member's copy; with a publish identity the group is recorded in the same commit (false: the group had it
   * here before). The packet keeps this node's own numbering (see deliverTo), so the identity goes beside it.
   */
  private async enqueue(clientId: string, packet: StoredPacket, shareTopic: string, message: SharedMessage): Promise<boolean> {
    if (message.publishId !== undefined && this.store.outgoingEnqueueShared) {
      return this.store.outgoingEnqueueShared(clientId, packet, message.publishId, shareTopic);
    }
    await this.store.outgoingEnqueueCombi([{ clientId }], packet);
    return true;
  }

  private packetFor(message: SharedMessage, qos: number): AedesPublishPacket & StoredPacket {
    const packet = {
      cmd: 'publish' as const, topic: message.topic, payload: message.payload, qos: qos as 0 | 1 | 2,
      // [MQTT-3.3.1-9]: a message sent for an established subscription goes out with RETAIN 0.
      retain: false, dup: false, brokerId: this.brokerId, brokerCounter: ++this.counter,
    };
    return (message.publisherClientId === undefined ? packet : { ...packet, clientId: message.publisherClientId }) as AedesPublishPacket & StoredPacket;
  }

  // ---- membership ----

  private wrapAedes(): void {
    const aedes = this.aedes;
    const subscribe = aedes.subscribe.bind(aedes);
    const unsubscribe = aedes.unsubscribe.bind(aedes);
    const authorizeSubscribe = aedes.authorizeSubscribe;
    // aedes calls authorizeSubscribe for SUBSCRIBE and for restored sessions alike, with the client: remember who
    // is about to subscribe to a shared topic (aedes.subscribe gets only the topic and the deliver function).
    aedes.authorizeSubscribe = (client, subscription, done) => {
      authorizeSubscribe.call(aedes, client, subscription, (err, granted) => {
        if (!err && granted && granted.topic.startsWith(SHARE_PREFIX)) this.expect(client, granted);
        done(err, granted);
      });
    };
    aedes.subscribe = (topic, func, done) => {
      const shared = sharedSubscriptionOf(topic);
      if (shared === null) return subscribe(topic, func, done);
      this.addMember(topic, shared.group, shared.filter, func);
      if (done) setImmediate(done);
    };
    aedes.unsubscribe = (topic, func, done) => {
      if (sharedSubscriptionOf(topic) === null) return unsubscribe(topic, func, done);
      this.removeMember(topic, func);
      if (done) setImmediate(done);
    };
  }

  private expect(client: Client, subscription: Subscription): void {
    let clients = this.expected.get(subscription.topic);
    if (clients === undefined) this.expected.set(subscription.topic, (clients = new Set()));
    clients.add(client);
  }

  private forgetExpected(topic: string, client: Client): void {
    const expected = this.expected.get(topic);
    if (expected?.delete(client) && expected.size === 0) this.expected.delete(topic);
  }

  /** The client whose subscription to `topic` has the deliver function `func`. */
  private subscriberOf(topic: string, func: DeliverFunc): Client | undefined {
    const expected = this.expected.get(topic);
    let found: Client | undefined;
    for (const client of expected ?? []) {
      if ((subscriptionsOf(client)[topic] as { func?: DeliverFunc } | undefined)?.func === func) found = client;
      if (found === client || client.closed) expected?.delete(client);
    }
    if (expected?.size === 0) this.expected.delete(topic);
    // Only if authorizeSubscribe was bypassed: look through the connected clients.
    return found ?? clientsOf(this.aedes).find((c) => (subscriptionsOf(c)[topic] as { func?: DeliverFunc } | undefined)?.func === func);
  }

  private addMember(topic: string, group: string, filter: string, func: DeliverFunc): void {
    const client = this.subscriberOf(topic, func);
    if (client === undefined) {
      this.logger.error({ topic }, 'shared subscription of an unknown client ignored');
      return;
    }
    const share = this.groupFor(topic, group, filter);
    share.live.push({ client, func });
  }

  private removeMember(topic: string, func: DeliverFunc): void {
    const share = this.byTopic.get(topic);
    if (share === undefined) return;
    const index = share.live.findIndex((member) => member.func === func);
    if (index < 0) return;
    const [member] = share.live.splice(index, 1);
    // A client that re-subscribed at the same QoS stayed expected (aedes called nothing): it is closing now.
    if (member.client.closed) this.forgetExpected(topic, member.client);
    this.dropIfEmpty(share);
  }

  private trackStoredSessions(): void {
    for (const [clientId, topic] of this.store.queueingSubscriptions()) this.stored(clientId, [topic]);
    const previous = this.store.subscriptionObserver;
    this.store.subscriptionObserver = {
      stored: (clientId, topics) => {
        this.stored(clientId, topics);
        previous?.stored(clientId, topics);
      },
      unstored: (clientId, topics) => {
        this.unstored(clientId, topics);
        previous?.unstored(clientId, topics);
      },
    };
  }

  private stored(clientId: string, topics: readonly string[]): void {
    for (const topic of topics) {
      const shared = sharedSubscriptionOf(topic);
      if (shared !== null) this.groupFor(topic, shared.group, shared.filter).stored.add(clientId);
    }
  }

  private unstored(clientId: string, topics: readonly string[] | undefined): void {
    const shares = topics === undefined ? [...this.byTopic.values()] : topics.map((t) => this.byTopic.get(t));
    for (const share of shares) {
      if (share === undefined || !share.stored.delete(clientId)) continue;
      this.dropIfEmpty(share);
    }
  }

  private groupFor(topic: string, group: string, filter: string): ShareGroup {
    let share = this.byTopic.get(topic);
    if (share === undefined) {
      share = new ShareGroup(topic, group, filter);
      this.byTopic.set(topic, share);
      this.byFilter.getOrCreate(filter, () => []).push(share);
    }
    return share;
  }

  private dropIfEmpty(share: ShareGroup): void {
    if (!share.isEmpty) return;
    this.byTopic.delete(share.topic);
    const groups = this.byFilter.get(share.filter);
    if (groups === undefined) return;
    groups.splice(groups.indexOf(share), 1);
    if (groups.length === 0) this.byFilter.delete(share.filter);
  }
}

/** How many unstored group deliveries are remembered (about 100 B each): a resend comes seconds after a crash. */
const MAX_UNSTORED_REPEATS = 65_536;

function unstoredKey(publishId: string, shareTopic: string): string {
  return `${publishId}\u0000${shareTopic}`;
}

function callDeliver(member: ShareMember, packet: AedesPublishPacket): Promise<void> {
  return new Promise((resolve) => member.func(packet, () => resolve()));
}
