import type { Aedes, AedesPublishPacket, Client, Subscription } from 'aedes';
import { Registry } from 'prom-client';
import { createLogger } from '../../../src/log/logger.js';
import { SharedSubscriptions, type SharedSessionStore } from '../../../src/mqtt/shared-subscriptions.js';
import type { StoredPacket, SubscriptionObserver } from '../../../src/store/index.js';

type DeliverFunc = (packet: AedesPublishPacket, callback: () => void) => void;

/** What a fake client received through its deliver functions, in call order. */
export interface Got {
  topic: string;
  qos: number;
  counter: number;
  brokerId: string;
}

/** The parts of an aedes client the shared subscriptions look at, plus what it was handed. */
export class FakeClient {
  closed = false;
  readonly subscriptions: Record<string, { qos: number; func: DeliverFunc }> = {};
  readonly got: Got[] = [];

  constructor(readonly id: string, readonly clean = true) {}
}

/**
 * Enough of aedes for the shared subscriptions: authorizeSubscribe, subscribe and unsubscribe as aedes' subscribe
 * handler calls them (authorize, then register the client's subscription, then broker.subscribe), and the literal
 * mqemitter listeners that reached the inner subscribe.
 */
export class FakeAedes {
  readonly id = 'node-a.1';
  readonly clients: Record<string, FakeClient> = {};
  readonly literal = new Set<string>();

  authorizeSubscribe(_client: Client, subscription: Subscription, done: (err: Error | null, sub?: Subscription | null) => void): void {
    done(null, subscription);
  }

  subscribe(topic: string, _func: DeliverFunc, done?: () => void): void {
    this.literal.add(topic);
    done?.();
  }

  unsubscribe(topic: string, _func: DeliverFunc, done?: () => void): void {
    this.literal.delete(topic);
    done?.();
  }

  /** A client SUBSCRIBE as aedes' handler runs it; the deliver function records what it is given. */
  clientSubscribes(client: FakeClient, topic: string, qos: number): void {
    this.clients[client.id] = client;
    const asAedes = this as unknown as Aedes;
    asAedes.authorizeSubscribe(client as unknown as Client, { topic, qos } as Subscription, (err, granted) => {
      if (err || !granted) throw new Error(`fake subscribe of ${topic} refused`);
      const previous = client.subscriptions[topic];
      if (previous) asAedes.unsubscribe(topic, previous.func, () => undefined);
      const func: DeliverFunc = (packet, cb) => {
        // aedes' handlePacketSubscription: at most the granted QoS.
        client.got.push({ topic: packet.topic, qos: Math.min(packet.qos, qos), counter: packet.brokerCounter, brokerId: packet.brokerId });
        cb();
      };
      client.subscriptions[topic] = { qos, func };
      asAedes.subscribe(topic, func, () => undefined);
    });
  }

  clientUnsubscribes(client: FakeClient, topic: string): void {
    const subscription = client.subscriptions[topic];
    if (!subscription) return;
    delete client.subscriptions[topic];
    (this as unknown as Aedes).unsubscribe(topic, subscription.func, () => undefined);
  }

  /** aedes' client close: closed first, then every subscription unsubscribed. */
  clientCloses(client: FakeClient): void {
    client.closed = true;
    for (const topic of Object.keys(client.subscriptions)) this.clientUnsubscribes(client, topic);
    delete this.clients[client.id];
  }
}

/** An in-memory store: stored subscriptions and queues; enqueues resolve when `release()` says so, if held. */
export class FakeStore implements SharedSessionStore {
  readonly subscriptions = new Map<string, Map<string, number>>();
  readonly queued: { clientId: string; packet: StoredPacket }[] = [];
  subscriptionObserver?: SubscriptionObserver;
  hold = false;
  private held: (() => void)[] = [];

  async outgoingEnqueueCombi(subs: { clientId: string }[], packet: StoredPacket): Promise<void> {
    if (this.hold) await new Promise<void>((resolve) => this.held.push(resolve));
    for (const sub of subs) this.queued.push({ clientId: sub.clientId, packet: { ...packet } });
  }

  release(): void {
    const held = this.held;
    this.held = [];
    for (const resolve of held) resolve();
  }

  async subscriptionsByTopic(topic: string): Promise<{ clientId: string; topic: string; qos: number }[]> {
    const found: { clientId: string; topic: string; qos: number }[] = [];
    for (const [clientId, subs] of this.subscriptions) {
      const qos = subs.get(topic);
      if (qos !== undefined) found.push({ clientId, topic, qos });
    }
    return found;
  }

  *queueingSubscriptions(): Generator<[string, string]> {
    for (const [clientId, subs] of this.subscriptions) for (const [topic, qos] of subs) if (qos > 0) yield [clientId, topic];
  }

  /** A persistent session stores a subscription (as DurablePersistence.addSubscriptions tells its observer). */
  store(clientId: string, topic: string, qos: number): void {
    let subs = this.subscriptions.get(clientId);
    if (!subs) this.subscriptions.set(clientId, (subs = new Map()));
    subs.set(topic, qos);
    if (qos > 0) this.subscriptionObserver?.stored(clientId, [topic]);
  }

  unstore(clientId: string, topic: string): void {
    this.subscriptions.get(clientId)?.delete(topic);
    this.subscriptionObserver?.unstored(clientId, [topic]);
  }
}

export function attachShared(aedes = new FakeAedes(), store = new FakeStore()): { aedes: FakeAedes; store: FakeStore; shared: SharedSubscriptions; registry: Registry } {
  const registry = new Registry();
  const shared = SharedSubscriptions.attach(aedes as unknown as Aedes, store, { logger: createLogger('silent'), registry });
  return { aedes, store, shared, registry };
}

/** Lets pending promise callbacks and setImmediate callbacks run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
