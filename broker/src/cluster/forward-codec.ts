/**
 * The payload of a Forward-channel message: one published message handed from the publisher's node to a node that
 * has a matching route. Binary, versioned, validated strictly: a malformed payload is a typed error, never a crash.
 *
 *   u8 version | u8 flags (bits 0-1 qos, bit 2 retain, bit 3 has share group) | f64 timestamp (ms)
 *   u16 topic length | topic | u16 client id length | client id | [u16 group length | group] | payload (rest)
 */
export interface ForwardedMessage {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  /** Client id of the original publisher ('' for the broker itself). */
  publisherClientId: string;
  /** When the origin node received it (ms since the epoch). */
  timestamp: number;
  /** For a shared subscription: deliver to one member of this `$share/<group>/<filter>` only. */
  shareGroup?: string;
}

const VERSION = 1;
const FIXED_BYTES = 1 + 1 + 8;

export class ForwardDecodeError extends Error {
  override name = 'ForwardDecodeError';
}

export function encodeForwarded(message: ForwardedMessage): Buffer {
  const topic = Buffer.from(message.topic, 'utf8');
  const clientId = Buffer.from(message.publisherClientId, 'utf8');
  const group = message.shareGroup === undefined ? undefined : Buffer.from(message.shareGroup, 'utf8');
  const size = FIXED_BYTES + 2 + topic.length + 2 + clientId.length + (group ? 2 + group.length : 0) + message.payload.length;
  const out = Buffer.allocUnsafe(size);
  let at = out.writeUInt8(VERSION, 0);
  at = out.writeUInt8(message.qos | (message.retain ? 4 : 0) | (group ? 8 : 0), at);
  at = out.writeDoubleBE(message.timestamp, at);
  at = writeString(out, topic, at);
  at = writeString(out, clientId, at);
  if (group) at = writeString(out, group, at);
  message.payload.copy(out, at);
  return out;
}

export function decodeForwarded(buf: Buffer): ForwardedMessage {
  if (buf.length < FIXED_BYTES + 4) throw new ForwardDecodeError(`forwarded message too short (${buf.length} bytes)`);
  const version = buf.readUInt8(0);
  if (version !== VERSION) throw new ForwardDecodeError(`unsupported forwarded message version ${version}`);
  const flags = buf.readUInt8(1);
  const qos = flags & 3;
  if (qos === 3 || flags > 15) throw new ForwardDecodeError(`invalid flags 0x${flags.toString(16)}`);
  const timestamp = buf.readDoubleBE(2);
  const [topic, afterTopic] = readString(buf, FIXED_BYTES, 'topic');
  if (topic.length === 0) throw new ForwardDecodeError('empty topic');
  const [publisherClientId, afterClient] = readString(buf, afterTopic, 'client id');
  let at = afterClient;
  let shareGroup: string | undefined;
  if (flags & 8) [shareGroup, at] = readString(buf, at, 'share group');
  return { topic, payload: buf.subarray(at), qos: qos as 0 | 1 | 2, retain: (flags & 4) !== 0, publisherClientId, timestamp, shareGroup };
}

function writeString(out: Buffer, value: Buffer, at: number): number {
  if (value.length > 0xffff) throw new RangeError(`string of ${value.length} bytes does not fit a forwarded message`);
  const next = out.writeUInt16BE(value.length, at);
  value.copy(out, next);
  return next + value.length;
}

function readString(buf: Buffer, at: number, what: string): [string, number] {
  if (at + 2 > buf.length) throw new ForwardDecodeError(`truncated before the ${what} length`);
  const length = buf.readUInt16BE(at);
  const end = at + 2 + length;
  if (end > buf.length) throw new ForwardDecodeError(`${what} length ${length} runs past the end`);
  return [buf.toString('utf8', at + 2, end), end];
}
