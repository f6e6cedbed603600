import net from 'node:net';
import { generate, parser as createParser, type IConnackPacket, type IConnectPacket, type Packet } from 'mqtt-packet';

/**
 * A raw-socket MQTT 3.1.1 test client: it sends exactly the bytes a test asks for (valid packets through
 * mqtt-packet's generator, malformed ones through the encoders below), records every packet the server sends in
 * order, and tells whether and when the server closed the connection. It never answers anything by itself.
 */

export const DEFAULT_WAIT_MS = 2000;

type Cmd = Packet['cmd'];
type PacketOf<C extends Cmd> = Extract<Packet, { cmd: C }>;

export interface RawConnectOptions {
  clientId?: string;
  clean?: boolean;
  keepalive?: number;
  will?: { topic: string; payload: Buffer | string; qos?: 0 | 1 | 2; retain?: boolean };
  username?: string;
  password?: Buffer;
  protocolVersion?: 3 | 4 | 5;
}

export interface ConnectResult {
  client: RawMqttClient;
  connack: IConnackPacket;
}

export class RawMqttClient {
  /** Packets received and not yet taken by `next`. */
  private readonly inbox: Packet[] = [];
  private waiter?: () => void;
  private closedAt?: number;
  private readonly closedPromise: Promise<void>;
  /** An error from parsing what the server sent: the server wrote a malformed packet. */
  parseError?: Error;
  /** First byte of every packet received, in order (to check fixed-header flags exactly). */
  readonly receivedFirstBytes: number[] = [];

  private constructor(readonly socket: net.Socket, protocolVersion: number) {
    const parser = createParser({ protocolVersion });
    parser.on('packet', (packet: Packet) => {
      this.inbox.push(packet);
      this.wake();
    });
    parser.on('error', (err: Error) => {
      this.parseError ??= err;
      this.wake();
    });
    socket.on('data', (chunk: Buffer) => {
      this.recordFirstBytes(chunk);
      parser.parse(chunk);
    });
    socket.on('error', () => { /* a reset by the server shows as a close */ });
    this.closedPromise = new Promise((resolve) => socket.once('close', () => {
      this.closedAt = Date.now();
      this.wake();
      resolve();
    }));
  }

  /** Opens a TCP connection and sends nothing. */
  static open(port: number, host = '127.0.0.1', protocolVersion = 4): Promise<RawMqttClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host });
      socket.setNoDelay(true);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawMqttClient(socket, protocolVersion));
      });
      socket.once('error', reject);
    });
  }

  /** Opens a connection, sends a well-formed CONNECT and waits for the CONNACK (rejects when none arrives). */
  static async connect(port: number, options: RawConnectOptions = {}): Promise<ConnectResult> {
    const client = await RawMqttClient.open(port, '127.0.0.1', options.protocolVersion ?? 4);
    client.send(connectPacket(options));
    try {
      return { client, connack: await client.next('connack') };
    } catch (err) {
      client.socket.destroy();
      throw err;
    }
  }

  /** Like `connect`, but fails unless the server accepted the connection (return code 0). */
  static async connected(port: number, options: RawConnectOptions = {}): Promise<RawMqttClient> {
    const { client, connack } = await RawMqttClient.connect(port, options);
    if (connack.returnCode !== 0) throw new Error(`CONNECT ${JSON.stringify(options.clientId)} refused with return code ${connack.returnCode}`);
    return client;
  }

  get closed(): boolean { return this.closedAt !== undefined; }

  send(packet: Packet): void {
    this.socket.write(generate(packet));
  }

  sendBytes(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /**
   * The next packet the server sent, in arrival order. With `cmd`, fails when the next packet is of another type.
   * Rejects when nothing arrives within `timeoutMs` or the connection closes first.
   */
  async next<C extends Cmd>(cmd?: C, timeoutMs = DEFAULT_WAIT_MS): Promise<PacketOf<C>> {
    const packet = await this.take(timeoutMs);
    if (packet === undefined) {
      const why = this.closed ? 'the server closed the connection' : `nothing arrived within ${timeoutMs} ms`;
      throw new Error(`expected ${cmd ?? 'a packet'} but ${why}${this.parseError ? ` (parse error: ${this.parseError.message})` : ''}`);
    }
    if (cmd !== undefined && packet.cmd !== cmd) {
      throw new Error(`expected ${cmd} but received ${describePacket(packet)}`);
    }
    return packet as PacketOf<C>;
  }

  /** The next packet, or undefined when none arrives within `timeoutMs` (or the connection closes). */
  async poll(timeoutMs = 300): Promise<Packet | undefined> {
    return this.take(timeoutMs);
  }

  /** The packets received and not yet taken, removed from the inbox. */
  takeAll(): Packet[] {
    return this.inbox.splice(0);
  }

  /** Waits for the server to close the connection; resolves with the packets it sent before, or rejects if it stays open. */
  async closedByServer(timeoutMs = DEFAULT_WAIT_MS): Promise<Packet[]> {
    if (!(await this.waitClosed(timeoutMs))) {
      throw new Error(`the server did not close the connection within ${timeoutMs} ms (received: ${this.takeAll().map(describePacket).join(', ') || 'nothing'})`);
    }
    return this.takeAll();
  }

  /** Every packet that arrives within `windowMs` (the window restarts at no packet; it is a quiet period). */
  async drain(windowMs = 300): Promise<Packet[]> {
    const packets: Packet[] = [];
    for (let p = await this.take(windowMs); p !== undefined; p = await this.take(windowMs)) packets.push(p);
    return packets;
  }

  /** Resolves true once the server has closed the connection, false if it is still open after `timeoutMs`. */
  async waitClosed(timeoutMs = DEFAULT_WAIT_MS): Promise<boolean> {
    if (this.closed) return true;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs); });
    const result = await Promise.race([this.closedPromise.then(() => true as const), timedOut]);
    clearTimeout(timer);
    return result;
  }

  /** Milliseconds from `since` to the server's close, if it closed. */
  closedAfter(since: number): number | undefined {
    return this.closedAt === undefined ? undefined : this.closedAt - since;
  }

  /** Sends DISCONNECT and closes the socket. */
  async disconnect(): Promise<void> {
    if (!this.closed) {
      this.send({ cmd: 'disconnect' });
      this.socket.end();
    }
    await this.waitClosed();
    this.socket.destroy();
  }

  /** Drops the TCP connection without DISCONNECT (the network "fails"). */
  async destroy(): Promise<void> {
    this.socket.destroy();
    await this.closedPromise;
  }

  private async take(timeoutMs: number): Promise<Packet | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.inbox.length === 0 && !this.closed && !this.parseError && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now());
        this.waiter = () => { clearTimeout(timer); resolve(); };
      });
      this.waiter = undefined;
    }
    return this.inbox.shift();
  }

  private wake(): void {
    this.waiter?.();
  }

  /** Follows packet boundaries in the byte stream to note each packet's first byte. */
  private pendingBody = 0;
  private headerState: { lengthBytes: number; length: number; multiplier: number } | undefined;
  private recordFirstBytes(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.pendingBody > 0) {
        const skip = Math.min(this.pendingBody, chunk.length - i);
        this.pendingBody -= skip;
        i += skip;
        continue;
      }
      const byte = chunk[i++] as number;
      if (this.headerState === undefined) {
        this.receivedFirstBytes.push(byte);
        this.headerState = { lengthBytes: 0, length: 0, multiplier: 1 };
        continue;
      }
      this.headerState.length += (byte & 0x7f) * this.headerState.multiplier;
      this.headerState.multiplier *= 128;
      if (byte & 0x80) continue;
      this.pendingBody = this.headerState.length;
      this.headerState = undefined;
    }
  }
}

export function describePacket(packet: Packet): string {
  const { cmd } = packet;
  const id = 'messageId' in packet && packet.messageId !== undefined ? ` id=${packet.messageId}` : '';
  const topic = 'topic' in packet && typeof packet.topic === 'string' ? ` topic=${packet.topic}` : '';
  return `${cmd}${id}${topic}`;
}

export function connectPacket(options: RawConnectOptions): IConnectPacket {
  return {
    cmd: 'connect',
    protocolId: options.protocolVersion === 3 ? 'MQIsdp' : 'MQTT',
    protocolVersion: options.protocolVersion ?? 4,
    clientId: options.clientId ?? '',
    clean: options.clean ?? true,
    keepalive: options.keepalive ?? 30,
    will: options.will && {
      topic: options.will.topic,
      payload: Buffer.from(options.will.payload),
      qos: options.will.qos ?? 0,
      retain: options.will.retain ?? false,
    },
    username: options.username,
    password: options.password,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Byte-level encoders for packets that mqtt-packet's generator refuses to write (malformed on purpose).

export function remainingLength(length: number): Buffer {
  const bytes: number[] = [];
  do {
    let byte = length % 128;
    length = Math.floor(length / 128);
    if (length > 0) byte |= 0x80;
    bytes.push(byte);
  } while (length > 0);
  return Buffer.from(bytes);
}

/** A packet from its first byte (type and flags) and body, with a correct remaining length. */
export function frame(firstByte: number, ...body: Uint8Array[]): Buffer {
  const payload = Buffer.concat(body);
  return Buffer.concat([Buffer.from([firstByte]), remainingLength(payload.length), payload]);
}

export function u16(value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(value);
  return b;
}

/** A length-prefixed field; a string is UTF-8 encoded, a Buffer is taken as is (to send ill-formed UTF-8). */
export function field(value: string | Uint8Array): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  return Buffer.concat([u16(bytes.length), bytes]);
}

export interface RawConnectFields {
  protocolName?: string | Uint8Array;
  level?: number;
  /** The connect-flags byte exactly as sent; computed from the fields present when absent. */
  flags?: number;
  keepalive?: number;
  clientId?: string | Uint8Array;
  clean?: boolean;
  willTopic?: string | Uint8Array;
  willPayload?: string | Uint8Array;
  willQos?: number;
  willRetain?: boolean;
  username?: string | Uint8Array;
  password?: string | Uint8Array;
  /** Bytes appended after the last field, inside the packet. */
  trailing?: Uint8Array;
}

/** A CONNECT packet with full control over every byte, including inconsistent flags and fields. */
export function rawConnect(f: RawConnectFields): Buffer {
  const hasWill = f.willTopic !== undefined;
  const flags = f.flags ?? (
    (f.username !== undefined ? 0x80 : 0) | (f.password !== undefined ? 0x40 : 0) | (f.willRetain ? 0x20 : 0)
    | ((f.willQos ?? 0) << 3) | (hasWill ? 0x04 : 0) | ((f.clean ?? true) ? 0x02 : 0));
  const parts: Buffer[] = [
    field(f.protocolName ?? 'MQTT'), Buffer.from([f.level ?? 4, flags]), u16(f.keepalive ?? 30), field(f.clientId ?? ''),
  ];
  if (f.willTopic !== undefined) parts.push(field(f.willTopic), field(f.willPayload ?? ''));
  if (f.username !== undefined) parts.push(field(f.username));
  if (f.password !== undefined) parts.push(field(f.password));
  if (f.trailing) parts.push(Buffer.from(f.trailing));
  return frame(0x10, ...parts);
}

/** A PUBLISH with a raw topic (any bytes) and explicit flags. */
export function rawPublish(opts: { topic: string | Uint8Array; payload?: string | Uint8Array; qos?: number; dup?: boolean; retain?: boolean; messageId?: number }): Buffer {
  const qos = opts.qos ?? 0;
  const first = 0x30 | (opts.dup ? 0x08 : 0) | (qos << 1) | (opts.retain ? 0x01 : 0);
  const parts = [field(opts.topic)];
  if (qos > 0) parts.push(u16(opts.messageId ?? 1));
  parts.push(Buffer.from(opts.payload ?? ''));
  return frame(first, ...parts);
}

/** A SUBSCRIBE with raw filters (any bytes) and option bytes; `firstByte` defaults to the correct 0x82. */
export function rawSubscribe(messageId: number, subscriptions: { filter: string | Uint8Array; options: number }[], firstByte = 0x82): Buffer {
  return frame(firstByte, u16(messageId), ...subscriptions.flatMap((s) => [field(s.filter), Buffer.from([s.options])]));
}

export function rawUnsubscribe(messageId: number, filters: (string | Uint8Array)[], firstByte = 0xa2): Buffer {
  return frame(firstByte, u16(messageId), ...filters.map((f) => field(f)));
}

// ---------------------------------------------------------------------------------------------------------------

let uniqueCounter = 0;
/** A client id / topic segment unique within this process run ([0-9a-zA-Z] only, ≤ 23 chars). */
export function uniqueId(prefix = 'c'): string {
  uniqueCounter++;
  return `${prefix}${process.pid.toString(36)}${uniqueCounter.toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`.slice(0, 23);
}

/** Subscribes and waits for the SUBACK; returns the granted codes. */
export async function subscribe(client: RawMqttClient, filters: Record<string, 0 | 1 | 2>, messageId = 1): Promise<number[]> {
  client.send({ cmd: 'subscribe', messageId, subscriptions: Object.entries(filters).map(([topic, qos]) => ({ topic, qos })) });
  const suback = await client.next('suback');
  if (suback.messageId !== messageId) throw new Error(`SUBACK for ${suback.messageId}, expected ${messageId}`);
  return suback.granted as number[];
}

/** Publishes and completes the publisher side of the QoS flow (PUBACK, or PUBREC → PUBREL → PUBCOMP). */
export async function publish(client: RawMqttClient, topic: string, payload: string | Buffer, opts: { qos?: 0 | 1 | 2; retain?: boolean; messageId?: number } = {}): Promise<void> {
  const qos = opts.qos ?? 0;
  const messageId = qos > 0 ? (opts.messageId ?? 1) : undefined;
  client.send({ cmd: 'publish', topic, payload: Buffer.from(payload), qos, retain: opts.retain ?? false, dup: false, messageId });
  if (qos === 1) await client.next('puback');
  if (qos === 2) {
    await client.next('pubrec');
    client.send({ cmd: 'pubrel', messageId: messageId as number });
    await client.next('pubcomp');
  }
}

/** Waits for a PUBLISH and acknowledges it fully (PUBACK, or PUBREC → PUBREL → PUBCOMP). */
export async function receive(client: RawMqttClient, timeoutMs = DEFAULT_WAIT_MS): Promise<PacketOf<'publish'>> {
  const packet = await client.next('publish', timeoutMs);
  await acknowledge(client, packet);
  return packet;
}

export async function acknowledge(client: RawMqttClient, packet: PacketOf<'publish'>): Promise<void> {
  const messageId = packet.messageId as number;
  if (packet.qos === 1) client.send({ cmd: 'puback', messageId });
  if (packet.qos === 2) {
    client.send({ cmd: 'pubrec', messageId });
    await client.next('pubrel');
    client.send({ cmd: 'pubcomp', messageId });
  }
}

/** Closes every client given, ignoring those already closed. */
export async function closeAll(...clients: (RawMqttClient | undefined)[]): Promise<void> {
  await Promise.all(clients.map((c) => c?.destroy()));
}

/** Clients opened by one test, closed together in afterEach so a failing test leaves no socket behind. */
export class ClientPool {
  private readonly clients: RawMqttClient[] = [];

  constructor(private readonly port: () => number) {}

  async open(): Promise<RawMqttClient> {
    return this.track(await RawMqttClient.open(this.port()));
  }

  async connect(options: RawConnectOptions = {}): Promise<ConnectResult> {
    const result = await RawMqttClient.connect(this.port(), options);
    this.track(result.client);
    return result;
  }

  async connected(options: RawConnectOptions = {}): Promise<RawMqttClient> {
    const { client, connack } = await this.connect(options);
    if (connack.returnCode !== 0) throw new Error(`CONNECT ${JSON.stringify(options.clientId)} refused with return code ${connack.returnCode}`);
    return client;
  }

  track(client: RawMqttClient): RawMqttClient {
    this.clients.push(client);
    return client;
  }

  async closeAll(): Promise<void> {
    await closeAll(...this.clients.splice(0));
  }
}
