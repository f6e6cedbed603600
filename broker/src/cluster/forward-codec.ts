/**
 * The payload of a Forward-channel message: one published message handed from the publisher's node to a node that
 * has a matching route. Binary, versioned, validated strictly: a malformed payload is a typed error, never a crash.
 *
 *   u8 version | u8 flags | f64 timestamp (ms)
 *   u16 topic length | topic | u16 client id length | client id
 *   [u16 group length | group | u16 filter length | filter] [u8 redirects]
 *   [u64 copy incarnation | u64 copy sequence | u8 copy attempt (bit 7: handed over)]
 *   [u16 publish id length | publish id (version 2 and 3; may be empty in 3)]
 *   [u16 origin broker id length | origin broker id | u64 origin counter (version 3 only)] | payload (rest)
 *
 * flags: bits 0-1 qos, bit 2 retain, bit 3 share group follows, bit 4 share filter follows (always with bit 3),
 * bit 5 redirect count follows, bit 6 linked (the message arrived from another region over a cluster link; no
 * bytes follow), bit 7 copy identity follows (only on copies to a link agent). Bits 4-7 came after the first version of the format: a decoder that predates them refuses such a
 * message as having bad flags instead of misreading the filter as payload (or forwarding a linked message again).
 * Version 2 is version 1 plus the publish identity; it is used only for a message that has one (a QoS 2 message of a
 * persistent session): a decoder that predates it refuses such a message (unsupported version) instead of misreading it.
 * Version 3 is version 2 (publish id possibly empty) plus the origin identity of a QoS >= 1 message: older decoders
 * refuse it likewise.
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
  /** For a shared subscription: deliver to one member of `$share/<shareGroup>/<shareFilter>` only. */
  shareGroup?: string;
  /** The (internal) filter of the shared subscription; present exactly when shareGroup is. */
  shareFilter?: string;
  /** How many times nodes without a connected member passed this shared copy on (bounded by the receiver). */
  redirects?: number;
  /** Arrived from another region over a cluster link: never queued for a link again (no loops between regions). */
  linked?: boolean;
  /**
   * The identity of this copy, stable across a resend: the origin node's incarnation and its sequence of copies
   * to link agents, and how often it was sent before (0 first). Together with the sending node's id it lets a link
   * agent recognise a copy it had already queued before a crash (see link/README.md, "Intake identity").
   */
  copy?: CopyIdentity;
  /**
   * The publish identity of a QoS 2 message of a persistent session (see store/README.md, "QoS 2 receive state"):
   * the receiving node queues a message with an identity it already queued for nobody twice.
   */
  publishId?: string;
  /**
   * The publish's identity at its origin node (aedes' broker id and counter there), carried by every QoS >= 1 copy:
   * the receiving node publishes the copy under it, so every node's queue entries of one message share one identity
   * and a session handed between nodes skips what it already holds (README.md, "Handover").
   */
  origin?: OriginIdentity;
}

export interface OriginIdentity {
  brokerId: string;
  counter: number;
}

export interface CopyIdentity {
  incarnation: number;
  seq: number;
  attempt: number;
  /** The copy went to another link agent first, which is gone: this agent took the link over (bit 7 of the attempt byte). */
  handedOver?: boolean;
}

const VERSION = 1;
/** Version 1 plus the publish identity. */
const VERSION_WITH_PUBLISH_ID = 2;
/** Version 2 (publish id possibly empty) plus the origin identity. */
const VERSION_WITH_ORIGIN = 3;
const FIXED_BYTES = 1 + 1 + 8;
const RETAIN = 4;
const SHARE_GROUP = 8;
const SHARE_FILTER = 16;
const REDIRECTS = 32;
const LINKED = 64;
const COPY = 128;
const COPY_BYTES = 8 + 8 + 1;
const HANDED_OVER = 128;
const KNOWN_FLAGS = 3 | RETAIN | SHARE_GROUP | SHARE_FILTER | REDIRECTS | LINKED | COPY;

export class ForwardDecodeError extends Error {
  override name = 'ForwardDecodeError';
}

export function encodeForwarded(message: ForwardedMessage): Buffer {
  const topic = Buffer.from(message.topic, 'utf8');
  const clientId = Buffer.from(message.publisherClientId, 'utf8');
  const share = shareOf(message);
  const group = share && Buffer.from(share.group, 'utf8');
  const filter = share && Buffer.from(share.filter, 'utf8');
  const shareBytes = group && filter ? 2 + group.length + 2 + filter.length : 0;
  const redirects = message.redirects ?? 0;
  if (!Number.isInteger(redirects) || redirects < 0 || redirects > 255) throw new RangeError(`redirect count ${redirects} does not fit a forwarded message`);
  const copy = message.copy;
  if (copy) checkCopy(copy);
  const publishId = message.publishId === undefined ? undefined : Buffer.from(message.publishId, 'utf8');
  if (publishId?.length === 0) throw new RangeError('empty publish id in a forwarded message');
  const origin = message.origin && originBytes(message.origin);
  const publishIdBytes = publishId || origin ? 2 + (publishId?.length ?? 0) : 0;
  const originLength = origin ? 2 + origin.length + 8 : 0;
  const size = FIXED_BYTES + 2 + topic.length + 2 + clientId.length + shareBytes + (redirects > 0 ? 1 : 0) + (copy ? COPY_BYTES : 0) + publishIdBytes + originLength + message.payload.length;
  const out = Buffer.allocUnsafe(size);
  let at = out.writeUInt8(origin ? VERSION_WITH_ORIGIN : publishId ? VERSION_WITH_PUBLISH_ID : VERSION, 0);
  const flags = message.qos | (message.retain ? RETAIN : 0) | (share ? SHARE_GROUP | SHARE_FILTER : 0) | (redirects > 0 ? REDIRECTS : 0) | (message.linked ? LINKED : 0) | (copy ? COPY : 0);
  at = out.writeUInt8(flags, at);
  at = out.writeDoubleBE(message.timestamp, at);
  at = writeString(out, topic, at);
  at = writeString(out, clientId, at);
  if (group && filter) {
    at = writeString(out, group, at);
    at = writeString(out, filter, at);
  }
  if (redirects > 0) at = out.writeUInt8(redirects, at);
  if (copy) {
    at = out.writeBigUInt64BE(BigInt(copy.incarnation), at);
    at = out.writeBigUInt64BE(BigInt(copy.seq), at);
    at = out.writeUInt8(copy.attempt | (copy.handedOver ? HANDED_OVER : 0), at);
  }
  if (publishId || origin) at = writeString(out, publishId ?? EMPTY, at);
  if (origin && message.origin) {
    at = writeString(out, origin, at);
    at = out.writeBigUInt64BE(BigInt(message.origin.counter), at);
  }
  message.payload.copy(out, at);
  return out;
}

export function decodeForwarded(buf: Buffer): ForwardedMessage {
  if (buf.length < FIXED_BYTES + 4) throw new ForwardDecodeError(`forwarded message too short (${buf.length} bytes)`);
  const version = buf.readUInt8(0);
  if (version !== VERSION && version !== VERSION_WITH_PUBLISH_ID && version !== VERSION_WITH_ORIGIN) throw new ForwardDecodeError(`unsupported forwarded message version ${version}`);
  const flags = buf.readUInt8(1);
  const qos = flags & 3;
  if (qos === 3 || (flags & ~KNOWN_FLAGS) !== 0 || ((flags & SHARE_GROUP) !== 0) !== ((flags & SHARE_FILTER) !== 0)) {
    throw new ForwardDecodeError(`invalid flags 0x${flags.toString(16)}`);
  }
  const timestamp = buf.readDoubleBE(2);
  const [topic, afterTopic] = readString(buf, FIXED_BYTES, 'topic');
  if (topic.length === 0) throw new ForwardDecodeError('empty topic');
  const [publisherClientId, afterClient] = readString(buf, afterTopic, 'client id');
  let at = afterClient;
  let shareGroup: string | undefined;
  let shareFilter: string | undefined;
  if (flags & SHARE_GROUP) {
    [shareGroup, at] = readString(buf, at, 'share group');
    [shareFilter, at] = readString(buf, at, 'share filter');
    if (shareGroup.length === 0 || shareFilter.length === 0) throw new ForwardDecodeError('empty share group or filter');
  }
  const message: ForwardedMessage = { topic, payload: buf.subarray(at), qos: qos as 0 | 1 | 2, retain: (flags & RETAIN) !== 0, publisherClientId, timestamp };
  if (shareGroup !== undefined) {
    message.shareGroup = shareGroup;
    message.shareFilter = shareFilter;
  }
  if (flags & LINKED) message.linked = true;
  if (flags & REDIRECTS) {
    if (at >= buf.length) throw new ForwardDecodeError('truncated before the redirect count');
    message.redirects = buf.readUInt8(at);
    at += 1;
  }
  if (flags & COPY) {
    if (at + COPY_BYTES > buf.length) throw new ForwardDecodeError('truncated inside the copy identity');
    const attempt = buf.readUInt8(at + 16);
    message.copy = { incarnation: readSafeU64(buf, at, 'copy incarnation'), seq: readSafeU64(buf, at + 8, 'copy sequence'), attempt: attempt & ~HANDED_OVER };
    if (attempt & HANDED_OVER) message.copy.handedOver = true;
    at += COPY_BYTES;
  }
  if (version === VERSION_WITH_PUBLISH_ID || version === VERSION_WITH_ORIGIN) {
    let publishId: string;
    [publishId, at] = readString(buf, at, 'publish id');
    if (publishId.length === 0 && version === VERSION_WITH_PUBLISH_ID) throw new ForwardDecodeError('empty publish id');
    if (publishId.length > 0) message.publishId = publishId;
  }
  if (version === VERSION_WITH_ORIGIN) {
    let brokerId: string;
    [brokerId, at] = readString(buf, at, 'origin broker id');
    if (brokerId.length === 0) throw new ForwardDecodeError('empty origin broker id');
    if (at + 8 > buf.length) throw new ForwardDecodeError('truncated inside the origin counter');
    message.origin = { brokerId, counter: readSafeU64(buf, at, 'origin counter') };
    at += 8;
  }
  message.payload = buf.subarray(at);
  return message;
}

function shareOf(message: ForwardedMessage): { group: string; filter: string } | undefined {
  if (message.shareGroup === undefined && message.shareFilter === undefined) return undefined;
  if (!message.shareGroup || !message.shareFilter) {
    throw new RangeError(`a shared forwarded message needs both a group and a filter (got ${JSON.stringify(message.shareGroup)}, ${JSON.stringify(message.shareFilter)})`);
  }
  return { group: message.shareGroup, filter: message.shareFilter };
}

const EMPTY = Buffer.alloc(0);

function originBytes(origin: OriginIdentity): Buffer {
  if (origin.brokerId.length === 0) throw new RangeError('empty origin broker id in a forwarded message');
  if (!Number.isSafeInteger(origin.counter) || origin.counter < 1) throw new RangeError(`origin counter ${origin.counter} is not a safe positive integer`);
  return Buffer.from(origin.brokerId, 'utf8');
}

function checkCopy(copy: CopyIdentity): void {
  for (const [name, value] of [['incarnation', copy.incarnation], ['seq', copy.seq]] as const) {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`copy ${name} ${value} is not a safe non-negative integer`);
  }
  if (!Number.isInteger(copy.attempt) || copy.attempt < 0 || copy.attempt > 127) throw new RangeError(`copy attempt ${copy.attempt} does not fit a forwarded message`);
}

function readSafeU64(buf: Buffer, at: number, what: string): number {
  const value = buf.readBigUInt64BE(at);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new ForwardDecodeError(`${what} ${value} exceeds 2^53 - 1`);
  return Number(value);
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
