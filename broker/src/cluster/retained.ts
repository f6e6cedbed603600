import type { AedesPublishPacket } from 'aedes';
import type { Logger } from '../log/logger.js';
import type { DurablePersistence, StoredPacket } from '../store/index.js';
import type { Rpc, RpcMessage } from './rpc.js';

const CHUNK_BYTES = 1 << 20;

interface RetainedEntry {
  topic: string;
  qos: number;
  payload: Buffer;
}

/**
 * Retained messages are cluster-wide: every node keeps them all. A retained publish is sent to every other
 * connected node (and, for QoS ≥ 1, the publisher is acknowledged once they all stored it); a node that connects
 * to a peer for the first time (a new node, or either side restarted) copies the retained messages it lacks from
 * that peer, in chunks.
 */
export class RetainedReplicator {
  constructor(
    private readonly rpc: Rpc,
    private readonly persistence: DurablePersistence,
    private readonly connectedPeers: () => string[],
    private readonly logger: Logger,
  ) {
    rpc.handle('retained', (_from, message) => this.store(decodeEntries(message.body)));
    rpc.handle('retained-snapshot', (_from, message) => this.snapshotChunk(String(message.header.after ?? '')));
  }

  /** Replicates a retained publish of this node's clients; resolves when every connected peer stored it. */
  async replicate(packet: AedesPublishPacket): Promise<void> {
    const body = encodeEntries([{ topic: packet.topic, qos: packet.qos, payload: asBuffer(packet.payload) }]);
    await Promise.all(this.connectedPeers().map((peer) => this.rpc.notify(peer, { kind: 'retained' }, body).catch((err: Error) => {
      this.logger.warn({ peer, topic: packet.topic, err: err.message }, 'retained message not replicated to a peer');
    })));
  }

  /** Copies from `peer` the retained messages this node does not have. */
  async fillFrom(peer: string): Promise<number> {
    let after = '';
    let copied = 0;
    for (;;) {
      const reply = await this.rpc.request(peer, { kind: 'retained-snapshot', after });
      const entries = decodeEntries(reply.body).filter((e) => !this.persistence.hasRetained(e.topic));
      await this.store(entries);
      copied += entries.length;
      if (typeof reply.header.next !== 'string') break;
      after = reply.header.next;
    }
    if (copied > 0) this.logger.info({ peer, copied }, 'copied retained messages from a peer');
    return copied;
  }

  private async store(entries: RetainedEntry[]): Promise<void> {
    for (const entry of entries) {
      const packet: StoredPacket = { cmd: 'publish', topic: entry.topic, payload: entry.payload, qos: entry.qos, retain: true, dup: false };
      await this.persistence.storeRetained(packet);
    }
  }

  private snapshotChunk(after: string): RpcMessage {
    const topics = this.persistence.retainedTopics().filter((t) => t > after).sort();
    const entries: RetainedEntry[] = [];
    let bytes = 0;
    for (const topic of topics) {
      const packet = this.persistence.getRetained(topic);
      if (!packet) continue;
      const entry = { topic, qos: packet.qos ?? 0, payload: asBuffer(packet.payload ?? Buffer.alloc(0)) };
      entries.push(entry);
      bytes += entry.topic.length + entry.payload.length + 8;
      if (bytes >= CHUNK_BYTES) break;
    }
    const last = entries[entries.length - 1];
    const more = last !== undefined && last.topic !== topics[topics.length - 1];
    return { header: { kind: 'retained-snapshot', next: more ? last.topic : null }, body: encodeEntries(entries) };
  }
}

function asBuffer(payload: string | Buffer | Uint8Array): Buffer {
  return typeof payload === 'string' ? Buffer.from(payload) : Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
}

/** `u16 topic length | topic | u8 qos | u32 payload length | payload`, repeated. */
export function encodeEntries(entries: RetainedEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const topic = Buffer.from(entry.topic, 'utf8');
    const header = Buffer.allocUnsafe(2 + topic.length + 1 + 4);
    header.writeUInt16BE(topic.length, 0);
    topic.copy(header, 2);
    header.writeUInt8(entry.qos, 2 + topic.length);
    header.writeUInt32BE(entry.payload.length, 3 + topic.length);
    parts.push(header, entry.payload);
  }
  return Buffer.concat(parts);
}

export function decodeEntries(buf: Buffer): RetainedEntry[] {
  const entries: RetainedEntry[] = [];
  let at = 0;
  while (at < buf.length) {
    if (at + 2 > buf.length) throw new Error('retained entries: truncated topic length');
    const topicLength = buf.readUInt16BE(at);
    const qosAt = at + 2 + topicLength;
    if (qosAt + 5 > buf.length) throw new Error('retained entries: truncated entry header');
    const topic = buf.toString('utf8', at + 2, qosAt);
    const qos = buf.readUInt8(qosAt);
    const payloadLength = buf.readUInt32BE(qosAt + 1);
    const payloadAt = qosAt + 5;
    if (payloadAt + payloadLength > buf.length || qos > 2 || topicLength === 0) throw new Error('retained entries: malformed entry');
    entries.push({ topic, qos, payload: buf.subarray(payloadAt, payloadAt + payloadLength) });
    at = payloadAt + payloadLength;
  }
  return entries;
}
