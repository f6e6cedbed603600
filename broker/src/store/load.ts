import { decode } from './codec.js';
import type { KvEngine } from './engine.js';
import { PREFIX } from './keys.js';
import { OutgoingQueue } from './outgoing-queue.js';
import type { ArrivalValue } from './publish-deliveries.js';
import {
  attachPublishId,
  emptyState,
  pendingKey,
  type IncomingValue,
  type OutgoingValue,
  type PersistenceState,
  type SessionValue,
  type StoredPacket,
  type SubscriptionValue,
} from './persistence.js';

/** Rebuilds the in-memory mirror of the aedes state from disk. */
export async function loadState(engine: KvEngine): Promise<PersistenceState> {
  const state = emptyState();
  for (const [, bytes] of await engine.range(PREFIX.session)) state.sessions.add(decode<SessionValue>(bytes).clientId);
  for (const [, bytes] of await engine.range(PREFIX.subscription)) {
    const { clientId, topic, record } = decode<SubscriptionValue>(bytes);
    mapFor(state.subscriptions, clientId).set(topic, record);
  }
  // Keys order by client, then by sequence number: each client's queue comes back in enqueue order.
  for (const [, bytes] of await engine.range(PREFIX.outgoing)) {
    const { clientId, seq, packet } = decode<OutgoingValue>(bytes);
    let queue = state.outgoing.get(clientId);
    if (!queue) {
      queue = new OutgoingQueue();
      state.outgoing.set(clientId, queue);
    }
    queue.append({ seq, packet });
    state.nextSeq = Math.max(state.nextSeq, seq + 1);
  }
  for (const [, bytes] of await engine.range(PREFIX.incoming)) {
    const { clientId, packet, pending, publishId, handled } = decode<IncomingValue>(bytes);
    attachPublishId(packet, publishId);
    mapFor(state.incoming, clientId).set(packet.messageId as number, packet);
    if (!pending) continue;
    const key = pendingKey(clientId, packet.messageId as number);
    state.incomingPending.add(key);
    if (handled) state.incomingHandled.set(key, handled);
  }
  for (const [, bytes] of await engine.range(PREFIX.publish)) state.arrivals.push(decode<ArrivalValue>(bytes));
  for (const [, bytes] of await engine.range(PREFIX.retained)) {
    const packet = decode<StoredPacket>(bytes);
    state.retained.set(packet.topic as string, packet);
  }
  for (const [, bytes] of await engine.range(PREFIX.will)) {
    const will = decode<StoredPacket>(bytes);
    state.wills.set(will.clientId as string, will);
  }
  return state;
}

function mapFor<K, V>(outer: Map<string, Map<K, V>>, clientId: string): Map<K, V> {
  let inner = outer.get(clientId);
  if (!inner) {
    inner = new Map();
    outer.set(clientId, inner);
  }
  return inner;
}
