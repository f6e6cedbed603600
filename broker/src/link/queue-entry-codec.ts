import { deserialize, serialize } from 'node:v8';
import type { IntakeMessage } from './intake-marks.js';
import type { QueueEntry } from './queue.js';

/**
 * Stored form of a link queue entry. One entry is written per forwarded QoS ≥ 1 message, so its encoding is on the
 * hot path: a fixed binary layout costs a fraction of `v8.serialize` (which dominated the store's share of a QoS 2
 * forward in the CPU profile). A message with fields this layout does not know falls back to `v8.serialize`;
 * entries written by either form (and by older versions, always v8) decode here.
 *
 * Layout (big-endian): version 1, flags (qos in bits 0–1, retain 2, intake 3, publishId 4), seq, enqueuedAt,
 * timestamp as doubles, bytes as uint32; then topic, publisherClientId, [publishId], [intake node] as uint32 length +
 * UTF-8; [intake incarnation, intake seq as doubles]; payload as the rest.
 *
 * Version 2 (written only for an entry with an origin identity or the handed-over mark, i.e. a sidecar's copy) is
 * version 1 plus flag bits 5 (origin identity) and 6 (handed over), the origin identity (uint32 length + UTF-8)
 * following the intake fields. A version 1 decoder refuses it (unknown encoding) instead of misreading the payload.
 */
const BINARY_V1 = 1;
const BINARY_V2 = 2;
const ORIGIN_ID = 32;
const HANDED_OVER = 64;
/** `v8.serialize` output starts with its version tag 0xFF; the binary form never does. */
const V8_TAG = 0xff;
const FIXED_BYTES = 2 + 8 + 8 + 8 + 4;
const KNOWN_FIELDS = new Set(['topic', 'payload', 'qos', 'retain', 'publisherClientId', 'timestamp', 'publishId', 'intake', 'originId', 'handedOver']);

export function encodeQueueEntry(entry: QueueEntry): Buffer {
  const message = entry.message as IntakeMessage;
  if (!fitsBinary(message)) return serialize(entry);
  const intake = message.intake;
  const topicBytes = Buffer.byteLength(message.topic);
  const clientBytes = Buffer.byteLength(message.publisherClientId);
  const publishId = message.publishId;
  const publishIdBytes = publishId === undefined ? 0 : Buffer.byteLength(publishId);
  const nodeBytes = intake ? Buffer.byteLength(intake.node) : 0;
  const originId = message.originId;
  const originIdBytes = originId === undefined ? 0 : Buffer.byteLength(originId);
  const handedOver = message.handedOver === true;
  const size = FIXED_BYTES + 4 + topicBytes + 4 + clientBytes + (publishId === undefined ? 0 : 4 + publishIdBytes) +
    (intake ? 4 + nodeBytes + 16 : 0) + (originId === undefined ? 0 : 4 + originIdBytes) + message.payload.length;
  const out = Buffer.allocUnsafe(size);
  out[0] = originId === undefined && !handedOver ? BINARY_V1 : BINARY_V2;
  out[1] = (message.qos & 3) | (message.retain ? 4 : 0) | (intake ? 8 : 0) | (publishId === undefined ? 0 : 16) |
    (originId === undefined ? 0 : ORIGIN_ID) | (handedOver ? HANDED_OVER : 0);
  out.writeDoubleBE(entry.seq, 2);
  out.writeDoubleBE(entry.enqueuedAt, 10);
  out.writeDoubleBE(message.timestamp, 18);
  out.writeUInt32BE(entry.bytes, 26);
  let at = writeString(out, FIXED_BYTES, message.topic, topicBytes);
  at = writeString(out, at, message.publisherClientId, clientBytes);
  if (publishId !== undefined) at = writeString(out, at, publishId, publishIdBytes);
  if (intake) {
    at = writeString(out, at, intake.node, nodeBytes);
    at = out.writeDoubleBE(intake.incarnation, at);
    at = out.writeDoubleBE(intake.seq, at);
  }
  if (originId !== undefined) at = writeString(out, at, originId, originIdBytes);
  message.payload.copy(out, at);
  return out;
}

export function decodeQueueEntry(value: Buffer): QueueEntry {
  if (value[0] === V8_TAG) return deserialize(value) as QueueEntry;
  if ((value[0] !== BINARY_V1 && value[0] !== BINARY_V2) || value.length < FIXED_BYTES) throw new Error(`link queue entry: unknown encoding (first byte ${value[0]}, ${value.length} bytes)`);
  const flags = value[1];
  let at = FIXED_BYTES;
  const read = (): string => {
    const length = value.readUInt32BE(at);
    const text = value.toString('utf8', at + 4, at + 4 + length);
    at += 4 + length;
    return text;
  };
  const topic = read();
  const publisherClientId = read();
  const message: IntakeMessage = {
    topic, payload: Buffer.alloc(0), qos: (flags & 3) as 0 | 1 | 2, retain: (flags & 4) !== 0, publisherClientId,
    timestamp: value.readDoubleBE(18),
  };
  if (flags & 16) message.publishId = read();
  if (flags & 8) {
    const node = read();
    message.intake = { node, incarnation: value.readDoubleBE(at), seq: value.readDoubleBE(at + 8) };
    at += 16;
  }
  if (value[0] === BINARY_V2) {
    if (flags & ORIGIN_ID) message.originId = read();
    if (flags & HANDED_OVER) message.handedOver = true;
  }
  // A copy: the stored value may be a view into a buffer the store reuses.
  message.payload = Buffer.from(value.subarray(at));
  return { seq: value.readDoubleBE(2), message, bytes: value.readUInt32BE(26), enqueuedAt: value.readDoubleBE(10) };
}

function fitsBinary(message: IntakeMessage): boolean {
  if (!Buffer.isBuffer(message.payload) || typeof message.topic !== 'string' || typeof message.publisherClientId !== 'string') return false;
  if (message.qos !== 0 && message.qos !== 1 && message.qos !== 2) return false;
  if (typeof message.retain !== 'boolean' || typeof message.timestamp !== 'number') return false;
  if (message.publishId !== undefined && typeof message.publishId !== 'string') return false;
  if (message.originId !== undefined && typeof message.originId !== 'string') return false;
  if (message.handedOver !== undefined && typeof message.handedOver !== 'boolean') return false;
  if (message.intake !== undefined && (typeof message.intake.node !== 'string' || Object.keys(message.intake).length !== 3)) return false;
  for (const field in message) if (!KNOWN_FIELDS.has(field)) return false;
  return true;
}

function writeString(out: Buffer, at: number, text: string, length: number): number {
  out.writeUInt32BE(length, at);
  out.write(text, at + 4, length, 'utf8');
  return at + 4 + length;
}
