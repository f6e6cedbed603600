import { decode, encode } from '../store/codec.js';
import type { SessionSnapshot, StoredPacket, Subscription } from '../store/persistence.js';

/**
 * Wire formats of the session takeover protocol (takeover.ts). A session snapshot travels as the rpc body in the
 * store's own value encoding (`v8.serialize`: Buffer vs string payloads and MQTT 5 properties survive), and is
 * checked field by field on arrival; claims travel in the rpc header as JSON.
 */
export class SessionCodecError extends Error {
  override name = 'SessionCodecError';
}

export function encodeSnapshot(snapshot: SessionSnapshot): Buffer {
  return encode(snapshot);
}

export function decodeSnapshot(bytes: Buffer): SessionSnapshot {
  let value: unknown;
  try {
    value = decode<unknown>(bytes);
  } catch (err) {
    throw new SessionCodecError(`session snapshot of ${bytes.length} bytes does not decode: ${(err as Error).message}`);
  }
  return checkSnapshot(value);
}

function checkSnapshot(value: unknown): SessionSnapshot {
  const v = record(value, 'session snapshot');
  const clientId = string(v.clientId, 'clientId');
  const where = `session snapshot of ${JSON.stringify(clientId)}`;
  if (typeof v.stored !== 'boolean') throw new SessionCodecError(`${where}: stored is not a boolean`);
  if (!Number.isSafeInteger(v.watermark) || (v.watermark as number) < 0) throw new SessionCodecError(`${where}: bad watermark ${String(v.watermark)}`);
  return {
    clientId,
    stored: v.stored,
    subscriptions: list(v.subscriptions, `${where}: subscriptions`).map((s) => checkSubscription(s, where)),
    outgoing: list(v.outgoing, `${where}: outgoing`).map((p) => checkPacket(p, `${where}: outgoing packet`)),
    incoming: list(v.incoming, `${where}: incoming`).map((p) => checkIncoming(p, where)),
    watermark: v.watermark as number,
  };
}

function checkSubscription(value: unknown, where: string): Subscription {
  const s = record(value, `${where}: subscription`);
  const topic = string(s.topic, `${where}: subscription topic`);
  if (s.qos !== 0 && s.qos !== 1 && s.qos !== 2) throw new SessionCodecError(`${where}: subscription ${topic} has QoS ${String(s.qos)}`);
  return s as unknown as Subscription;
}

function checkPacket(value: unknown, where: string): StoredPacket {
  const p = record(value, where);
  const cmd = string(p.cmd, `${where} cmd`);
  if (cmd === 'publish') {
    string(p.topic, `${where} topic`);
    if (!Buffer.isBuffer(p.payload) && typeof p.payload !== 'string') throw new SessionCodecError(`${where} ${String(p.topic)}: payload is neither bytes nor text`);
  } else if (cmd !== 'pubrel' || !isMessageId(p.messageId)) {
    throw new SessionCodecError(`${where}: ${cmd} with messageId ${String(p.messageId)} (only publish and pubrel are queued)`);
  }
  if (p.messageId !== undefined && !isMessageId(p.messageId)) throw new SessionCodecError(`${where}: bad messageId ${String(p.messageId)}`);
  return p as StoredPacket;
}

function checkIncoming(value: unknown, where: string): StoredPacket {
  const packet = checkPacket(value, `${where}: incoming packet`);
  if (!isMessageId(packet.messageId)) throw new SessionCodecError(`${where}: incoming packet without a messageId`);
  return packet;
}

// ---- claims (who holds which client id) ----

/** One node's claims on client ids: set (id → claim time, ms) and dropped ids; `reset` replaces all of them. */
export interface ClaimsMessage {
  reset: boolean;
  claims: [clientId: string, time: number][];
  dropped: string[];
}

export function checkClaims(header: Record<string, unknown>, from: string): ClaimsMessage {
  const where = `session claims from ${from}`;
  if (typeof header.reset !== 'boolean') throw new SessionCodecError(`${where}: reset is not a boolean`);
  const claims = list(header.claims, `${where}: claims`).map((entry) => {
    if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string' || !Number.isFinite(entry[1])) {
      throw new SessionCodecError(`${where}: claim ${JSON.stringify(entry)} is not [clientId, time]`);
    }
    return entry as [string, number];
  });
  const dropped = list(header.dropped, `${where}: dropped`).map((id) => string(id, `${where}: dropped id`));
  return { reset: header.reset, claims, dropped };
}

// ---- route confirmation before a commit (the taker's routes reached every node) ----

/** Taker → every peer: answer once you route these filters to the taker and `holder` handled what you forwarded it before. */
export interface RouteCheck {
  clientId: string;
  token: string;
  filters: string[];
  holder: string;
}

export function checkRouteCheck(header: Record<string, unknown>, from: string): RouteCheck {
  const where = `session route check from ${from}`;
  const clientId = string(header.clientId, `${where}: clientId`);
  const token = string(header.token, `${where}: token`);
  const holder = string(header.holder, `${where}: holder`);
  const filters = list(header.filters, `${where}: filters`).map((filter) => string(filter, `${where}: filter`));
  if (filters.some((filter) => filter.length === 0)) throw new SessionCodecError(`${where}: empty filter`);
  return { clientId, token, filters, holder };
}

/** Peer → taker: `ready` once the routes are here and the flush to the holder was acknowledged. */
export function checkRoutesReady(header: Record<string, unknown>, from: string): { token: string; ready: boolean } {
  const where = `session route confirmation from ${from}`;
  const token = string(header.token, `${where}: token`);
  if (typeof header.ready !== 'boolean') throw new SessionCodecError(`${where}: ready is not a boolean`);
  return { token, ready: header.ready };
}

function isMessageId(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 65535;
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new SessionCodecError(`${what} is not an object`);
  return value as Record<string, unknown>;
}

function string(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new SessionCodecError(`${what} is not a string`);
  return value;
}

function list(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw new SessionCodecError(`${what} is not an array`);
  return value;
}
