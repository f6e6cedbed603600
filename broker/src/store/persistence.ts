import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import { encode } from './codec.js';
import type { KvOp } from './engine.js';
import { incomingKey, outgoingKey, publishKey, retainedKey, sessionKey, subscriptionKey, willKey } from './keys.js';
import { OutgoingQueue } from './outgoing-queue.js';
import { DEFAULT_ARRIVAL_LIMITS, PublishDeliveries, sharedGroupKey, type ArrivalLimits, type ArrivalValue, type PublishDelivery } from './publish-deliveries.js';
import { RetainedTrie } from './retained-trie.js';

/** A packet as aedes hands it to the persistence (aedes-packet shape plus whatever MQTT 5 fields it carries). */
export interface StoredPacket {
  cmd: string;
  topic?: string;
  payload?: Buffer | string;
  qos?: number;
  retain?: boolean;
  dup?: boolean;
  messageId?: number;
  brokerId?: string;
  brokerCounter?: number;
  clientId?: string;
  /**
   * Stable identity of an incoming QoS 2 message of a persistent session (`<broker id>:<n>`), given when it is
   * stored pending and kept on every publish of it, copies to other nodes included: a destination that queued it
   * once skips it when it is published again (see README, "QoS 2 receive state").
   */
  publishId?: string;
  [field: string]: unknown;
}

export interface PersistenceClient {
  id: string;
}

/**
 * A clean session's QoS 2 receive state ends with its connection [MQTT-3.1.2-6]: after a crash the client starts a
 * new session and never sends the PUBREL, so that state is kept in memory only — it saves two durable commits per
 * QoS 2 message. (The message itself is published, and stored for persistent subscribers, before PUBREC.)
 */
function endsWithConnection(client: PersistenceClient): boolean {
  return (client as { clean?: unknown }).clean === true;
}

export interface SubscriptionTarget {
  clientId: string;
}

export interface Subscription {
  topic: string;
  qos: number;
  rh?: number;
  rap?: boolean;
  nl?: boolean;
  subscriptionIdentifier?: number;
}

/** What the persistence keeps per subscription of a client (the topic is the map key). */
export type SubscriptionRecord = Omit<Subscription, 'topic'>;

export interface MatchedSubscription extends SubscriptionRecord {
  clientId: string;
  topic: string;
}

/** The broker fields the persistence reads: `id` stamps wills with their owner; `clients` are the connected ones. */
export interface PersistenceBroker {
  id: string;
  clients?: Record<string, unknown>;
}

export interface QueuedPacket {
  seq: number;
  packet: StoredPacket;
}

/** Values on disk: each carries its logical identity, so loading never parses keys (which may be hashed). */
export interface SubscriptionValue { clientId: string; topic: string; record: SubscriptionRecord }
export interface OutgoingValue { clientId: string; seq: number; packet: StoredPacket }
/** `handled`: while pending, the sessions here the message was already queued for (see PublishDeliveries). */
export interface IncomingValue { clientId: string; packet: StoredPacket; pending?: true; publishId?: string; handled?: string[] }

/**
 * Sets the publish identity on a stored incoming packet as a non-enumerable field: aedes publishes the packet with
 * it, while the packet still compares (and exports) as the one received (aedes-persistence's suite compares them).
 */
export function attachPublishId(packet: StoredPacket, publishId: string | undefined): void {
  if (publishId !== undefined) Object.defineProperty(packet, 'publishId', { value: publishId, enumerable: false, writable: true, configurable: true });
}

export function pendingKey(clientId: string, messageId: number): string {
  return `${clientId}\u0000${messageId}`;
}
export interface SessionValue { clientId: string }

export interface SubscriptionObserver {
  stored(clientId: string, filters: string[]): void;
  /** `filters` absent: all of the client's. */
  unstored(clientId: string, filters?: string[]): void;
}

/** Everything the persistence mirrors in memory; loaded from disk on open. */
export interface PersistenceState {
  retained: Map<string, StoredPacket>;
  /** Client ids with a stored (CleanSession 0) session, subscriptions or not. */
  sessions: Set<string>;
  subscriptions: Map<string, Map<string, SubscriptionRecord>>;
  outgoing: Map<string, OutgoingQueue>;
  incoming: Map<string, Map<number, StoredPacket>>;
  /** Incoming QoS 2 packets stored but not yet published (`<client id>\u0000<message id>`): a crash left them so. */
  incomingPending: Set<string>;
  /** Per pending key: the sessions here the pending message was already queued for. */
  incomingHandled: Map<string, string[]>;
  /** Copies from other nodes queued here recently, by publish identity. */
  arrivals: ArrivalValue[];
  wills: Map<string, StoredPacket>;
  nextSeq: number;
}

export function emptyState(): PersistenceState {
  return {
    retained: new Map(), sessions: new Set(), subscriptions: new Map(), outgoing: new Map(), incoming: new Map(), incomingPending: new Set(), incomingHandled: new Map(), arrivals: [],
    wills: new Map(), nextSeq: 1,
  };
}

export interface PersistenceDeps {
  /** Commits ops atomically; resolves per the store's durability policy. */
  write(ops: KvOp[]): Promise<void>;
  maxQueuedMessages: number;
  /** False while the store is over its size limit: new queued messages are then refused like a full queue. */
  hasRoom(): boolean;
  onQueueFull(clientId: string, topic: string): void;
  /** How long / how many copies from other nodes are remembered by publish identity (default: DEFAULT_ARRIVAL_LIMITS). */
  arrivalLimits?: ArrivalLimits;
  /**
   * Test only (env MERIDIAN_TEST_CRASH_BEFORE_QOS2_MARK): the process kills itself with SIGKILL when about to mark
   * a QoS 2 message on a topic ending with this (internal topics carry a namespace prefix) published — after its publish committed everywhere, before the mark.
   */
  crashBeforePublishedMark?: string;
}

interface QlobberSub {
  add(topic: string, sub: MatchedSubscription): void;
  remove(topic: string, sub: { clientId: string; topic: string }): void;
  match(topic: string): MatchedSubscription[];
  subscriptionsCount: number;
}
interface QlobberOptions { wildcard_one: string; wildcard_some: string; separator: string; match_empty_levels: boolean }
type PacketCtor = new (original: StoredPacket, broker?: PersistenceBroker) => StoredPacket;

const require = createRequire(import.meta.url);
const QlobberSubCtor = require('qlobber/aedes/qlobber-sub') as new (opts: QlobberOptions) => QlobberSub;
const { Packet } = require('aedes-persistence') as { Packet: PacketCtor };

// `+` matches an empty level too ([MQTT-4.7.1-3], `sport/+` matches `sport/`), as in aedes' live matching.
const QLOBBER_OPTIONS: QlobberOptions = { wildcard_one: '+', wildcard_some: '#', separator: '/', match_empty_levels: true };

/** Refused packets of live sessions remembered per client, so their in-flight updates can pass (see README). */
const MAX_REFUSED_TRACKED = 4096;

const put = (key: string, value: unknown): KvOp => ({ type: 'put', key, value: encode(value) });
const del = (key: string): KvOp => ({ type: 'del', key });
const counterKey = (p: StoredPacket): string => `${p.brokerId}\u0000${p.brokerCounter}`;
const outgoingPut = (clientId: string, entry: QueuedPacket): KvOp =>
  put(outgoingKey(clientId, entry.seq), { clientId, seq: entry.seq, packet: entry.packet } satisfies OutgoingValue);

/**
 * aedes 1.2 async persistence on a durable key-value store. All state is mirrored in memory (reads never touch
 * the disk; subscriptions are matched through a Qlobber trie rebuilt on open), and every mutation is written
 * through: the returned promise resolves only when the write is committed under the store's durability policy.
 */
export class DurablePersistence {
  private broker: PersistenceBroker | undefined;
  private readonly trie = new QlobberSubCtor(QLOBBER_OPTIONS);
  private readonly retainedTrie = new RetainedTrie();
  private readonly refusedUpdates = new Map<string, Set<string>>();
  private readonly refusedInFlight = new Map<string, Set<number>>();
  private readonly deliveries: PublishDeliveries;
  private publishCounter = 0;
  private destroyed = false;

  constructor(
    private readonly state: PersistenceState,
    private readonly deps: PersistenceDeps,
  ) {
    for (const [clientId, subs] of state.subscriptions) {
      for (const [topic, record] of subs) if (record.qos > 0) this.trie.add(topic, { clientId, topic, ...trieFields(record) });
    }
    for (const [topic, packet] of state.retained) this.retainedTrie.set(topic, packet);
    this.deliveries = new PublishDeliveries(deps.arrivalLimits ?? DEFAULT_ARRIVAL_LIMITS);
    this.deliveries.loadArrivals(state.arrivals);
    state.arrivals = [];
    for (const [clientId, perClient] of state.incoming) {
      for (const [messageId, packet] of perClient) {
        const key = pendingKey(clientId, messageId);
        if (packet.publishId === undefined || !state.incomingPending.has(key)) continue;
        this.deliveries.addOrigin(packet.publishId, { clientId, messageId }, state.incomingHandled.get(key));
      }
    }
    state.incomingHandled.clear();
  }

  /** Told about every stored subscription that can queue messages (QoS > 0): the cluster derives routes from it. */
  subscriptionObserver?: SubscriptionObserver;

  /** Every stored subscription that can queue messages (QoS > 0), as [client id, filter]. */
  *queueingSubscriptions(): Generator<[string, string]> {
    for (const [clientId, subs] of this.state.subscriptions) {
      for (const [topic, record] of subs) if (record.qos > 0) yield [clientId, topic];
    }
  }

  async setup(broker: PersistenceBroker): Promise<void> {
    this.broker = broker;
  }

  // ---- retained ----

  async storeRetained(pkt: StoredPacket): Promise<void> {
    const packet = { ...pkt };
    const topic = requireTopic(packet);
    if (payloadLength(packet) === 0) {
      this.state.retained.delete(topic);
      this.retainedTrie.delete(topic);
      await this.deps.write([del(retainedKey(topic))]);
    } else {
      this.state.retained.set(topic, packet);
      this.retainedTrie.set(topic, packet);
      await this.deps.write([put(retainedKey(topic), packet)]);
    }
  }

  createRetainedStream(pattern: string): Readable {
    return this.createRetainedStreamCombi([pattern]);
  }

  /** Per pattern, in pattern order (a topic matched by two patterns comes twice, as for two SUBSCRIBEs). */
  createRetainedStreamCombi(patterns: string[]): Readable {
    return Readable.from(patterns.flatMap((pattern) => this.retainedTrie.match(pattern)));
  }

  // ---- subscriptions ----

  async addSubscriptions(client: PersistenceClient, subs: Subscription[]): Promise<void> {
    let stored = this.state.subscriptions.get(client.id);
    if (!stored) {
      stored = new Map();
      this.state.subscriptions.set(client.id, stored);
    }
    const ops: KvOp[] = [];
    const queueing: string[] = [];
    const downgraded: string[] = [];
    for (const sub of subs) {
      const previous = stored.get(sub.topic);
      const record: SubscriptionRecord = { qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl };
      if (sub.subscriptionIdentifier !== undefined) record.subscriptionIdentifier = sub.subscriptionIdentifier;
      if (sub.qos > 0) this.trie.add(sub.topic, { clientId: client.id, topic: sub.topic, ...trieFields(record) });
      else if (previous && previous.qos > 0) this.trie.remove(sub.topic, { clientId: client.id, topic: sub.topic });
      stored.set(sub.topic, record);
      ops.push(put(subscriptionKey(client.id, sub.topic), { clientId: client.id, topic: sub.topic, record } satisfies SubscriptionValue));
      if (sub.qos > 0) queueing.push(sub.topic);
      else if (previous && previous.qos > 0) downgraded.push(sub.topic);
    }
    await this.deps.write(ops);
    if (queueing.length) this.subscriptionObserver?.stored(client.id, queueing);
    if (downgraded.length) this.subscriptionObserver?.unstored(client.id, downgraded);
  }

  async removeSubscriptions(client: PersistenceClient, topics: string[]): Promise<void> {
    const stored = this.state.subscriptions.get(client.id);
    if (!stored) return;
    const ops: KvOp[] = [];
    for (const topic of topics) {
      const record = stored.get(topic);
      if (record === undefined) continue;
      if (record.qos > 0) this.trie.remove(topic, { clientId: client.id, topic });
      stored.delete(topic);
      ops.push(del(subscriptionKey(client.id, topic)));
    }
    if (stored.size === 0) this.state.subscriptions.delete(client.id);
    if (ops.length > 0) await this.deps.write(ops);
    this.subscriptionObserver?.unstored(client.id, topics);
  }

  async subscriptionsByClient(client: PersistenceClient): Promise<Subscription[]> {
    const stored = this.state.subscriptions.get(client.id);
    return stored ? [...stored].map(([topic, record]) => ({ topic, ...record })) : [];
  }

  async countOffline(): Promise<{ subsCount: number; clientsCount: number }> {
    return { subsCount: this.trie.subscriptionsCount, clientsCount: this.state.subscriptions.size };
  }

  async subscriptionsByTopic(topic: string): Promise<MatchedSubscription[]> {
    return this.trie.match(topic);
  }

  /** aedes calls it on a CleanSession 1 CONNECT: the stored session ends with its subscriptions. */
  async cleanSubscriptions(client: PersistenceClient): Promise<void> {
    const ops: KvOp[] = [];
    if (this.state.sessions.delete(client.id)) ops.push(del(sessionKey(client.id)));
    const stored = this.state.subscriptions.get(client.id);
    for (const [topic, record] of stored ?? []) {
      if (record.qos > 0) this.trie.remove(topic, { clientId: client.id, topic });
      ops.push(del(subscriptionKey(client.id, topic)));
    }
    this.state.subscriptions.delete(client.id);
    if (ops.length > 0) await this.deps.write(ops);
    if (stored) this.subscriptionObserver?.unstored(client.id);
  }

  /**
   * Called by (patched) aedes on a CleanSession 0 CONNECT: records that the client has a stored session and
   * resolves whether it had one already. CONNACK Session Present is 1 then, even for a session without
   * subscriptions [MQTT-3.2.2-2] (unpatched aedes derives it from `subscriptionsByClient` alone).
   */
  async openSession(client: PersistenceClient): Promise<boolean> {
    if (this.state.sessions.has(client.id)) return true;
    this.state.sessions.add(client.id);
    await this.deps.write([put(sessionKey(client.id), { clientId: client.id } satisfies SessionValue)]);
    return false;
  }

  getClientList(topic: string): Readable {
    const clients = [...this.state.subscriptions].filter(([, subs]) => subs.has(topic)).map(([clientId]) => clientId);
    return Readable.from(clients);
  }

  // ---- outgoing (queued and in-flight messages to a subscriber) ----

  async outgoingEnqueue(sub: SubscriptionTarget, packet: StoredPacket): Promise<void> {
    return this.outgoingEnqueueCombi([sub], packet);
  }

  /** aedes queues every QoS > 0 publish for all matching persistent sessions, connected ones included. */
  async outgoingEnqueueCombi(subs: SubscriptionTarget[], packet: StoredPacket): Promise<void> {
    const ops: KvOp[] = [];
    if (typeof packet.publishId === 'string') return this.enqueueOnce(packet.publishId, subs, packet, ops);
    for (const sub of subs) this.enqueueFor(sub.clientId, packet, ops);
    if (ops.length > 0) await this.deps.write(ops);
  }

  /**
   * Queues a message with a publish identity for the sessions it was not queued for before, and records them in
   * the same commit. A session skipped is remembered, so that aedes' live delivery skips it too (`queuedBefore`).
   */
  private async enqueueOnce(publishId: string, subs: SubscriptionTarget[], packet: StoredPacket, ops: KvOp[]): Promise<void> {
    // Queued for nobody: nothing to remember (a later publish may queue it for whoever subscribed meanwhile). Most
    // linked and forwarded copies reach only live clean sessions; an arrival record each would cost a map entry.
    if (subs.length === 0) return;
    const { delivery, evicted } = this.deliveries.recordOf(publishId);
    for (const id of evicted) ops.push(del(publishKey(id)));
    const added: string[] = [];
    for (const { clientId } of subs) {
      if (delivery.handled.has(clientId)) {
        if (packet.brokerId != null) this.deliveries.rememberSkipped(counterKey(packet), clientId);
        continue;
      }
      this.enqueueFor(clientId, packet, ops);
      delivery.handled.add(clientId);
      added.push(clientId);
    }
    const record = added.length > 0 ? this.deliveryRecord(delivery) : undefined;
    if (record) ops.push(record);
    if (ops.length === 0) return;
    try {
      await this.deps.write(ops);
    } catch (err) {
      // Not queued after all: a later publish of the message must queue it.
      for (const clientId of added) delivery.handled.delete(clientId);
      throw err;
    }
  }

  /**
   * A shared-subscription group's copy of a message with a publish identity was queued here before (for any member
   * of the group `shareTopic`, `$share/<group>/<filter>`): a republish of it must reach no member again.
   */
  sharedRepeat(publishId: string, shareTopic: string): boolean {
    return this.deliveries.handledBy(publishId, sharedGroupKey(shareTopic));
  }

  /**
   * Queues the group's copy of a message with a publish identity for member `clientId` and records the group in the
   * message's delivery record, in the same commit; resolves false (queued for nobody) when the group had it here
   * before. Only the group is recorded: the member may hold the message from an ordinary subscription as well.
   */
  async outgoingEnqueueShared(clientId: string, packet: StoredPacket, publishId: string, shareTopic: string): Promise<boolean> {
    const key = sharedGroupKey(shareTopic);
    const { delivery, evicted } = this.deliveries.recordOf(publishId);
    if (delivery.handled.has(key)) return false;
    const ops: KvOp[] = evicted.map((id) => del(publishKey(id)));
    this.enqueueFor(clientId, packet, ops);
    delivery.handled.add(key);
    const record = this.deliveryRecord(delivery);
    if (record) ops.push(record);
    try {
      await this.deps.write(ops);
    } catch (err) {
      delivery.handled.delete(key);
      throw err;
    }
    return true;
  }

  /** The durable record of which sessions a message was queued for: the pending `i:` record or an arrival. */
  private deliveryRecord(delivery: PublishDelivery): KvOp | undefined {
    const handled = [...delivery.handled];
    if (delivery.origin === undefined) {
      return put(publishKey(delivery.publishId), { publishId: delivery.publishId, handled, at: delivery.at } satisfies ArrivalValue);
    }
    const { clientId, messageId } = delivery.origin;
    const stored = this.state.incoming.get(clientId)?.get(messageId);
    if (!stored || !this.state.incomingPending.has(pendingKey(clientId, messageId))) return undefined;
    return put(incomingKey(clientId, messageId), { clientId, packet: stored, pending: true, publishId: delivery.publishId, handled } satisfies IncomingValue);
  }

  /**
   * Patched aedes asks before a live delivery: the message was published again and this session already had it
   * queued from the first publish, so it is not sent again.
   */
  queuedBefore(clientId: string, packet: StoredPacket): boolean {
    return this.deliveries.anySkipped && packet.brokerId != null && this.deliveries.takeSkipped(counterKey(packet), clientId);
  }

  /**
   * aedes assigns a messageId to a queued publish (same brokerId + brokerCounter), or replaces an in-flight
   * publish by its PUBREL (same messageId). aedes hands over its live packet object, which carries a write
   * callback: only a plain copy of the packet's fields is stored.
   */
  async outgoingUpdate(client: PersistenceClient, packet: StoredPacket): Promise<void> {
    const queue = this.state.outgoing.get(client.id);
    const same = queue?.samePublish(packet);
    if (queue && same) {
      queue.setMessageId(same, packet.messageId);
      return this.deps.write([outgoingPut(client.id, same)]);
    }
    const replaced = queue?.replacedBy(packet);
    if (queue && replaced) {
      queue.replacePacket(replaced, storedCopy(packet));
      return this.deps.write([outgoingPut(client.id, replaced)]);
    }
    if (this.passRefused(client.id, packet)) return;
    throw new Error(`no such packet: client ${client.id} has no queued packet for messageId ${packet.messageId}`);
  }

  async outgoingClearMessageId(client: PersistenceClient, packet: StoredPacket): Promise<StoredPacket | undefined> {
    const messageId = packet?.messageId;
    if (typeof messageId !== 'number') return undefined;
    const queue = this.state.outgoing.get(client.id);
    const entry = queue?.withMessageId(messageId);
    if (!queue || !entry) {
      forget(this.refusedInFlight, client.id, messageId);
      return undefined;
    }
    queue.remove(entry);
    if (queue.size === 0) this.state.outgoing.delete(client.id);
    await this.deps.write([del(outgoingKey(client.id, entry.seq))]);
    return entry.packet;
  }

  /**
   * The session's queue in order, a snapshot. Publishes already sent (they carry a messageId) come back as
   * stored, DUP 0: patched aedes (connect.js emptyQueue) sets DUP 1 on them when it re-sends [MQTT-3.3.1-1],
   * because aedes-persistence's contract has the stream return the packets as they were updated.
   */
  outgoingStream(client: PersistenceClient): Readable {
    return Readable.from(this.state.outgoing.get(client.id)?.packets() ?? []);
  }

  /** Queued (not yet acknowledged) messages of a session, in-flight ones included. */
  queuedCount(clientId: string): number {
    return this.state.outgoing.get(clientId)?.size ?? 0;
  }

  // ---- incoming QoS 2 (received, PUBREL not yet seen) ----

  /** Resolves with the stored copy, which patched aedes publishes (it carries the publish identity). */
  async incomingStorePacket(client: PersistenceClient, packet: StoredPacket): Promise<StoredPacket> {
    const messageId = requireMessageId(packet);
    const stored = new Packet(packet);
    stored.messageId = messageId;
    let perClient = this.state.incoming.get(client.id);
    if (!perClient) {
      perClient = new Map();
      this.state.incoming.set(client.id, perClient);
    }
    perClient.set(messageId, stored);
    if (endsWithConnection(client)) return stored;
    const publishId = `${this.requireBroker().id}:${++this.publishCounter}`;
    attachPublishId(stored, publishId);
    this.deliveries.addOrigin(publishId, { clientId: client.id, messageId });
    this.state.incomingPending.add(pendingKey(client.id, messageId));
    await this.deps.write([put(incomingKey(client.id, messageId), { clientId: client.id, packet: stored, pending: true, publishId } satisfies IncomingValue)]);
    return stored;
  }

  /**
   * The stored incoming QoS 2 packet was published (stored for every subscriber and link): a resend of its id is a
   * duplicate from now on. Until then a resend after a crash publishes it — see the aedes patch (publish.js).
   */
  async incomingPublished(client: PersistenceClient, packet: StoredPacket): Promise<void> {
    if (this.deps.crashBeforePublishedMark !== undefined && packet.topic?.endsWith(this.deps.crashBeforePublishedMark)) {
      process.kill(process.pid, 'SIGKILL');
    }
    const messageId = packet.messageId;
    if (messageId === undefined || !this.state.incomingPending.delete(pendingKey(client.id, messageId))) return;
    const stored = this.state.incoming.get(client.id)?.get(messageId);
    if (!stored) return;
    this.deliveries.dropOrigin(stored.publishId);
    await this.deps.write([put(incomingKey(client.id, messageId), { clientId: client.id, packet: stored } satisfies IncomingValue)]);
  }

  /** A stored incoming QoS 2 packet that was never published (the node died in between). */
  incomingIsPending(client: PersistenceClient, messageId: number): boolean {
    return this.state.incomingPending.has(pendingKey(client.id, messageId));
  }

  /** Whether an incoming QoS 2 packet id is held (patched aedes asks this first: no rejected promise per fresh id). */
  incomingHasPacket(client: PersistenceClient, messageId: number | undefined): boolean {
    return messageId !== undefined && this.state.incoming.get(client.id)?.has(messageId) === true;
  }

  async incomingGetPacket(client: PersistenceClient, packet: StoredPacket): Promise<StoredPacket> {
    const stored = packet.messageId === undefined ? undefined : this.state.incoming.get(client.id)?.get(packet.messageId);
    if (!stored) throw new NoSuchPacketError(`no such packet: client ${client.id} has no incoming packet ${packet.messageId}`);
    return stored;
  }

  async incomingDelPacket(client: PersistenceClient, packet: StoredPacket): Promise<void> {
    const perClient = this.state.incoming.get(client.id);
    const messageId = packet.messageId;
    if (messageId === undefined || !perClient?.has(messageId)) {
      throw new Error(`no such packet: client ${client.id} has no incoming packet ${messageId}`);
    }
    this.deliveries.dropOrigin(perClient.get(messageId)?.publishId);
    perClient.delete(messageId);
    if (perClient.size === 0) this.state.incoming.delete(client.id);
    this.state.incomingPending.delete(pendingKey(client.id, messageId));
    if (endsWithConnection(client)) return;
    await this.deps.write([del(incomingKey(client.id, messageId))]);
  }

  async cleanIncoming(client: PersistenceClient): Promise<void> {
    const perClient = this.state.incoming.get(client.id);
    if (!perClient) return;
    this.state.incoming.delete(client.id);
    for (const [messageId, packet] of perClient) {
      this.state.incomingPending.delete(pendingKey(client.id, messageId));
      this.deliveries.dropOrigin(packet.publishId);
    }
    await this.deps.write([...perClient.keys()].map((messageId) => del(incomingKey(client.id, messageId))));
  }

  // ---- wills ----

  async putWill(client: PersistenceClient, packet: StoredPacket): Promise<void> {
    packet.brokerId = this.requireBroker().id;
    packet.clientId = client.id;
    this.state.wills.set(client.id, packet);
    await this.deps.write([put(willKey(client.id), packet)]);
  }

  async getWill(client: PersistenceClient): Promise<StoredPacket | undefined> {
    return this.state.wills.get(client.id);
  }

  async delWill(client: PersistenceClient): Promise<StoredPacket | undefined> {
    const will = this.state.wills.get(client.id);
    if (!will) return undefined;
    this.state.wills.delete(client.id);
    await this.deps.write([del(willKey(client.id))]);
    return will;
  }

  /** Wills whose owning broker is not in `brokers` (the live ones): aedes publishes and deletes them. */
  streamWill(brokers: Record<string, unknown> = {}): Readable {
    return Readable.from([...this.state.wills.values()].filter((will) => !Object.hasOwn(brokers, String(will.brokerId))));
  }

  // ---- retained, for cluster-wide replication ----

  hasRetained(topic: string): boolean {
    return this.state.retained.has(topic);
  }

  /** The retained messages `filter` matches, read synchronously from the topic trie (link retained sync). */
  matchRetained(filter: string): StoredPacket[] {
    return this.retainedTrie.match(filter);
  }

  getRetained(topic: string): StoredPacket | undefined {
    return this.state.retained.get(topic);
  }

  retainedTopics(): string[] {
    return [...this.state.retained.keys()];
  }

  /** Waits for this instance's writes; the store itself is closed by `NodeStore.close()`. */
  async destroy(): Promise<void> {
    if (this.destroyed) throw new Error('persistence destroyed twice');
    this.destroyed = true;
    await this.deps.write([]);
  }

  // ---- internals ----

  /** Appends `packet` to the client's queue unless it is full. */
  private enqueueFor(clientId: string, packet: StoredPacket, ops: KvOp[]): void {
    let queue = this.state.outgoing.get(clientId);
    // Every node's copy of a message has the origin's identity (cluster README, "Handover"): a session handed over
    // holds the old node's entry of a message whose copy reaches it here afterwards. Queued once; live delivery skips it.
    if (queue !== undefined && packet.brokerId != null && queue.samePublish(packet) !== undefined) {
      this.deliveries.rememberSkipped(counterKey(packet), clientId);
      return;
    }
    if ((queue?.size ?? 0) >= this.deps.maxQueuedMessages || !this.deps.hasRoom()) {
      this.deps.onQueueFull(clientId, packet.topic ?? '');
      // A connected session's delivery of this packet follows at once: let its updates through (passRefused).
      if (this.broker?.clients?.[clientId] !== undefined) this.rememberRefused(clientId, packet);
      return;
    }
    if (!queue) {
      queue = new OutgoingQueue();
      this.state.outgoing.set(clientId, queue);
    }
    const entry = { seq: this.state.nextSeq++, packet: new Packet(packet) };
    queue.append(entry);
    ops.push(outgoingPut(clientId, entry));
  }

  private rememberRefused(clientId: string, packet: StoredPacket): void {
    const refused = setFor(this.refusedUpdates, clientId);
    if (refused.size >= MAX_REFUSED_TRACKED) refused.delete(refused.values().next().value as string);
    refused.add(counterKey(packet));
  }

  /**
   * A live session's packet refused at enqueue still reaches aedes' delivery path, which updates it with a
   * message id (and later a PUBREL). Those updates succeed without storing anything, so aedes sends the
   * packet once over the live connection instead of treating the missing packet as an error.
   */
  private passRefused(clientId: string, packet: StoredPacket): boolean {
    if (packet.cmd === 'publish' && forget(this.refusedUpdates, clientId, counterKey(packet))) {
      if (packet.messageId !== undefined) {
        const inFlight = setFor(this.refusedInFlight, clientId);
        if (inFlight.size >= MAX_REFUSED_TRACKED) inFlight.delete(inFlight.values().next().value as number);
        inFlight.add(packet.messageId);
      }
      return true;
    }
    return packet.cmd === 'pubrel' && packet.messageId !== undefined && (this.refusedInFlight.get(clientId)?.has(packet.messageId) ?? false);
  }

  private requireBroker(): PersistenceBroker {
    if (!this.broker) throw new Error('persistence used before setup(broker)');
    return this.broker;
  }

  // ---- session handover between cluster nodes (cluster/takeover.ts) ----

  /** The client has stored state here: a CleanSession 0 session, subscriptions, queued or QoS 2 received messages. */
  hasSession(clientId: string): boolean {
    const s = this.state;
    return s.sessions.has(clientId) || s.subscriptions.has(clientId) || s.outgoing.has(clientId) || s.incoming.has(clientId);
  }

  /** Every client id with stored state (see `hasSession`). */
  sessionClientIds(): Set<string> {
    const s = this.state;
    return new Set([...s.sessions, ...s.subscriptions.keys(), ...s.outgoing.keys(), ...s.incoming.keys()]);
  }

  /**
   * A copy of the client's session, undefined when it has none. The will is not part of it: the connection that
   * owned it publishes or deletes it when it closes. `watermark`: every queued entry exported has a sequence number
   * at or below it, anything queued afterwards above.
   */
  exportSession(clientId: string): SessionSnapshot | undefined {
    if (!this.hasSession(clientId)) return undefined;
    return {
      clientId,
      stored: this.state.sessions.has(clientId),
      subscriptions: [...(this.state.subscriptions.get(clientId) ?? [])].map(([topic, record]) => ({ topic, ...record })),
      outgoing: (this.state.outgoing.get(clientId)?.packets() ?? []).map((packet) => storedCopy(packet)),
      incoming: [...(this.state.incoming.get(clientId)?.values() ?? [])].map((packet) => ({ ...packet })),
      watermark: this.state.nextSeq - 1,
    };
  }

  /**
   * Merges a session exported by another node into this one, in one atomic write. What is already here wins and
   * repeats are skipped (a queued publish by its broker id and counter, a PUBREL or QoS 2 received message by its
   * messageId), so importing the same snapshot twice adds nothing. Queued messages are appended after the ones
   * already here without the queue limit: they were accepted once, and dropping them now would lose them.
   */
  async importSession(snapshot: SessionSnapshot): Promise<SessionImport> {
    const { clientId } = snapshot;
    const ops: KvOp[] = [];
    if (snapshot.stored && !this.state.sessions.has(clientId)) {
      this.state.sessions.add(clientId);
      ops.push(put(sessionKey(clientId), { clientId } satisfies SessionValue));
    }
    const queueing = this.importSubscriptions(clientId, snapshot.subscriptions, ops);
    const queued = this.importOutgoing(clientId, snapshot.outgoing, ops);
    const received = this.importIncoming(clientId, snapshot.incoming, ops);
    if (ops.length > 0) await this.deps.write(ops);
    if (queueing.length > 0) this.subscriptionObserver?.stored(clientId, queueing);
    return { subscriptions: queueing.length, queued, received };
  }

  /**
   * Takes the client's session out of memory (nothing more is queued for it here) and leaves the disk as it is,
   * so that `reattachSession` can put it back or `deleteDetachedSession` can remove it for good.
   */
  detachSession(clientId: string): DetachedSession | undefined {
    if (!this.hasSession(clientId)) return undefined;
    const subscriptions = this.state.subscriptions.get(clientId) ?? new Map<string, SubscriptionRecord>();
    for (const [topic, record] of subscriptions) if (record.qos > 0) this.trie.remove(topic, { clientId, topic });
    const detached: DetachedSession = {
      clientId,
      stored: this.state.sessions.delete(clientId),
      subscriptions: [...subscriptions].map(([topic, record]) => ({ topic, ...record })),
      outgoing: this.takeQueue(clientId),
      incoming: [...(this.state.incoming.get(clientId)?.values() ?? [])],
    };
    this.state.subscriptions.delete(clientId);
    this.state.incoming.delete(clientId);
    this.refusedUpdates.delete(clientId);
    this.refusedInFlight.delete(clientId);
    if (subscriptions.size > 0) this.subscriptionObserver?.unstored(clientId);
    return detached;
  }

  /** Puts a detached session back as it was (its keys never left the disk). */
  reattachSession(detached: DetachedSession): void {
    const { clientId } = detached;
    if (this.hasSession(clientId)) throw new Error(`cannot reattach the session of ${clientId}: a new one was stored meanwhile`);
    if (detached.stored) this.state.sessions.add(clientId);
    const subscriptions = new Map<string, SubscriptionRecord>();
    const queueing: string[] = [];
    for (const { topic, ...record } of detached.subscriptions) {
      subscriptions.set(topic, record);
      if (record.qos > 0) {
        this.trie.add(topic, { clientId, topic, ...trieFields(record) });
        queueing.push(topic);
      }
    }
    if (subscriptions.size > 0) this.state.subscriptions.set(clientId, subscriptions);
    if (detached.outgoing.length > 0) {
      const queue = new OutgoingQueue();
      for (const entry of detached.outgoing) queue.append(entry);
      this.state.outgoing.set(clientId, queue);
    }
    if (detached.incoming.length > 0) {
      this.state.incoming.set(clientId, new Map(detached.incoming.map((packet) => [packet.messageId as number, packet])));
    }
    if (queueing.length > 0) this.subscriptionObserver?.stored(clientId, queueing);
  }

  /** Removes a detached session's keys (and the client's stored will) from disk in one atomic write. */
  async deleteDetachedSession(detached: DetachedSession): Promise<void> {
    const { clientId } = detached;
    const ops: KvOp[] = [del(sessionKey(clientId))];
    for (const { topic } of detached.subscriptions) ops.push(del(subscriptionKey(clientId, topic)));
    for (const { seq } of detached.outgoing) ops.push(del(outgoingKey(clientId, seq)));
    for (const packet of detached.incoming) {
      ops.push(del(incomingKey(clientId, packet.messageId as number)));
      this.deliveries.dropOrigin(packet.publishId);
    }
    if (this.state.wills.delete(clientId)) ops.push(del(willKey(clientId)));
    await this.deps.write(ops);
  }

  /** Ends the client's session here, in memory and on disk (another node holds it now, or it starts clean there). */
  async deleteSession(clientId: string): Promise<void> {
    const detached = this.detachSession(clientId);
    if (detached) await this.deleteDetachedSession(detached);
  }

  private importSubscriptions(clientId: string, subs: Subscription[], ops: KvOp[]): string[] {
    let stored = this.state.subscriptions.get(clientId);
    const queueing: string[] = [];
    for (const { topic, ...record } of subs) {
      if (stored?.has(topic)) continue;
      if (!stored) {
        stored = new Map();
        this.state.subscriptions.set(clientId, stored);
      }
      stored.set(topic, record);
      ops.push(put(subscriptionKey(clientId, topic), { clientId, topic, record } satisfies SubscriptionValue));
      if (record.qos > 0) {
        this.trie.add(topic, { clientId, topic, ...trieFields(record) });
        queueing.push(topic);
      }
    }
    return queueing;
  }

  private importOutgoing(clientId: string, packets: StoredPacket[], ops: KvOp[]): number {
    let queue = this.state.outgoing.get(clientId);
    let added = 0;
    for (const packet of packets) {
      if (queue && isQueuedAlready(queue, packet)) continue;
      if (!queue) {
        queue = new OutgoingQueue();
        this.state.outgoing.set(clientId, queue);
      }
      const entry = { seq: this.state.nextSeq++, packet: storedCopy(packet) };
      queue.append(entry);
      ops.push(outgoingPut(clientId, entry));
      added++;
    }
    return added;
  }

  private importIncoming(clientId: string, packets: StoredPacket[], ops: KvOp[]): number {
    let added = 0;
    for (const packet of packets) {
      const messageId = requireMessageId(packet);
      let perClient = this.state.incoming.get(clientId);
      if (perClient?.has(messageId)) continue;
      if (!perClient) {
        perClient = new Map();
        this.state.incoming.set(clientId, perClient);
      }
      perClient.set(messageId, packet);
      ops.push(put(incomingKey(clientId, messageId), { clientId, packet } satisfies IncomingValue));
      added++;
    }
    return added;
  }

  /** Removes the client's whole queue from memory and returns its entries (with their keys' sequence numbers). */
  private takeQueue(clientId: string): QueuedPacket[] {
    const queue = this.state.outgoing.get(clientId);
    if (!queue) return [];
    const taken: QueuedPacket[] = [];
    for (const packet of queue.packets()) {
      const entry = (packet.cmd === 'publish' ? queue.samePublish(packet) : undefined)
        ?? (typeof packet.messageId === 'number' ? queue.withMessageId(packet.messageId) : undefined);
      if (!entry) throw new Error(`queue of ${clientId} lost track of a ${packet.cmd} (messageId ${packet.messageId})`);
      queue.remove(entry);
      taken.push(entry);
    }
    this.state.outgoing.delete(clientId);
    return taken.sort((a, b) => a.seq - b.seq);
  }
}

/**
 * A storable copy of a packet aedes updates the queue with: a publish keeps its fields (as `enqueueFor` stores
 * it) plus the messageId; anything else (a PUBREL) keeps its wire fields, command and messageId.
 */
function storedCopy(packet: StoredPacket): StoredPacket {
  if (packet.cmd !== 'publish') return { cmd: packet.cmd, messageId: packet.messageId };
  const copy = new Packet(packet);
  copy.messageId = packet.messageId;
  return copy;
}

function trieFields(record: SubscriptionRecord): Omit<SubscriptionRecord, 'subscriptionIdentifier'> {
  return { qos: record.qos, rh: record.rh, rap: record.rap, nl: record.nl };
}

function setFor<T>(map: Map<string, Set<T>>, clientId: string): Set<T> {
  let set = map.get(clientId);
  if (!set) {
    set = new Set();
    map.set(clientId, set);
  }
  return set;
}

/** Removes `value` from the client's set, dropping the set once empty; returns whether it was there. */
function forget<T>(map: Map<string, Set<T>>, clientId: string, value: T): boolean {
  const set = map.get(clientId);
  if (!set?.delete(value)) return false;
  if (set.size === 0) map.delete(clientId);
  return true;
}

function payloadLength(packet: StoredPacket): number {
  return packet.payload === undefined ? 0 : packet.payload.length;
}

function requireTopic(packet: StoredPacket): string {
  if (typeof packet.topic !== 'string') throw new Error(`retained packet without a topic (cmd ${packet.cmd})`);
  return packet.topic;
}

function requireMessageId(packet: StoredPacket): number {
  if (typeof packet.messageId !== 'number') throw new Error(`incoming QoS 2 packet without a messageId (topic ${packet.topic})`);
  return packet.messageId;
}

// ---- session handover types (cluster/takeover.ts) ----

/** A client's session as one node hands it to another (see `exportSession`). */
export interface SessionSnapshot {
  clientId: string;
  /** A CleanSession 0 session was recorded: the next CONNACK says Session Present. */
  stored: boolean;
  subscriptions: Subscription[];
  /** Queued and in-flight outgoing messages (a sent one carries its messageId, a PUBREL in flight replaces its publish), in order. */
  outgoing: StoredPacket[];
  /** QoS 2 messages received, PUBREL not yet seen. */
  incoming: StoredPacket[];
  /** Highest queue sequence number at export: entries queued later are above it. */
  watermark: number;
}

/** A session taken out of memory, its keys still on disk. */
export interface DetachedSession {
  clientId: string;
  stored: boolean;
  subscriptions: Subscription[];
  outgoing: QueuedPacket[];
  incoming: StoredPacket[];
}

/** What an import added (repeats skipped). */
export interface SessionImport {
  subscriptions: number;
  queued: number;
  received: number;
}

/** The queue holds this publish (same broker and counter) or this PUBREL (same messageId) already. */
function isQueuedAlready(queue: OutgoingQueue, packet: StoredPacket): boolean {
  if (packet.cmd === 'publish') return packet.brokerId != null && queue.samePublish(packet) !== undefined;
  return typeof packet.messageId === 'number' && queue.withMessageId(packet.messageId)?.packet.cmd === packet.cmd;
}

/**
 * aedes asks for every new QoS 2 packet id whether it was received before, and "not found" is the normal answer:
 * without a stack trace this error costs a Map lookup instead of a stack capture (14 % of a forwarding node's
 * CPU in the link benchmark's profile).
 */
class NoSuchPacketError extends Error {
  constructor(message: string) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      super(message);
    } finally {
      Error.stackTraceLimit = limit;
    }
  }
}
