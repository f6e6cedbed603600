import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import { encode } from './codec.js';
import type { KvOp } from './engine.js';
import { incomingKey, outgoingKey, retainedKey, subscriptionKey, willKey } from './keys.js';

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
  [field: string]: unknown;
}

export interface PersistenceClient {
  id: string;
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
export interface IncomingValue { clientId: string; packet: StoredPacket }

export interface SubscriptionObserver {
  stored(clientId: string, filters: string[]): void;
  /** `filters` absent: all of the client's. */
  unstored(clientId: string, filters?: string[]): void;
}

/** Everything the persistence mirrors in memory; loaded from disk on open. */
export interface PersistenceState {
  retained: Map<string, StoredPacket>;
  subscriptions: Map<string, Map<string, SubscriptionRecord>>;
  outgoing: Map<string, QueuedPacket[]>;
  incoming: Map<string, Map<number, StoredPacket>>;
  wills: Map<string, StoredPacket>;
  nextSeq: number;
}

export function emptyState(): PersistenceState {
  return { retained: new Map(), subscriptions: new Map(), outgoing: new Map(), incoming: new Map(), wills: new Map(), nextSeq: 1 };
}

export interface PersistenceDeps {
  /** Commits ops atomically; resolves per the store's durability policy. */
  write(ops: KvOp[]): Promise<void>;
  maxQueuedMessages: number;
  /** False while the store is over its size limit: new queued messages are then refused like a full queue. */
  hasRoom(): boolean;
  onQueueFull(clientId: string, topic: string): void;
}

interface QlobberSub {
  add(topic: string, sub: MatchedSubscription): void;
  remove(topic: string, sub: { clientId: string; topic: string }): void;
  match(topic: string): MatchedSubscription[];
  subscriptionsCount: number;
}
interface QlobberTrue {
  add(topic: string): void;
  test(topic: string): boolean;
}
interface QlobberOptions { wildcard_one: string; wildcard_some: string; separator: string }
type PacketCtor = new (original: StoredPacket, broker?: PersistenceBroker) => StoredPacket;

const require = createRequire(import.meta.url);
const QlobberSubCtor = require('qlobber/aedes/qlobber-sub') as new (opts: QlobberOptions) => QlobberSub;
const { QlobberTrue: QlobberTrueCtor } = require('qlobber') as { QlobberTrue: new (opts: QlobberOptions) => QlobberTrue };
const { Packet } = require('aedes-persistence') as { Packet: PacketCtor };

const QLOBBER_OPTIONS: QlobberOptions = { wildcard_one: '+', wildcard_some: '#', separator: '/' };

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
  private readonly refusedUpdates = new Map<string, Set<string>>();
  private readonly refusedInFlight = new Map<string, Set<number>>();
  private destroyed = false;

  constructor(
    private readonly state: PersistenceState,
    private readonly deps: PersistenceDeps,
  ) {
    for (const [clientId, subs] of state.subscriptions) {
      for (const [topic, record] of subs) if (record.qos > 0) this.trie.add(topic, { clientId, topic, ...trieFields(record) });
    }
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
      await this.deps.write([del(retainedKey(topic))]);
    } else {
      this.state.retained.set(topic, packet);
      await this.deps.write([put(retainedKey(topic), packet)]);
    }
  }

  createRetainedStream(pattern: string): Readable {
    return this.createRetainedStreamCombi([pattern]);
  }

  createRetainedStreamCombi(patterns: string[]): Readable {
    const matchers = patterns.map((pattern) => {
      const matcher = new QlobberTrueCtor(QLOBBER_OPTIONS);
      matcher.add(pattern);
      return matcher;
    });
    const retained = [...this.state.retained];
    return Readable.from(
      matchers.flatMap((matcher) => retained.filter(([topic]) => matcher.test(topic)).map(([, packet]) => packet)),
    );
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

  async cleanSubscriptions(client: PersistenceClient): Promise<void> {
    const stored = this.state.subscriptions.get(client.id);
    if (!stored) return;
    const ops: KvOp[] = [];
    for (const [topic, record] of stored) {
      if (record.qos > 0) this.trie.remove(topic, { clientId: client.id, topic });
      ops.push(del(subscriptionKey(client.id, topic)));
    }
    this.state.subscriptions.delete(client.id);
    await this.deps.write(ops);
    this.subscriptionObserver?.unstored(client.id);
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
    for (const sub of subs) this.enqueueFor(sub.clientId, packet, ops);
    if (ops.length > 0) await this.deps.write(ops);
  }

  async outgoingUpdate(client: PersistenceClient, packet: StoredPacket): Promise<void> {
    const queue = this.state.outgoing.get(client.id) ?? [];
    for (let i = 0; i < queue.length; i++) {
      const entry = queue[i];
      if (entry.packet.brokerId === packet.brokerId) {
        if (entry.packet.brokerCounter === packet.brokerCounter) {
          entry.packet.messageId = packet.messageId;
          return this.deps.write([outgoingPut(client.id, entry)]);
        }
        // Same broker, other counter: message ids wrap at 65535, keep looking for the counter.
      } else if (entry.packet.messageId === packet.messageId) {
        entry.packet = packet;
        return this.deps.write([outgoingPut(client.id, entry)]);
      }
    }
    if (this.passRefused(client.id, packet)) return;
    throw new Error(`no such packet: client ${client.id} has no queued packet for messageId ${packet.messageId}`);
  }

  async outgoingClearMessageId(client: PersistenceClient, packet: StoredPacket): Promise<StoredPacket | undefined> {
    const messageId = packet?.messageId;
    if (messageId === undefined) return undefined;
    const queue = this.state.outgoing.get(client.id);
    const index = queue ? queue.findIndex((entry) => entry.packet.messageId === messageId) : -1;
    if (!queue || index < 0) {
      forget(this.refusedInFlight, client.id, messageId);
      return undefined;
    }
    const [entry] = queue.splice(index, 1);
    if (queue.length === 0) this.state.outgoing.delete(client.id);
    await this.deps.write([del(outgoingKey(client.id, entry.seq))]);
    return entry.packet;
  }

  outgoingStream(client: PersistenceClient): Readable {
    const queue = this.state.outgoing.get(client.id) ?? [];
    return Readable.from(queue.map((entry) => entry.packet));
  }

  /** Queued (not yet acknowledged) messages of a session, in-flight ones included. */
  queuedCount(clientId: string): number {
    return this.state.outgoing.get(clientId)?.length ?? 0;
  }

  // ---- incoming QoS 2 (received, PUBREL not yet seen) ----

  async incomingStorePacket(client: PersistenceClient, packet: StoredPacket): Promise<void> {
    const messageId = requireMessageId(packet);
    const stored = new Packet(packet);
    stored.messageId = messageId;
    let perClient = this.state.incoming.get(client.id);
    if (!perClient) {
      perClient = new Map();
      this.state.incoming.set(client.id, perClient);
    }
    perClient.set(messageId, stored);
    await this.deps.write([put(incomingKey(client.id, messageId), { clientId: client.id, packet: stored } satisfies IncomingValue)]);
  }

  async incomingGetPacket(client: PersistenceClient, packet: StoredPacket): Promise<StoredPacket> {
    const stored = packet.messageId === undefined ? undefined : this.state.incoming.get(client.id)?.get(packet.messageId);
    if (!stored) throw new Error(`no such packet: client ${client.id} has no incoming packet ${packet.messageId}`);
    return stored;
  }

  async incomingDelPacket(client: PersistenceClient, packet: StoredPacket): Promise<void> {
    const perClient = this.state.incoming.get(client.id);
    const messageId = packet.messageId;
    if (messageId === undefined || !perClient?.has(messageId)) {
      throw new Error(`no such packet: client ${client.id} has no incoming packet ${messageId}`);
    }
    perClient.delete(messageId);
    if (perClient.size === 0) this.state.incoming.delete(client.id);
    await this.deps.write([del(incomingKey(client.id, messageId))]);
  }

  async cleanIncoming(client: PersistenceClient): Promise<void> {
    const perClient = this.state.incoming.get(client.id);
    if (!perClient) return;
    this.state.incoming.delete(client.id);
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
    if ((queue?.length ?? 0) >= this.deps.maxQueuedMessages || !this.deps.hasRoom()) {
      this.deps.onQueueFull(clientId, packet.topic ?? '');
      // A connected session's delivery of this packet follows at once: let its updates through (passRefused).
      if (this.broker?.clients?.[clientId] !== undefined) this.rememberRefused(clientId, packet);
      return;
    }
    if (!queue) {
      queue = [];
      this.state.outgoing.set(clientId, queue);
    }
    const entry = { seq: this.state.nextSeq++, packet: new Packet(packet) };
    queue.push(entry);
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
