import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { LinkMessage } from './queue.js';

/** A forwarded message as it crosses the link: the message plus who sent it and its place in the sender's queue. */
export interface Envelope {
  originCluster: string;
  seq: number;
  message: LinkMessage;
}

export class EnvelopeError extends Error {}

const VERSION = 1;
const FLAG_RETAIN = 0x04;
const FLAG_DEFLATE = 0x08;
/** Payloads below this are never worth compressing. */
const COMPRESS_MIN = 256;

/**
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
