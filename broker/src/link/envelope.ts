import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { LinkMessage } from './queue.js';

/** A forwarded message as it crosses the link: the message plus who sent it and its place in the sender's queue. */
export interface Envelope {
  originCluster: string;
  seq: number;
  message: LinkMessage;
}

export class EnvelopeError extends Error {}

/** The single-message format. */
export const LEGACY_VERSION = 1;
/** Envelope batches; what a receiver announces on the capabilities topic. */
export const BATCH_VERSION = 2;
/**
 * Envelope batches whose messages may be *twin-marked* (flag 0x40, identity follows): what a receiver that reads the
 * mark announces instead of 2. A sender marks messages only for a receiver that announced this (an older one would
 * refuse the unknown flag and drop the carrier).
 */
export const TWIN_VERSION = 3;
const VERSION = LEGACY_VERSION;
const FLAG_RETAIN = 0x04;
const FLAG_DEFLATE = 0x08;
/** Payloads below this are never worth compressing. */
const COMPRESS_MIN = 256;

/**
 * The single-message format of the first protocol version (one envelope per carrier PUBLISH). Senders now send
 * batches (`encodeBatch`); receivers still accept this format from agents not yet upgraded.
 *
 * Binary layout: version (1), flags (1: qos in bits 0-1, retain, deflate), sequence (8), timestamp ms (8),
 * origin cluster, topic and publisher client id (each a 2-byte length + UTF-8), then the payload (raw deflate
 * when flagged) to the end. The sending agent is named by the MQTT topic the envelope is published on.
 */
export function encodeEnvelope(envelope: Envelope, compression: 'none' | 'deflate' = 'none'): Buffer {
  const { message } = envelope;
  let payload = message.payload;
  let flags = message.qos | (message.retain ? FLAG_RETAIN : 0);
  if (compression === 'deflate' && payload.length >= COMPRESS_MIN) {
    const packed = deflateRawSync(payload);
    if (packed.length < payload.length) {
      payload = packed;
      flags |= FLAG_DEFLATE;
    }
  }
  const strings = [envelope.originCluster, message.topic, message.publisherClientId].map((s) => Buffer.from(s, 'utf8'));
  const head = Buffer.alloc(18);
  head.writeUInt8(VERSION, 0);
  head.writeUInt8(flags, 1);
  head.writeBigUInt64BE(BigInt(envelope.seq), 2);
  head.writeBigUInt64BE(BigInt(Math.max(0, Math.round(message.timestamp))), 10);
  const parts: Buffer[] = [head];
  for (const s of strings) {
    if (s.length > 0xffff) throw new EnvelopeError(`envelope field longer than 65535 bytes (${s.length})`);
    const len = Buffer.alloc(2);
    len.writeUInt16BE(s.length);
    parts.push(len, s);
  }
  parts.push(payload);
  return Buffer.concat(parts);
}


/** Several queued messages of one origin agent in one carrier PUBLISH, acknowledged as a unit. */
export interface EnvelopeBatch {
  originCluster: string;
  /**
   * The sending agent's store epoch (16 hex digits): sequences are unique within one epoch. null for the
   * single-message format, which has none (the receiver keeps whatever epoch it knew).
   */
  epoch: string | null;
  entries: BatchEntry[];
}

export interface BatchEntry {
  seq: number;
  message: LinkMessage;
  /**
   * Set on a message another agent of the origin region may have sent too (a link moved while a copy was in flight
   * to the agent that died): its publish identity in the origin region, the same for both twins. The receiver
   * delivers one of them (`DedupWindow`'s twin window).
   */
  twinId?: string;
}

const MSG_RETAIN = 0x04;
const MSG_DEFLATE = 0x08;
/** The publisher client id follows as a string (and joins the batch's dictionary); else its dictionary index. */
const MSG_NEW_CLIENT = 0x10;
/** The sequence is not the previous one + 1: a varint delta follows. */
const MSG_SEQ_DELTA = 0x20;
/** A twin-marked message: its identity (varint length + UTF-8) follows the timestamp. Only to a `TWIN_VERSION` receiver. */
const MSG_TWIN = 0x40;
const MSG_KNOWN_FLAGS = 0x7f;

/**
 * Batch layout (version 2): version (1), epoch (8), origin cluster (varint length + UTF-8), first sequence
 * (varint), base timestamp ms (varint), count (varint); then per message: flags (1: qos in bits 0-1, retain,
 * deflate, new client id, sequence delta), [sequence delta (varint) when flagged, else previous + 1], timestamp
 * (zig-zag varint, difference to the previous message's, the first's to the base), publisher client id (varint
 * length + UTF-8 when new, else varint index into the ids seen so far in this batch), topic (varint length +
 * UTF-8), payload (varint length + bytes, raw deflate when flagged). About 6 bytes per message besides topic and
 * payload; the origin, epoch and carrier PUBLISH are paid once per batch. A twin-marked message (flag 0x40, sent only
 * to a receiver that announced `TWIN_VERSION`) carries its twin identity (varint length + UTF-8) after the timestamp.
 */
export function encodeBatch(batch: EnvelopeBatch, compression: 'none' | 'deflate' = 'none'): Buffer {
  const { entries } = batch;
  if (entries.length === 0) throw new EnvelopeError('an envelope batch needs at least one message');
  if (batch.epoch === null || !/^[0-9a-f]{16}$/.test(batch.epoch)) throw new EnvelopeError(`bad envelope epoch ${JSON.stringify(batch.epoch)}`);
  const out = new ByteWriter();
  out.byte(BATCH_VERSION);
  out.bytes(Buffer.from(batch.epoch, 'hex'));
  out.string(batch.originCluster);
  const base = timestampOf(entries[0].message);
  out.varint(entries[0].seq);
  out.varint(base);
  out.varint(entries.length);
  const clients = new Map<string, number>();
  let prevSeq = entries[0].seq - 1;
  let prevTime = base;
  for (const { seq, message, twinId } of entries) {
    if (seq <= prevSeq) throw new EnvelopeError(`envelope batch sequences must increase (${seq} after ${prevSeq})`);
    let payload = message.payload;
    let flags = message.qos | (message.retain ? MSG_RETAIN : 0);
    if (compression === 'deflate' && payload.length >= COMPRESS_MIN) {
      const packed = deflateRawSync(payload);
      if (packed.length < payload.length) {
        payload = packed;
        flags |= MSG_DEFLATE;
      }
    }
    const clientIndex = clients.get(message.publisherClientId);
    if (clientIndex === undefined) flags |= MSG_NEW_CLIENT;
    if (seq !== prevSeq + 1) flags |= MSG_SEQ_DELTA;
    if (twinId !== undefined) {
      if (twinId.length === 0) throw new EnvelopeError(`empty twin identity (sequence ${seq})`);
      flags |= MSG_TWIN;
    }
    out.byte(flags);
    if (flags & MSG_SEQ_DELTA) out.varint(seq - prevSeq);
    const time = timestampOf(message);
    out.zigzag(time - prevTime);
    if (twinId !== undefined) out.string(twinId);
    if (clientIndex === undefined) {
      clients.set(message.publisherClientId, clients.size);
      out.string(message.publisherClientId);
    } else {
      out.varint(clientIndex);
    }
    out.string(message.topic);
    out.varint(payload.length);
    out.bytes(payload);
    prevSeq = seq;
    prevTime = time;
  }
  return out.finish();
}

/** Decodes a carrier payload in either format: a batch, or one single-message envelope as a batch of one. */
export function decodeBatch(bytes: Buffer): EnvelopeBatch {
  if (bytes.length === 0) throw new EnvelopeError('empty envelope');
  if (bytes[0] === VERSION) {
    const single = decodeEnvelope(bytes);
    return { originCluster: single.originCluster, epoch: null, entries: [{ seq: single.seq, message: single.message }] };
  }
  if (bytes[0] !== BATCH_VERSION) throw new EnvelopeError(`unsupported envelope version ${bytes[0]}`);
  const input = new ByteReader(bytes, 1);
  const epoch = input.bytes(8, 'epoch').toString('hex');
  const originCluster = input.string('origin cluster');
  if (originCluster.length === 0) throw new EnvelopeError('envelope batch without origin cluster');
  let seq = input.varint('first sequence');
  if (seq < 1) throw new EnvelopeError(`bad envelope sequence ${seq}`);
  seq -= 1;
  let time = input.varint('base timestamp');
  const count = input.varint('message count');
  if (count < 1) throw new EnvelopeError('envelope batch without messages');
  const clients: string[] = [];
  const entries: EnvelopeBatch['entries'] = [];
  for (let i = 0; i < count; i++) {
    const field = (name: string): string => `message ${i + 1} ${name}`;
    const flags = input.byte(field('flags'));
    const qos = flags & 0x03;
    if (qos === 3 || (flags & ~MSG_KNOWN_FLAGS) !== 0) throw new EnvelopeError(`bad envelope flags 0x${flags.toString(16)} in message ${i + 1}`);
    const delta = flags & MSG_SEQ_DELTA ? input.varint(field('sequence delta')) : 1;
    if (delta < 1) throw new EnvelopeError(`envelope batch sequences must increase (message ${i + 1})`);
    seq += delta;
    if (!Number.isSafeInteger(seq)) throw new EnvelopeError(`bad envelope sequence in message ${i + 1}`);
    time += input.zigzag(field('timestamp'));
    const twinId = flags & MSG_TWIN ? input.string(field('twin identity')) : undefined;
    if (twinId !== undefined && twinId.length === 0) throw new EnvelopeError(`envelope batch message ${i + 1} with an empty twin identity`);
    let publisherClientId: string;
    if (flags & MSG_NEW_CLIENT) {
      publisherClientId = input.string(field('client id'));
      clients.push(publisherClientId);
    } else {
      const index = input.varint(field('client id index'));
      if (index >= clients.length) throw new EnvelopeError(`envelope batch client id index ${index} out of range in message ${i + 1}`);
      publisherClientId = clients[index];
    }
    const topic = input.string(field('topic'));
    if (topic.length === 0) throw new EnvelopeError(`envelope batch message ${i + 1} without topic`);
    let payload = Buffer.from(input.bytes(input.varint(field('payload length')), field('payload')));
    if (flags & MSG_DEFLATE) {
      try {
        payload = inflateRawSync(payload);
      } catch (err) {
        throw new EnvelopeError(`envelope payload of message ${i + 1} does not inflate: ${(err as Error).message}`);
      }
    }
    const entry: BatchEntry = { seq, message: { topic, payload, qos: qos as 0 | 1 | 2, retain: (flags & MSG_RETAIN) !== 0, publisherClientId, timestamp: time } };
    if (twinId !== undefined) entry.twinId = twinId;
    entries.push(entry);
  }
  if (!input.atEnd()) throw new EnvelopeError(`envelope batch has ${bytes.length - input.offset} bytes after its ${count} messages`);
  return { originCluster, epoch, entries };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const timestampOf = (message: LinkMessage): number => Math.max(0, Math.round(message.timestamp));

/** Appends to a list of chunks; varints are LEB128 of non-negative safe integers. */
class ByteWriter {
  private readonly chunks: Buffer[] = [];
  private scratch = Buffer.allocUnsafe(256);
  private used = 0;

  byte(value: number): void {
    this.room(1);
    this.scratch[this.used++] = value;
  }

  varint(value: number): void {
    this.room(10);
    let v = value;
    while (v >= 0x80) {
      this.scratch[this.used++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.scratch[this.used++] = v;
  }

  zigzag(value: number): void {
    this.varint(value >= 0 ? value * 2 : -value * 2 - 1);
  }

  string(text: string): void {
    const bytes = Buffer.from(text, 'utf8');
    this.varint(bytes.length);
    this.bytes(bytes);
  }

  bytes(data: Buffer): void {
    if (data.length <= 64) {
      this.room(data.length);
      data.copy(this.scratch, this.used);
      this.used += data.length;
      return;
    }
    this.cut();
    this.chunks.push(data);
  }

  finish(): Buffer {
    this.cut();
    return this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
  }

  private room(bytes: number): void {
    if (this.used + bytes > this.scratch.length) this.cut();
  }

  private cut(): void {
    if (this.used === 0) return;
    this.chunks.push(this.scratch.subarray(0, this.used));
    this.scratch = this.scratch.subarray(this.used);
    this.used = 0;
    if (this.scratch.length < 80) this.scratch = Buffer.allocUnsafe(256);
  }
}

class ByteReader {
  constructor(private readonly data: Buffer, public offset: number) {}

  atEnd(): boolean { return this.offset === this.data.length; }

  byte(field: string): number {
    if (this.offset >= this.data.length) throw new EnvelopeError(`envelope truncated in ${field}`);
    return this.data[this.offset++];
  }

  varint(field: string): number {
    let value = 0;
    let scale = 1;
    for (;;) {
      const b = this.byte(field);
      value += (b & 0x7f) * scale;
      if (b < 0x80) break;
      scale *= 0x80;
      if (scale > 2 ** 49) throw new EnvelopeError(`envelope varint too long in ${field}`);
    }
    if (!Number.isSafeInteger(value)) throw new EnvelopeError(`envelope varint out of range in ${field}`);
    return value;
  }

  zigzag(field: string): number {
    const v = this.varint(field);
    return v % 2 === 0 ? v / 2 : -(v + 1) / 2;
  }

  bytes(length: number, field: string): Buffer {
    if (this.offset + length > this.data.length) throw new EnvelopeError(`envelope truncated in ${field}`);
    const out = this.data.subarray(this.offset, this.offset + length);
    this.offset += length;
    return out;
  }

  string(field: string): string {
    const bytes = this.bytes(this.varint(`${field} length`), field);
    try {
      return utf8.decode(bytes);
    } catch {
      throw new EnvelopeError(`envelope ${field} is not valid UTF-8`);
    }
  }
}

export function decodeEnvelope(bytes: Buffer): Envelope {
  if (bytes.length < 18) throw new EnvelopeError(`envelope of ${bytes.length} bytes is shorter than its header`);
  const version = bytes.readUInt8(0);
  if (version !== VERSION) throw new EnvelopeError(`unsupported envelope version ${version}`);
  const flags = bytes.readUInt8(1);
  const qos = flags & 0x03;
  if (qos === 3 || (flags & ~0x0f) !== 0) throw new EnvelopeError(`bad envelope flags 0x${flags.toString(16)}`);
  const seq = Number(bytes.readBigUInt64BE(2));
  if (!Number.isSafeInteger(seq) || seq < 1) throw new EnvelopeError(`bad envelope sequence ${seq}`);
  const timestamp = Number(bytes.readBigUInt64BE(10));
  let offset = 18;
  const readString = (field: string): string => {
    if (offset + 2 > bytes.length) throw new EnvelopeError(`envelope truncated in ${field}`);
    const len = bytes.readUInt16BE(offset);
    offset += 2;
    if (offset + len > bytes.length) throw new EnvelopeError(`envelope truncated in ${field}`);
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(offset, offset + len));
    offset += len;
    return text;
  };
  const originCluster = readString('origin cluster');
  const topic = readString('topic');
  const publisherClientId = readString('publisher client id');
  if (originCluster.length === 0 || topic.length === 0) throw new EnvelopeError('envelope without origin cluster or topic');
  let payload = Buffer.from(bytes.subarray(offset));
  if (flags & FLAG_DEFLATE) {
    try {
      payload = inflateRawSync(payload);
    } catch (err) {
      throw new EnvelopeError(`envelope payload does not inflate: ${(err as Error).message}`);
    }
  }
  return { originCluster, seq, message: { topic, payload, qos: qos as 0 | 1 | 2, retain: (flags & FLAG_RETAIN) !== 0, publisherClientId, timestamp } };
}
