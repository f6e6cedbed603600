import type { QueuedPacket, StoredPacket } from './persistence.js';

/** Queue entries grouped by a key; a key almost always holds one entry, so "earliest" scans a tiny set. */
class EntryIndex<K> {
  private readonly groups = new Map<K, Set<QueuedPacket>>();

  add(key: K, entry: QueuedPacket): void {
    let group = this.groups.get(key);
    if (!group) {
      group = new Set();
      this.groups.set(key, group);
    }
    group.add(entry);
  }

  delete(key: K, entry: QueuedPacket): void {
    const group = this.groups.get(key);
    if (group?.delete(entry) && group.size === 0) this.groups.delete(key);
  }

  /** The earliest queued entry (lowest `seq`) under `key` that `accept` takes. */
  earliest(key: K, accept: (entry: QueuedPacket) => boolean = () => true): QueuedPacket | undefined {
    let found: QueuedPacket | undefined;
    for (const entry of this.groups.get(key) ?? []) {
      if ((found === undefined || entry.seq < found.seq) && accept(entry)) found = entry;
    }
    return found;
  }
}

/** A publish is identified across updates by the broker that numbered it and its counter there. */
function identityOf(packet: StoredPacket): string | undefined {
  return packet.brokerId == null ? undefined : `${packet.brokerId}\u0000${packet.brokerCounter}`;
}

/**
 * One session's queued and in-flight outgoing packets in enqueue order, indexed by publish identity
 * (brokerId + brokerCounter) and by messageId, so aedes' per-packet updates and acknowledgements cost O(1)
 * whatever the queue length.
 */
export class OutgoingQueue {
  /** By seq; Map iteration order is insertion order, and entries are appended in increasing seq. */
  private readonly entries = new Map<number, QueuedPacket>();
  private readonly byIdentity = new EntryIndex<string>();
  private readonly byMessageId = new EntryIndex<number>();

  get size(): number {
    return this.entries.size;
  }

  append(entry: QueuedPacket): void {
    this.entries.set(entry.seq, entry);
    this.index(entry);
  }

  /** A snapshot in queue order: packets queued while it is being consumed are not in it. */
  packets(): StoredPacket[] {
    return Array.from(this.entries.values(), (entry) => entry.packet);
  }

  /** The entry holding the same publish as `packet` (same broker and counter). */
  samePublish(packet: StoredPacket): QueuedPacket | undefined {
    const identity = identityOf(packet);
    return identity === undefined ? undefined : this.byIdentity.earliest(identity);
  }

  /**
   * The earliest entry with `packet`'s messageId that `packet` replaces (a PUBREL replacing its PUBLISH).
   * An entry numbered by the same broker is another publish that merely reuses the id (ids wrap at 65535):
   * aedes-persistence skips those too.
   */
  replacedBy(packet: StoredPacket): QueuedPacket | undefined {
    if (typeof packet.messageId !== 'number') return undefined;
    const brokerId = packet.brokerId;
    return this.byMessageId.earliest(packet.messageId, (entry) => brokerId == null || entry.packet.brokerId !== brokerId);
  }

  /** The earliest entry with this messageId. */
  withMessageId(messageId: number): QueuedPacket | undefined {
    return this.byMessageId.earliest(messageId);
  }

  setMessageId(entry: QueuedPacket, messageId: number | undefined): void {
    this.unindex(entry);
    entry.packet.messageId = messageId;
    this.index(entry);
  }

  replacePacket(entry: QueuedPacket, packet: StoredPacket): void {
    this.unindex(entry);
    entry.packet = packet;
    this.index(entry);
  }

  remove(entry: QueuedPacket): void {
    this.entries.delete(entry.seq);
    this.unindex(entry);
  }

  private index(entry: QueuedPacket): void {
    const identity = identityOf(entry.packet);
    if (identity !== undefined) this.byIdentity.add(identity, entry);
    if (typeof entry.packet.messageId === 'number') this.byMessageId.add(entry.packet.messageId, entry);
  }

  private unindex(entry: QueuedPacket): void {
    const identity = identityOf(entry.packet);
    if (identity !== undefined) this.byIdentity.delete(identity, entry);
    if (typeof entry.packet.messageId === 'number') this.byMessageId.delete(entry.packet.messageId, entry);
  }
}
