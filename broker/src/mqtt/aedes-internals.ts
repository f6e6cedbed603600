import type { Aedes, Client } from 'aedes';

/**
 * The few aedes 1.2 internals Meridian relies on, typed in one place so an aedes upgrade has one file to check.
 * aedes keeps connected clients by id, each client's granted subscriptions by (internal) filter, and feeds every
 * chunk read from the socket to `client._parser.parse`.
 */
interface AedesWithClients {
  clients: Record<string, Client>;
}

interface ClientWithInternals {
  subscriptions: Record<string, { qos: number }>;
  _keepaliveInterval?: number;
  _parser: { parse(buf: Buffer): unknown };
}

export function clientsOf(aedes: Aedes): Client[] {
  return Object.values((aedes as unknown as AedesWithClients).clients);
}

export function subscriptionsOf(client: Client): Record<string, { qos: number }> {
  return (client as unknown as ClientWithInternals).subscriptions;
}

export function keepaliveSecondsOf(client: Client): number {
  const interval = (client as unknown as ClientWithInternals)._keepaliveInterval;
  // aedes stores 1.5 × keepalive in milliseconds (the [MQTT-3.1.2-24] grace period).
  return interval !== undefined && interval > 0 ? Math.round(interval / 1500) : 0;
}

/** Wraps the parser entry point so `inspect` sees every received chunk first; returning false drops the chunk. */
export function interceptReceivedBytes(client: Client, inspect: (chunk: Buffer) => boolean): void {
  const parser = (client as unknown as ClientWithInternals)._parser;
  const parse = parser.parse.bind(parser);
  parser.parse = (chunk: Buffer) => (inspect(chunk) ? parse(chunk) : undefined);
}

/** A packet as mqtt-packet's parser emits it; `cmd` tells which fields it has. */
export interface ParsedPacket {
  cmd: string;
}

interface ClientWithParserEvents {
  _parser: { prependListener(event: 'packet', listener: (packet: ParsedPacket) => void): unknown };
  /** The CONNECT packet's will, between CONNECT and the end of authentication (aedes moves it to `will` later). */
  _will?: { topic: string } | null;
  broker: { maxTopicLevels: number };
}

/**
 * Lets `inspect` see (and rewrite in place) every packet parsed from the client's socket before aedes handles or
 * queues it. Install it no later than the preConnect hook: aedes calls preConnect synchronously while the CONNECT
 * packet is being emitted, so every packet after CONNECT passes through `inspect`. Packets aedes creates itself
 * (restored subscriptions, wills, the unsubscriptions of a closing client) never do.
 */
export function interceptParsedPackets(client: Client, inspect: (packet: ParsedPacket) => void): void {
  (client as unknown as ClientWithParserEvents)._parser.prependListener('packet', inspect);
}

/** The will of a client that is authenticating (the object aedes later stores and publishes), if any. */
export function pendingWillOf(client: Client): { topic: string } | undefined {
  return (client as unknown as ClientWithParserEvents)._will ?? undefined;
}

/** aedes' `maxTopicLevels` (clamped to 1..100): a mounted topic must stay within it. */
export function maxTopicLevelsOf(client: Client): number {
  return (client as unknown as ClientWithParserEvents).broker.maxTopicLevels;
}

/** A packet being parsed: the fields of mqtt-packet's CONNECT and UNSUBSCRIBE that protocol-checks.ts looks at. */
export interface PacketInParsing {
  cmd: string;
  /** Remaining length from the fixed header. */
  length: number;
  protocolId?: string;
  protocolVersion?: number;
  clientId?: string;
  clean?: boolean;
  keepalive?: number;
  will?: { qos: number };
  username?: string;
  password?: Buffer;
  unsubscriptions?: string[];
}

/**
 * mqtt-packet 9's parser, one per client (`client._parser`): `_parsePayload` reads the body of the packet in
 * `packet` (from `_list`, a BufferList holding at least `packet.length` bytes) with `_pos` as cursor, by calling
 * the `_parse*` methods below; `_emitError` stops the packet; otherwise `packet` is emitted. protocol-checks.ts
 * replaces some of these methods on each client's parser instance.
 */
export interface MqttParserInternals {
  packet: PacketInParsing;
  error: Error | null;
  _pos: number;
  _list: { length: number; readUInt8(offset: number): number; readUInt16BE(offset: number): number; slice(start: number, end: number): Buffer };
  _parseNum(): number;
  _parseString(): string | null;
  _parseConnect(): unknown;
  _parseUnsubscribe(): unknown;
  _emitError(err: Error): void;
}

export function parserOf(client: Client): MqttParserInternals {
  return (client as unknown as { _parser: MqttParserInternals })._parser;
}
