/**
 * The intra-cluster wire format: pure encode/decode, no sockets, no state beyond the decoder's buffer.
 *
 * Every frame is `u32 length (big-endian, counts the bytes after it) | u8 type | body`. Integers are big-endian;
 * 64-bit fields carry JavaScript safe integers (≤ 2^53 − 1), anything larger is rejected as malformed.
 * See README.md in this directory for the layout of each body.
 */

export const PROTOCOL_VERSION = 1;
/** "MRDN": lets a listener tell a cluster peer from anything else that connects to its port. */
export const HELLO_MAGIC = 0x4d52444e;
export const NONCE_BYTES = 32;
export const PROOF_BYTES = 32;
export const LENGTH_PREFIX_BYTES = 4;
/** Type byte + channel + sequence number: what a DATA frame adds to its payload after the length prefix. */
export const DATA_OVERHEAD_BYTES = LENGTH_PREFIX_BYTES + 1 + 1 + 8;
/** Until a peer has authenticated, no frame may be larger than this (limits what a stranger can make us buffer). */
export const HANDSHAKE_MAX_FRAME_BYTES = 4096;
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;
const MAX_NAME_BYTES = 255;
const MAX_DETAIL_BYTES = 1024;

export const FrameType = {
  Hello: 0x01,
  Challenge: 0x02,
  Auth: 0x03,
  Welcome: 0x04,
  Reject: 0x05,
  Session: 0x06,
  Close: 0x07,
  Data: 0x10,
  Ack: 0x11,
  Ping: 0x12,
  Pong: 0x13,
} as const;

export type NodeRole = 'core' | 'replicant' | 'agent';
const ROLE_CODES: readonly NodeRole[] = ['core', 'replicant', 'agent'];

/** What a node says about itself in HELLO / CHALLENGE. */
export interface NodeIdentity {
  clusterName: string;
  nodeId: string;
  role: NodeRole;
  /** Bumped at every start of the node; a change means the peer lost all its transport state. */
  incarnation: number;
  /** Cluster address (`host:port`) other nodes can dial to reach this node. */
  address: string;
}

/** Why a handshake was refused; the codes travel in REJECT frames, so their numbers never change. */
export type RefusalReason =
  | 'wrong-secret'
  | 'wrong-cluster'
  | 'version-mismatch'
  | 'same-node-id'
  | 'protocol-error'
  | 'unknown';
const REFUSAL_CODES: readonly RefusalReason[] = ['unknown', 'wrong-secret', 'wrong-cluster', 'version-mismatch', 'same-node-id', 'protocol-error'];

/** Why an established connection is being closed on purpose (CLOSE frame). */
export type CloseReason = 'shutdown' | 'duplicate-connection' | 'link-removed' | 'protocol-error' | 'unknown';
const CLOSE_CODES: readonly CloseReason[] = ['unknown', 'shutdown', 'duplicate-connection', 'link-removed', 'protocol-error'];

export interface HelloFrame { type: 'hello'; version: number; identity: NodeIdentity; nonce: Buffer }
/** A HELLO whose version this build does not speak: only the version could be read. */
export interface ForeignHelloFrame { type: 'foreign-hello'; version: number }
export interface ChallengeFrame { type: 'challenge'; version: number; identity: NodeIdentity; nonce: Buffer }
export interface AuthFrame { type: 'auth'; proof: Buffer }
export interface WelcomeFrame { type: 'welcome'; proof: Buffer }
export interface RejectFrame { type: 'reject'; reason: RefusalReason; detail: string }
/**
 * First frame on an authenticated connection, sent by both sides: `session` identifies the sender's outbound
 * stream; `peerSession`/`received` say which of the receiver's streams the sender still has and how far it got.
 */
export interface SessionFrame { type: 'session'; session: number; peerSession: number; received: number }
export interface CloseFrame { type: 'close'; reason: CloseReason; detail: string }
export interface DataFrame { type: 'data'; channel: number; seq: number; payload: Buffer }
export interface AckFrame { type: 'ack'; seq: number }
export interface PingFrame { type: 'ping'; timestamp: number }
export interface PongFrame { type: 'pong'; timestamp: number }

export type Frame =
  | HelloFrame | ChallengeFrame | AuthFrame | WelcomeFrame | RejectFrame | SessionFrame | CloseFrame
  | DataFrame | AckFrame | PingFrame | PongFrame;
export type DecodedFrame = Frame | ForeignHelloFrame;

export type CodecErrorCode =
  | 'frame-too-large'
  | 'empty-frame'
  | 'unknown-frame-type'
  | 'truncated'
  | 'trailing-bytes'
  | 'bad-magic'
  | 'bad-value'
  | 'bad-utf8'
  | 'integer-overflow';

/** Malformed input or an unencodable frame. The decoder throws nothing else. */
export class CodecError extends Error {
  override readonly name = 'CodecError';
  constructor(readonly code: CodecErrorCode, message: string) {
    super(message);
  }
}

const TWO_POW_32 = 0x1_0000_0000;
const MAX_U64_HIGH = Math.floor(Number.MAX_SAFE_INTEGER / TWO_POW_32);
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// ---------------------------------------------------------------------------------------------- encoding

class BodyWriter {
  private offset: number;
  constructor(private readonly buf: Buffer, start: number) {
    this.offset = start;
  }
  u8(v: number): this { this.offset = this.buf.writeUInt8(v, this.offset); return this; }
  u16(v: number): this { this.offset = this.buf.writeUInt16BE(v, this.offset); return this; }
  u32(v: number): this { this.offset = this.buf.writeUInt32BE(v, this.offset); return this; }
  u64(v: number): this {
    this.offset = this.buf.writeUInt32BE(Math.floor(v / TWO_POW_32), this.offset);
    this.offset = this.buf.writeUInt32BE(v % TWO_POW_32, this.offset);
    return this;
  }
  f64(v: number): this { this.offset = this.buf.writeDoubleBE(v, this.offset); return this; }
  bytes(b: Buffer): this { this.offset += b.copy(this.buf, this.offset); return this; }
  str8(s: string): this { return this.u8(Buffer.byteLength(s)).utf8(s); }
  str16(s: string): this { return this.u16(Buffer.byteLength(s)).utf8(s); }
  private utf8(s: string): this { this.offset += this.buf.write(s, this.offset, 'utf8'); return this; }
  get position(): number { return this.offset; }
}

function checkU64(value: number, field: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new CodecError('bad-value', `${field} must be a non-negative safe integer, got ${value}`);
}

function checkName(value: string, field: string): void {
  const bytes = Buffer.byteLength(value);
  if (bytes > MAX_NAME_BYTES) throw new CodecError('bad-value', `${field} is ${bytes} bytes in UTF-8; at most ${MAX_NAME_BYTES}`);
}

function checkFixed(value: Buffer, length: number, field: string): void {
  if (value.length !== length) throw new CodecError('bad-value', `${field} must be ${length} bytes, got ${value.length}`);
}

function checkChannel(channel: number): void {
  if (!Number.isInteger(channel) || channel < 1 || channel > 255) throw new CodecError('bad-value', `channel must be 1..255, got ${channel}`);
}

function truncateDetail(detail: string): string {
  return Buffer.byteLength(detail) <= MAX_DETAIL_BYTES ? detail : Buffer.from(detail).subarray(0, MAX_DETAIL_BYTES).toString('utf8').replace(/\uFFFD+$/u, '');
}

function identityBytes(identity: NodeIdentity): number {
  checkName(identity.clusterName, 'cluster name');
  checkName(identity.nodeId, 'node id');
  checkName(identity.address, 'address');
  checkU64(identity.incarnation, 'incarnation');
  return 1 + 8 + 3 + Buffer.byteLength(identity.clusterName) + Buffer.byteLength(identity.nodeId) + Buffer.byteLength(identity.address);
}

function writeIdentity(w: BodyWriter, identity: NodeIdentity): void {
  w.u8(ROLE_CODES.indexOf(identity.role) + 1).u64(identity.incarnation)
    .str8(identity.clusterName).str8(identity.nodeId).str8(identity.address);
}

/** Size of the body (type byte excluded) and a function that writes it. */
function bodyOf(frame: Frame): { size: number; write: (w: BodyWriter) => void } {
  switch (frame.type) {
    case 'hello':
    case 'challenge': {
      checkFixed(frame.nonce, NONCE_BYTES, 'nonce');
      if (!ROLE_CODES.includes(frame.identity.role)) throw new CodecError('bad-value', `unknown role ${String(frame.identity.role)}`);
      const magic = frame.type === 'hello' ? 4 : 0;
      return {
        size: magic + 2 + NONCE_BYTES + identityBytes(frame.identity),
        write: (w) => {
          if (magic) w.u32(HELLO_MAGIC);
          w.u16(frame.version).bytes(frame.nonce);
          writeIdentity(w, frame.identity);
        },
      };
    }
    case 'auth':
    case 'welcome':
      checkFixed(frame.proof, PROOF_BYTES, 'proof');
      return { size: PROOF_BYTES, write: (w) => w.bytes(frame.proof) };
    case 'reject':
    case 'close': {
      const detail = truncateDetail(frame.detail);
      const codes: readonly string[] = frame.type === 'reject' ? REFUSAL_CODES : CLOSE_CODES;
      const code = Math.max(0, codes.indexOf(frame.reason));
      return { size: 1 + 2 + Buffer.byteLength(detail), write: (w) => w.u8(code).str16(detail) };
    }
    case 'session':
      checkU64(frame.session, 'session');
      checkU64(frame.peerSession, 'peer session');
      checkU64(frame.received, 'received');
      return { size: 24, write: (w) => w.u64(frame.session).u64(frame.peerSession).u64(frame.received) };
    case 'data':
      checkChannel(frame.channel);
      checkU64(frame.seq, 'sequence number');
      return { size: 1 + 8 + frame.payload.length, write: (w) => w.u8(frame.channel).u64(frame.seq).bytes(frame.payload) };
    case 'ack':
      checkU64(frame.seq, 'acknowledged sequence number');
      return { size: 8, write: (w) => w.u64(frame.seq) };
    case 'ping':
    case 'pong':
      return { size: 8, write: (w) => w.f64(frame.timestamp) };
  }
}

const TYPE_BYTES: Record<Frame['type'], number> = {
  hello: FrameType.Hello, challenge: FrameType.Challenge, auth: FrameType.Auth, welcome: FrameType.Welcome,
  reject: FrameType.Reject, session: FrameType.Session, close: FrameType.Close, data: FrameType.Data,
  ack: FrameType.Ack, ping: FrameType.Ping, pong: FrameType.Pong,
};

/** The whole frame, length prefix included. Throws CodecError for a field that cannot be encoded. */
export function encodeFrame(frame: Frame): Buffer {
  const body = bodyOf(frame);
  const buf = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES + 1 + body.size);
  buf.writeUInt32BE(1 + body.size, 0);
  buf.writeUInt8(TYPE_BYTES[frame.type], LENGTH_PREFIX_BYTES);
  const w = new BodyWriter(buf, LENGTH_PREFIX_BYTES + 1);
  body.write(w);
  if (w.position !== buf.length) throw new CodecError('bad-value', `internal: ${frame.type} frame wrote ${w.position} of ${buf.length} bytes`);
  return buf;
}

// ---------------------------------------------------------------------------------------------- decoding

/** Reads one frame body; every read is bounds-checked against the body, never against the underlying buffer. */
class BodyReader {
  private offset = 0;
  constructor(private readonly body: Buffer, private readonly frameName: string) {}

  private need(n: number, what: string): number {
    const at = this.offset;
    if (at + n > this.body.length) {
      throw new CodecError('truncated', `${this.frameName} frame truncated reading ${what}: need ${n} bytes at ${at}, body has ${this.body.length}`);
    }
    this.offset = at + n;
    return at;
  }
  u8(what: string): number { return this.body.readUInt8(this.need(1, what)); }
  u16(what: string): number { return this.body.readUInt16BE(this.need(2, what)); }
  u32(what: string): number { return this.body.readUInt32BE(this.need(4, what)); }
  u64(what: string): number {
    const at = this.need(8, what);
    const high = this.body.readUInt32BE(at);
    if (high > MAX_U64_HIGH) throw new CodecError('integer-overflow', `${this.frameName} frame: ${what} exceeds 2^53 - 1`);
    const value = high * TWO_POW_32 + this.body.readUInt32BE(at + 4);
    if (value > Number.MAX_SAFE_INTEGER) throw new CodecError('integer-overflow', `${this.frameName} frame: ${what} exceeds 2^53 - 1`);
    return value;
  }
  f64(what: string): number { return this.body.readDoubleBE(this.need(8, what)); }
  bytes(n: number, what: string): Buffer { const at = this.need(n, what); return this.body.subarray(at, at + n); }
  str8(what: string): string { return this.text(this.u8(`${what} length`), what); }
  str16(what: string): string { return this.text(this.u16(`${what} length`), what); }
  rest(): Buffer { const at = this.offset; this.offset = this.body.length; return this.body.subarray(at); }
  end(): void {
    if (this.offset !== this.body.length) {
      throw new CodecError('trailing-bytes', `${this.frameName} frame has ${this.body.length - this.offset} unexpected trailing bytes`);
    }
  }
  private text(n: number, what: string): string {
    const raw = this.bytes(n, what);
    try {
      return utf8.decode(raw);
    } catch {
      throw new CodecError('bad-utf8', `${this.frameName} frame: ${what} is not valid UTF-8`);
    }
  }
}

function readIdentity(r: BodyReader): NodeIdentity {
  const roleCode = r.u8('role');
  const role = ROLE_CODES[roleCode - 1];
  if (role === undefined) throw new CodecError('bad-value', `unknown node role code ${roleCode}`);
  const incarnation = r.u64('incarnation');
  return { role, incarnation, clusterName: r.str8('cluster name'), nodeId: r.str8('node id'), address: r.str8('address') };
}

function decodeHello(r: BodyReader): HelloFrame | ForeignHelloFrame {
  const magic = r.u32('magic');
  if (magic !== HELLO_MAGIC) throw new CodecError('bad-magic', `HELLO magic is 0x${magic.toString(16)}, not a Meridian cluster peer`);
  const version = r.u16('version');
  // A peer of another version may lay out the rest differently: keep only what every version agrees on.
  if (version !== PROTOCOL_VERSION) return { type: 'foreign-hello', version };
  const nonce = r.bytes(NONCE_BYTES, 'nonce');
  const identity = readIdentity(r);
  r.end();
  return { type: 'hello', version, nonce, identity };
}

function decodeBody(type: number, body: Buffer): DecodedFrame {
  switch (type) {
    case FrameType.Hello:
      return decodeHello(new BodyReader(body, 'HELLO'));
    case FrameType.Challenge: {
      const r = new BodyReader(body, 'CHALLENGE');
      const version = r.u16('version');
      const nonce = r.bytes(NONCE_BYTES, 'nonce');
      const identity = readIdentity(r);
      r.end();
      return { type: 'challenge', version, nonce, identity };
    }
    case FrameType.Auth:
    case FrameType.Welcome: {
      const name = type === FrameType.Auth ? 'AUTH' : 'WELCOME';
      const r = new BodyReader(body, name);
      const proof = r.bytes(PROOF_BYTES, 'proof');
      r.end();
      return type === FrameType.Auth ? { type: 'auth', proof } : { type: 'welcome', proof };
    }
    case FrameType.Reject:
    case FrameType.Close: {
      const isReject = type === FrameType.Reject;
      const r = new BodyReader(body, isReject ? 'REJECT' : 'CLOSE');
      const code = r.u8('reason');
      const detail = r.str16('detail');
      r.end();
      // Unknown codes decode as 'unknown': a newer peer may know reasons this build does not.
      return isReject
        ? { type: 'reject', reason: REFUSAL_CODES[code] ?? 'unknown', detail }
        : { type: 'close', reason: CLOSE_CODES[code] ?? 'unknown', detail };
    }
    case FrameType.Session: {
      const r = new BodyReader(body, 'SESSION');
      const frame: SessionFrame = { type: 'session', session: r.u64('session'), peerSession: r.u64('peer session'), received: r.u64('received') };
      r.end();
      return frame;
    }
    case FrameType.Data: {
      const r = new BodyReader(body, 'DATA');
      const channel = r.u8('channel');
      if (channel === 0) throw new CodecError('bad-value', 'DATA frame on reserved channel 0');
      const seq = r.u64('sequence number');
      return { type: 'data', channel, seq, payload: r.rest() };
    }
    case FrameType.Ack: {
      const r = new BodyReader(body, 'ACK');
      const seq = r.u64('sequence number');
      r.end();
      return { type: 'ack', seq };
    }
    case FrameType.Ping:
    case FrameType.Pong: {
      const r = new BodyReader(body, type === FrameType.Ping ? 'PING' : 'PONG');
      const timestamp = r.f64('timestamp');
      r.end();
      return type === FrameType.Ping ? { type: 'ping', timestamp } : { type: 'pong', timestamp };
    }
    default:
      throw new CodecError('unknown-frame-type', `unknown frame type 0x${type.toString(16).padStart(2, '0')}`);
  }
}

/** Decodes one complete frame (length prefix included) — for tests and one-off use. */
export function decodeFrame(frame: Buffer, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): DecodedFrame {
  const decoder = new FrameDecoder(maxFrameBytes);
  const frames = decoder.push(frame);
  if (frames.length !== 1 || decoder.bufferedBytes !== 0) {
    throw new CodecError('trailing-bytes', `expected exactly one frame, got ${frames.length} and ${decoder.bufferedBytes} spare bytes`);
  }
  return frames[0] as DecodedFrame;
}

/**
 * Streaming decoder: feed it socket chunks split anywhere, get whole frames back. The first malformed frame
 * throws a CodecError and poisons the decoder (the byte stream cannot be resynchronised). DATA payloads are
 * views into the received chunks, not copies.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Bytes of the frame being assembled (prefix included), once its prefix has been read. */
  private frameBytes: number | undefined;
  private failure: CodecError | undefined;

  constructor(private maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES) {}

  /** Raise or lower the limit, e.g. from the handshake limit to the full one once a peer has authenticated. */
  setMaxFrameBytes(limit: number): void {
    this.maxFrameBytes = limit;
  }

  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): DecodedFrame[] {
    if (this.failure) throw this.failure;
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const frames: DecodedFrame[] = [];
    try {
      for (let frame = this.next(); frame; frame = this.next()) frames.push(frame);
    } catch (err) {
      this.failure = err instanceof CodecError ? err : new CodecError('bad-value', `decoder failure: ${String(err)}`);
      this.chunks = [];
      this.buffered = 0;
      throw this.failure;
    }
    return frames;
  }

  private next(): DecodedFrame | undefined {
    if (this.frameBytes === undefined) {
      if (this.buffered < LENGTH_PREFIX_BYTES) return undefined;
      const length = this.peek(LENGTH_PREFIX_BYTES).readUInt32BE(0);
      if (length === 0) throw new CodecError('empty-frame', 'frame of length 0 (no type byte)');
      if (length + LENGTH_PREFIX_BYTES > this.maxFrameBytes) {
        throw new CodecError('frame-too-large', `frame of ${length + LENGTH_PREFIX_BYTES} bytes exceeds the limit of ${this.maxFrameBytes}`);
      }
      this.frameBytes = length + LENGTH_PREFIX_BYTES;
    }
    if (this.buffered < this.frameBytes) return undefined;
    const frame = this.take(this.frameBytes);
    this.frameBytes = undefined;
    return decodeBody(frame.readUInt8(LENGTH_PREFIX_BYTES), frame.subarray(LENGTH_PREFIX_BYTES + 1));
  }

  /** The first n buffered bytes without consuming them (n ≤ buffered). */
  private peek(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    if (first.length >= n) return first;
    const joined = Buffer.concat(this.chunks);
    this.chunks = [joined];
    return joined;
  }

  /** Consume n bytes (n ≤ buffered), copying only when they span chunks. */
  private take(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const chunk = this.chunks[0] as Buffer;
        const part = Math.min(chunk.length, n - filled);
        chunk.copy(out, filled, 0, part);
        filled += part;
        if (part === chunk.length) this.chunks.shift();
        else this.chunks[0] = chunk.subarray(part);
      }
    }
    this.buffered -= n;
    return out;
  }
}
