import { isUtf8 } from 'node:buffer';
import { CodecError } from './errors.js';
import { nameProblem, routeFilterProblem, routeIdProblem } from './limits.js';
import type {
  AckMessage,
  HeartbeatMessage,
  InitAckMessage,
  InitMessage,
  InitResult,
  LaneDelta,
  LaneRef,
  LaneVersion,
  OpsMessage,
  RouteOp,
  RouteSpec,
  SnapshotMessage,
  SyncMessage,
} from './messages.js';
import { routeKey } from './route-set.js';

/**
 * Binary encoding of route-sync messages: one type byte, then fields in a fixed order. Integers are unsigned
 * LEB128 varints (minimal, at most 2^53 - 1); strings are a varint byte length and UTF-8 bytes; booleans and
 * enums one byte. The transport frames messages; one buffer holds exactly one message.
 *
 * Decoding is strict: every field is range- and syntax-checked (filters are valid MQTT filters, names are
 * bounded), lists are checked against the bytes left before anything is allocated, duplicates and trailing bytes
 * are refused. Any problem throws a CodecError naming the field; nothing is returned half-decoded.
 */

const TYPE_CODES = { init: 1, init_ack: 2, ops: 3, snapshot: 4, heartbeat: 5, ack: 6 } as const;
const INIT_RESULTS: readonly InitResult[] = ['ok', 'wrong_cluster', 'stale_incarnation', 'unsupported_protocol'];
const OP_DELETE = 0;
const OP_ADD = 1;
const MAX_VARINT_BYTES = 8;

// ── encoding ─────────────────────────────────────────────────────────────────────────────────────────────

class Writer {
  private buf: Buffer;
  private pos = 0;

  constructor(sizeHint: number) {
    this.buf = Buffer.allocUnsafe(Math.max(64, sizeHint));
  }

  u8(value: number): void {
    this.ensure(1);
    this.buf[this.pos++] = value;
  }

  varint(value: number, field: string): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new CodecError(field, `cannot encode ${value}: not a non-negative safe integer`);
    this.ensure(MAX_VARINT_BYTES);
    let v = value;
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
  }

  string(value: string): void {
    // Up to 42 UTF-16 units are at most 126 UTF-8 bytes: a one-byte length prefix, written after the bytes.
    if (value.length <= 42) {
      this.ensure(1 + value.length * 3);
      const written = this.buf.write(value, this.pos + 1, 'utf8');
      this.buf[this.pos] = written;
      this.pos += 1 + written;
      return;
    }
    const bytes = Buffer.byteLength(value, 'utf8');
    this.varint(bytes, 'string length');
    this.ensure(bytes);
    this.pos += this.buf.write(value, this.pos, 'utf8');
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }
}

export function encodeMessage(message: SyncMessage): Buffer {
  const w = new Writer(sizeHint(message));
  w.u8(TYPE_CODES[message.type]);
  switch (message.type) {
    case 'init':
      w.varint(message.protocol, 'init.protocol');
      w.string(message.cluster);
      w.string(message.actor);
      w.varint(message.incarnation, 'init.incarnation');
      w.string(message.role);
      w.varint(message.conn, 'init.conn');
      break;
    case 'init_ack':
      w.varint(message.incarnation, 'init_ack.incarnation');
      w.varint(message.conn, 'init_ack.conn');
      w.u8(INIT_RESULTS.indexOf(message.result));
      w.string(message.cluster);
      w.string(message.actor);
      w.varint(message.actorIncarnation, 'init_ack.actorIncarnation');
      w.string(message.role);
      w.varint(message.knownIncarnation, 'init_ack.knownIncarnation');
      writeLaneVersions(w, message.lanes, 'init_ack.lanes');
      break;
    case 'ops':
      writeStream(w, message.incarnation, message.conn, message.seq, 'ops');
      w.varint(message.deltas.length, 'ops.deltas');
      for (const delta of message.deltas) writeDelta(w, delta);
      break;
    case 'snapshot':
      writeStream(w, message.incarnation, message.conn, message.seq, 'snapshot');
      writeLaneVersion(w, message.lane, 'snapshot.lane');
      w.varint(message.part, 'snapshot.part');
      w.u8(message.last ? 1 : 0);
      w.varint(message.routes.length, 'snapshot.routes');
      for (const r of message.routes) {
        w.string(r.filter);
        w.string(r.routeId);
      }
      break;
    case 'heartbeat':
      writeStream(w, message.incarnation, message.conn, message.afterSeq, 'heartbeat');
      writeLaneVersions(w, message.lanes, 'heartbeat.lanes');
      break;
    case 'ack':
      writeStream(w, message.incarnation, message.conn, message.seq, 'ack');
      w.u8(message.reinit ? 1 : 0);
      w.varint(message.resync.length, 'ack.resync');
      for (const ref of message.resync) {
        w.string(ref.actor);
        w.varint(ref.incarnation, 'ack.resync.incarnation');
      }
      break;
  }
  return w.finish();
}

function sizeHint(message: SyncMessage): number {
  if (message.type === 'snapshot') return 16 + message.routes.length * 32;
  if (message.type === 'ops') return 16 + message.deltas.reduce((n, d) => n + 24 + d.ops.length * 32, 0);
  return 256;
}

function writeStream(w: Writer, incarnation: number, conn: number, seq: number, type: string): void {
  w.varint(incarnation, `${type}.incarnation`);
  w.varint(conn, `${type}.conn`);
  w.varint(seq, `${type}.seq`);
}

function writeLaneVersion(w: Writer, lane: LaneVersion, field: string): void {
  w.string(lane.actor);
  w.varint(lane.incarnation, `${field}.incarnation`);
  w.varint(lane.version, `${field}.version`);
}

function writeLaneVersions(w: Writer, lanes: readonly LaneVersion[], field: string): void {
  w.varint(lanes.length, field);
  for (const lane of lanes) writeLaneVersion(w, lane, field);
}

function writeDelta(w: Writer, delta: LaneDelta): void {
  w.string(delta.actor);
  w.varint(delta.incarnation, 'delta.incarnation');
  w.varint(delta.base, 'delta.base');
  w.varint(delta.version, 'delta.version');
  w.varint(delta.ops.length, 'delta.ops');
  for (const op of delta.ops) {
    w.u8(op.op === 'add' ? OP_ADD : OP_DELETE);
    w.string(op.filter);
    w.string(op.routeId);
  }
}

// ── decoding ─────────────────────────────────────────────────────────────────────────────────────────────

class Reader {
  private pos = 0;

  constructor(private readonly buf: Buffer) {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  u8(field: string): number {
    if (this.pos >= this.buf.length) throw new CodecError(field, 'truncated: expected 1 more byte');
    return this.buf[this.pos++];
  }

  bool(field: string): boolean {
    const b = this.u8(field);
    if (b > 1) throw new CodecError(field, `expected 0 or 1, got ${b}`);
    return b === 1;
  }

  varint(field: string): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (this.pos >= this.buf.length) throw new CodecError(field, 'truncated inside a varint');
      const b = this.buf[this.pos++];
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        if (b === 0 && i > 0) throw new CodecError(field, 'overlong varint');
        if (value > Number.MAX_SAFE_INTEGER) throw new CodecError(field, 'integer above 2^53 - 1');
        return value;
      }
      scale *= 0x80;
    }
    throw new CodecError(field, `varint longer than ${MAX_VARINT_BYTES} bytes`);
  }

  /** A list length, checked against the bytes left (each element takes at least `minBytes`). */
  count(field: string, minBytes: number): number {
    const n = this.varint(field);
    if (n * minBytes > this.remaining) throw new CodecError(field, `${n} elements cannot fit in the ${this.remaining} bytes left`);
    return n;
  }

  string(field: string): string {
    const length = this.varint(`${field} length`);
    if (length > this.remaining) throw new CodecError(field, `string of ${length} bytes, only ${this.remaining} left`);
    const start = this.pos;
    this.pos += length;
    const value = this.buf.toString('utf8', start, this.pos);
    // toString replaces invalid UTF-8 with U+FFFD; only then is the strict (slower) check needed.
    if (value.includes('\uFFFD') && !isUtf8(this.buf.subarray(start, this.pos))) throw new CodecError(field, 'invalid UTF-8');
    return value;
  }

  name(field: string): string {
    const value = this.string(field);
    const problem = nameProblem(value);
    if (problem !== null) throw new CodecError(field, problem);
    return value;
  }

  end(type: string): void {
    if (this.pos !== this.buf.length) throw new CodecError(type, `${this.buf.length - this.pos} trailing bytes`);
  }
}

/** Decodes one message; throws CodecError saying what is wrong. */
export function decodeMessage(bytes: Uint8Array): SyncMessage {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const r = new Reader(buf);
  const code = r.u8('type');
  const message = decodeBody(r, code);
  r.end(message.type);
  return message;
}

function decodeBody(r: Reader, code: number): SyncMessage {
  switch (code) {
    case TYPE_CODES.init:
      return decodeInit(r);
    case TYPE_CODES.init_ack:
      return decodeInitAck(r);
    case TYPE_CODES.ops:
      return decodeOps(r);
    case TYPE_CODES.snapshot:
      return decodeSnapshot(r);
    case TYPE_CODES.heartbeat:
      return decodeHeartbeat(r);
    case TYPE_CODES.ack:
      return decodeAck(r);
    default:
      throw new CodecError('type', `unknown message type ${code}`);
  }
}

function decodeInit(r: Reader): InitMessage {
  const protocol = r.varint('init.protocol');
  const cluster = r.name('init.cluster');
  const actor = r.name('init.actor');
  const incarnation = r.varint('init.incarnation');
  const role = r.name('init.role');
  const conn = positive(r.varint('init.conn'), 'init.conn');
  return { type: 'init', protocol, cluster, actor, incarnation, role, conn };
}

function decodeInitAck(r: Reader): InitAckMessage {
  const incarnation = r.varint('init_ack.incarnation');
  const conn = positive(r.varint('init_ack.conn'), 'init_ack.conn');
  const resultCode = r.u8('init_ack.result');
  const result = INIT_RESULTS[resultCode];
  if (result === undefined) throw new CodecError('init_ack.result', `unknown result code ${resultCode}`);
  const cluster = r.name('init_ack.cluster');
  const actor = r.name('init_ack.actor');
  const actorIncarnation = r.varint('init_ack.actorIncarnation');
  const role = r.name('init_ack.role');
  const knownIncarnation = r.varint('init_ack.knownIncarnation');
  const lanes = readLaneVersions(r, 'init_ack.lanes');
  return { type: 'init_ack', incarnation, conn, result, cluster, actor, actorIncarnation, role, knownIncarnation, lanes };
}

function decodeOps(r: Reader): OpsMessage {
  const { incarnation, conn, seq } = readStream(r, 'ops');
  positive(seq, 'ops.seq');
  const n = r.count('ops.deltas', 6);
  if (n === 0) throw new CodecError('ops.deltas', 'an ops message carries at least one delta');
  const deltas: LaneDelta[] = new Array(n);
  for (let i = 0; i < n; i++) deltas[i] = readDelta(r, `ops.deltas[${i}]`);
  return { type: 'ops', incarnation, conn, seq, deltas };
}

function decodeSnapshot(r: Reader): SnapshotMessage {
  const { incarnation, conn, seq } = readStream(r, 'snapshot');
  positive(seq, 'snapshot.seq');
  const lane = readLaneVersion(r, 'snapshot.lane');
  const part = r.varint('snapshot.part');
  const last = r.bool('snapshot.last');
  const n = r.count('snapshot.routes', 3);
  const routes: RouteSpec[] = new Array(n);
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const field = `snapshot.routes[${i}]`;
    const route = readRoute(r, field);
    const key = routeKey(route.filter, route.routeId);
    if (seen.has(key)) throw new CodecError(field, `duplicate route ${JSON.stringify(route.filter)}`);
    seen.add(key);
    routes[i] = route;
  }
  return { type: 'snapshot', incarnation, conn, seq, lane, part, last, routes };
}

function decodeHeartbeat(r: Reader): HeartbeatMessage {
  const { incarnation, conn, seq } = readStream(r, 'heartbeat');
  const lanes = readLaneVersions(r, 'heartbeat.lanes');
  return { type: 'heartbeat', incarnation, conn, afterSeq: seq, lanes };
}

function decodeAck(r: Reader): AckMessage {
  const { incarnation, conn, seq } = readStream(r, 'ack');
  const reinit = r.bool('ack.reinit');
  const n = r.count('ack.resync', 3);
  const resync: LaneRef[] = new Array(n);
  const actors = new Set<string>();
  for (let i = 0; i < n; i++) {
    const field = `ack.resync[${i}]`;
    const actor = r.name(`${field}.actor`);
    if (actors.has(actor)) throw new CodecError(field, `duplicate actor ${JSON.stringify(actor)}`);
    actors.add(actor);
    resync[i] = { actor, incarnation: r.varint(`${field}.incarnation`) };
  }
  return { type: 'ack', incarnation, conn, seq, resync, reinit };
}

function readStream(r: Reader, type: string): { incarnation: number; conn: number; seq: number } {
  const incarnation = r.varint(`${type}.incarnation`);
  const conn = positive(r.varint(`${type}.conn`), `${type}.conn`);
  const seq = r.varint(`${type}.seq`);
  return { incarnation, conn, seq };
}

function readLaneVersion(r: Reader, field: string): LaneVersion {
  const actor = r.name(`${field}.actor`);
  const incarnation = r.varint(`${field}.incarnation`);
  const version = r.varint(`${field}.version`);
  return { actor, incarnation, version };
}

function readLaneVersions(r: Reader, field: string): LaneVersion[] {
  const n = r.count(field, 4);
  const lanes: LaneVersion[] = new Array(n);
  const actors = new Set<string>();
  for (let i = 0; i < n; i++) {
    const lane = readLaneVersion(r, `${field}[${i}]`);
    if (actors.has(lane.actor)) throw new CodecError(`${field}[${i}]`, `duplicate actor ${JSON.stringify(lane.actor)}`);
    actors.add(lane.actor);
    lanes[i] = lane;
  }
  return lanes;
}

function readDelta(r: Reader, field: string): LaneDelta {
  const actor = r.name(`${field}.actor`);
  const incarnation = r.varint(`${field}.incarnation`);
  const base = r.varint(`${field}.base`);
  const version = r.varint(`${field}.version`);
  if (version <= base) throw new CodecError(`${field}.version`, `version ${version} does not follow base ${base}`);
  const n = r.count(`${field}.ops`, 4);
  const ops: RouteOp[] = new Array(n);
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const opField = `${field}.ops[${i}]`;
    const kind = r.u8(`${opField}.op`);
    if (kind !== OP_ADD && kind !== OP_DELETE) throw new CodecError(`${opField}.op`, `unknown operation ${kind}`);
    const route = readRoute(r, opField);
    const key = routeKey(route.filter, route.routeId);
    if (seen.has(key)) throw new CodecError(opField, `second operation on route ${JSON.stringify(route.filter)}`);
    seen.add(key);
    ops[i] = { op: kind === OP_ADD ? 'add' : 'delete', filter: route.filter, routeId: route.routeId };
  }
  return { actor, incarnation, base, version, ops };
}

function readRoute(r: Reader, field: string): RouteSpec {
  const filter = r.string(`${field}.filter`);
  const filterProblem = routeFilterProblem(filter);
  if (filterProblem !== null) throw new CodecError(`${field}.filter`, filterProblem);
  const routeId = r.string(`${field}.routeId`);
  const idProblem = routeIdProblem(routeId);
  if (idProblem !== null) throw new CodecError(`${field}.routeId`, idProblem);
  return { filter, routeId };
}

function positive(value: number, field: string): number {
  if (value < 1) throw new CodecError(field, 'must be at least 1');
  return value;
}
