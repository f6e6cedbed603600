/**
 * A reliable, ordered message channel to one peer node, carried by whichever authenticated connection is current.
 * Survives reconnects (unacknowledged messages are written again on the next connection, the receiver drops what
 * it already had), measures liveness with PING/PONG, and bounds memory with a send window.
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../log/logger.js';
import { DATA_OVERHEAD_BYTES, DEFAULT_MAX_FRAME_BYTES, type DataFrame, type DecodedFrame, type NodeIdentity, type SessionFrame } from './codec.js';
import { newWireCounters, type ConnectionEnd, type ConnectionEndCode, type FramedConnection, type FrameHandler, type WireCounters } from './connection.js';
import { InboundStream, OutboundStream, ProtocolViolation, type OutboundMessage } from './delivery.js';
import { SendFailure } from './errors.js';

/** Well-known channels; any id 1..255 may be used. */
export const Channel = { RouteSync: 1, Forward: 2, Rpc: 3 } as const;

export interface PeerLinkOptions {
  /** Most messages in flight (sent, not acknowledged). */
  windowMessages: number;
  /** Most payload bytes in flight. */
  windowBytes: number;
  /** Payload bytes that may wait behind a full window before `send()` rejects with `send-queue-full`. */
  maxQueuedBytes: number;
  /** Socket buffer above which no more DATA is written until it drains. */
  socketHighWaterBytes: number;
  maxFrameBytes: number;
  heartbeatIntervalMs: number;
  /** A connection on which nothing arrived for this long is dropped as dead. */
  heartbeatTimeoutMs: number;
}

export const DEFAULT_LINK_OPTIONS: PeerLinkOptions = {
  windowMessages: 8192,
  windowBytes: 8 * 1024 * 1024,
  maxQueuedBytes: 64 * 1024 * 1024,
  socketHighWaterBytes: 1024 * 1024,
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
  heartbeatIntervalMs: 1000,
  heartbeatTimeoutMs: 5000,
};

export type Direction = 'inbound' | 'outbound';

export interface PeerInfo extends NodeIdentity {
  /** `ip:port` of the socket's other end. */
  remoteAddress: string;
  /** `outbound`: this node dialed; `inbound`: the peer did. */
  direction: Direction;
}

/**
 * `new`: first connection of this link; `resumed`: both streams continued where they were; `reset`: a stream
 * started over (the peer restarted or lost this link) — pending sends were failed, nothing was resent.
 */
export type SessionState = 'new' | 'resumed' | 'reset';

export interface ConnectedPeer extends PeerInfo {
  session: SessionState;
}

export interface Disconnection {
  code: ConnectionEndCode;
  detail: string;
  /** The connection had completed its SESSION exchange (`connected` was emitted for it). */
  wasConnected: boolean;
}

/** Passed with each message: `defer(p)` holds the message's acknowledgement until `p` settles. */
export class Delivery {
  private promise: PromiseLike<unknown> | undefined;
  private open = true;

  defer(handling: PromiseLike<unknown>): void {
    if (!this.open) throw new Error('Delivery.defer() must be called synchronously inside the message listener');
    this.promise = handling;
  }

  /** @internal */
  seal(): PromiseLike<unknown> | undefined {
    this.open = false;
    return this.promise;
  }
}

export interface PeerLinkEvents {
  connected: [peer: ConnectedPeer];
  disconnected: [reason: Disconnection];
  message: [channel: number, payload: Buffer, delivery: Delivery];
  /** The link was closed for good (`close()`); it never connects again. */
  closed: [];
}

export interface LinkCounters extends WireCounters {
  messagesSent: number;
  messagesReceived: number;
  resends: number;
  duplicatesDropped: number;
  acksSent: number;
  acksReceived: number;
  connects: number;
  disconnects: number;
  heartbeatTimeouts: number;
  sessionResets: number;
  sendsFailed: number;
}

export interface LinkStats extends LinkCounters {
  nodeId: string;
  connected: boolean;
  incarnation: number | undefined;
  unackedMessages: number;
  unackedBytes: number;
  queuedMessages: number;
  queuedBytes: number;
  socketBufferedBytes: number;
  /** Last PING round trip, milliseconds; undefined before the first PONG. */
  rttMs: number | undefined;
}

type LinkState = 'idle' | 'opening' | 'open' | 'closed';

export class PeerLink extends EventEmitter<PeerLinkEvents> {
  private state: LinkState = 'idle';
  private connection: FramedConnection | undefined;
  private peerInfo: PeerInfo | undefined;
  private previousIncarnation: number | undefined;
  private hadSession = false;
  private outbound: OutboundStream;
  private readonly inbound = new InboundStream();
  private readonly counters: LinkCounters = {
    ...newWireCounters(), messagesSent: 0, messagesReceived: 0, resends: 0, duplicatesDropped: 0, acksSent: 0, acksReceived: 0,
    connects: 0, disconnects: 0, heartbeatTimeouts: 0, sessionResets: 0, sendsFailed: 0,
  };
  private heartbeat: NodeJS.Timeout | undefined;
  private lastHeardAt = 0;
  private rttMs: number | undefined;
  private ackScheduled = false;
  private writableWaiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  private readonly maxPayloadBytes: number;

  constructor(readonly nodeId: string, private readonly options: PeerLinkOptions, private readonly logger: Logger) {
    super();
    this.outbound = new OutboundStream({ maxMessages: options.windowMessages, maxBytes: options.windowBytes });
    this.maxPayloadBytes = options.maxFrameBytes - DATA_OVERHEAD_BYTES;
  }

  /** Ready to carry messages (authenticated and the SESSION exchange done). */
  get connected(): boolean {
    return this.state === 'open';
  }

  /** A connection is attached (possibly still exchanging SESSION frames). */
  get attached(): boolean {
    return this.connection !== undefined;
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  /** The peer as of the latest connection (undefined before the first one). */
  get peer(): PeerInfo | undefined {
    return this.peerInfo;
  }

  /** A new message would enter the send window at once (no queueing behind it). */
  get writable(): boolean {
    return this.outbound.hasRoom;
  }

  /**
   * Queue a message; resolves once the peer acknowledged it (delivered it to its `message` listeners and, if they
   * deferred, finished handling it). Waits behind a full window. The payload must not be modified afterwards.
   */
  send(channel: number, payload: Buffer): Promise<void> {
    const refusal = this.refuseSend(channel, payload);
    if (refusal) {
      this.counters.sendsFailed++;
      return Promise.reject(refusal);
    }
    return new Promise<void>((resolve, reject) => {
      this.outbound.enqueue({ channel, payload, seq: 0, transmissions: 0, resolve, reject });
      if (this.state === 'open') this.pump();
    });
  }

  /** Resolves when the window has room again (for producers that must not queue unboundedly). */
  waitWritable(): Promise<void> {
    if (this.state === 'closed') return Promise.reject(new SendFailure('link-closed', this.nodeId, `link to ${this.nodeId} is closed`));
    if (this.outbound.hasRoom) return Promise.resolve();
    return new Promise((resolve, reject) => this.writableWaiters.push({ resolve, reject }));
  }

  stats(): LinkStats {
    return {
      ...this.counters,
      resends: this.outbound.resends,
      nodeId: this.nodeId,
      connected: this.connected,
      incarnation: this.peerInfo?.incarnation,
      unackedMessages: this.outbound.unackedMessages,
      unackedBytes: this.outbound.unackedBytes,
      queuedMessages: this.outbound.waitingMessages,
      queuedBytes: this.outbound.waitingBytes,
      socketBufferedBytes: this.connection?.bufferedBytes ?? 0,
      rttMs: this.rttMs,
    };
  }

  /**
   * Take over an authenticated connection to this peer (the transport has already decided it is the one to keep).
   * A connection already attached is closed as superseded.
   */
  attach(connection: FramedConnection, peer: PeerInfo): void {
    if (this.state === 'closed') {
      connection.close('link-removed', `link to ${this.nodeId} was removed`);
      return;
    }
    if (this.connection) this.dropConnection('duplicate-connection', 'superseded by a newer connection');
    if (this.peerInfo) this.previousIncarnation = this.peerInfo.incarnation;
    this.peerInfo = peer;
    this.connection = connection;
    this.state = 'opening';
    connection.counters = this.counters;
    connection.setMaxFrameBytes(this.options.maxFrameBytes);
    connection.write(this.sessionFrame());
    this.inbound.markAcknowledged();
    this.lastHeardAt = performance.now();
    this.startHeartbeat();
    connection.setHandler(this.handlerFor(connection));
  }

  /** Close for good: fails every pending send with `error` (default: `link-closed`) and drops the connection. */
  close(error?: SendFailure, reason: 'link-removed' | 'shutdown' = 'link-removed'): void {
    if (this.state === 'closed') return;
    const failure = error ?? new SendFailure('link-closed', this.nodeId, `link to ${this.nodeId} was closed`);
    if (this.connection) this.dropConnection(reason, `link to this node closed: ${failure.message}`);
    this.state = 'closed';
    this.failAll(this.outbound.takeAll(), failure);
    for (const waiter of this.writableWaiters.splice(0)) waiter.reject(failure);
    this.emit('closed');
  }

  // ------------------------------------------------------------------------------ connection events

  /** Events of a connection count only while it is the current one. */
  private handlerFor(connection: FramedConnection): FrameHandler {
    const current = (): boolean => this.connection === connection;
    return {
      onFrame: (frame) => { if (current()) this.onFrame(frame); },
      onChunkEnd: () => { if (current()) this.lastHeardAt = performance.now(); },
      onWritable: () => { if (current()) this.pump(); },
      onEnd: (end) => { if (current()) this.detached(end); },
    };
  }

  private onFrame(frame: DecodedFrame): void {
    switch (frame.type) {
      case 'data': return this.state === 'open' ? this.onData(frame) : this.protocolError(`DATA before SESSION`);
      case 'ack': return this.state === 'open' ? this.onAck(frame.seq) : this.protocolError(`ACK before SESSION`);
      case 'session': return this.state === 'opening' ? this.onSession(frame) : this.protocolError('second SESSION frame');
      case 'ping': return this.connection?.write({ type: 'pong', timestamp: frame.timestamp });
      case 'pong': this.rttMs = performance.now() - frame.timestamp; return;
      default: return this.protocolError(`unexpected ${frame.type.toUpperCase()} frame on an established connection`);
    }
  }

  // ------------------------------------------------------------------------------ internals

  private refuseSend(channel: number, payload: Buffer): SendFailure | undefined {
    if (this.state === 'closed') return new SendFailure('link-closed', this.nodeId, `link to ${this.nodeId} is closed`);
    if (!Number.isInteger(channel) || channel < 1 || channel > 255) return new SendFailure('bad-channel', this.nodeId, `channel must be 1..255, got ${channel}`);
    if (payload.length > this.maxPayloadBytes) {
      return new SendFailure('payload-too-large', this.nodeId, `payload of ${payload.length} bytes exceeds the ${this.maxPayloadBytes}-byte limit of a cluster frame`);
    }
    if (!this.outbound.hasRoom && this.outbound.waitingBytes + payload.length > this.options.maxQueuedBytes) {
      return new SendFailure('send-queue-full', this.nodeId,
        `${this.outbound.waitingBytes} bytes already queued for ${this.nodeId} behind a full window (limit ${this.options.maxQueuedBytes})`);
    }
    return undefined;
  }

  private sessionFrame(): SessionFrame {
    return { type: 'session', session: this.outbound.session, peerSession: this.inbound.peerSession, received: this.inbound.handled };
  }

  private onSession(frame: SessionFrame): void {
    const inbound = this.inbound.begin(frame.session);
    let outbound;
    try {
      outbound = this.outbound.open(frame.peerSession === this.outbound.session, frame.received);
    } catch (err) {
      return this.protocolError(err instanceof Error ? err.message : String(err));
    }
    if (!outbound.resumed && outbound.failed.length > 0) this.failAll(outbound.failed, this.resetFailure(outbound.failed.length));
    const session: SessionState = !this.hadSession ? 'new' : inbound === 'resumed' && outbound.resumed ? 'resumed' : 'reset';
    if (session === 'reset') this.counters.sessionResets++;
    this.hadSession = true;
    this.state = 'open';
    this.counters.connects++;
    this.emit('connected', { ...(this.peerInfo as PeerInfo), session });
    this.pump();
    this.releaseWritableWaiters();
  }

  private resetFailure(count: number): SendFailure {
    const incarnation = this.peerInfo?.incarnation;
    if (this.previousIncarnation !== undefined && incarnation !== this.previousIncarnation) {
      return new SendFailure('peer-restarted', this.nodeId,
        `peer ${this.nodeId} restarted (incarnation ${this.previousIncarnation} → ${incarnation}); ${count} unacknowledged messages were not resent`);
    }
    return new SendFailure('peer-session-lost', this.nodeId,
      `peer ${this.nodeId} no longer holds this link's session; ${count} unacknowledged messages were not resent`);
  }

  private onData(frame: DataFrame): void {
    const arrival = this.inbound.accept(frame.seq);
    if (arrival === 'duplicate') {
      this.counters.duplicatesDropped++;
      return;
    }
    if (arrival === 'gap') return this.protocolError(`expected sequence number ${this.inbound.received + 1}, got ${frame.seq}`);
    this.counters.messagesReceived++;
    const delivery = new Delivery();
    try {
      this.emit('message', frame.channel, frame.payload, delivery);
    } catch (err) {
      this.logger.error({ err, peer: this.nodeId, channel: frame.channel }, 'cluster message listener threw; message counted as handled');
    }
    const deferred = delivery.seal();
    const finish = this.inbound.delivered(frame.seq, deferred !== undefined);
    if (deferred && finish) {
      deferred.then(() => this.handlingFinished(finish), (err: unknown) => {
        this.logger.error({ err, peer: this.nodeId, channel: frame.channel }, 'deferred handling of a cluster message failed; acknowledged anyway');
        this.handlingFinished(finish);
      });
    }
    this.scheduleAck();
  }

  private handlingFinished(finish: () => void): void {
    finish();
    this.scheduleAck();
  }

  private onAck(seq: number): void {
    this.counters.acksReceived++;
    try {
      this.outbound.acknowledge(seq);
    } catch (err) {
      if (err instanceof ProtocolViolation) return this.protocolError(err.message);
      throw err;
    }
    this.pump();
    this.releaseWritableWaiters();
  }

  /** One cumulative ACK per turn of the event loop, after every frame that arrived in it. */
  private scheduleAck(): void {
    if (this.ackScheduled) return;
    this.ackScheduled = true;
    setImmediate(() => {
      this.ackScheduled = false;
      if (this.state !== 'open' || !this.connection) return;
      const seq = this.inbound.ackDue();
      if (seq === undefined) return;
      this.counters.acksSent++;
      this.connection.write({ type: 'ack', seq });
    });
  }

  /** Write window messages not yet on this connection, until the socket buffer is full. */
  private pump(): void {
    const connection = this.connection;
    if (this.state !== 'open' || !connection) return;
    for (;;) {
      if (connection.congested) {
        connection.wantWritable();
        return;
      }
      const message = this.outbound.nextToTransmit();
      if (!message) return;
      if (message.transmissions === 1) this.counters.messagesSent++;
      connection.write({ type: 'data', channel: message.channel, seq: message.seq, payload: message.payload });
    }
  }

  private releaseWritableWaiters(): void {
    if (this.writableWaiters.length === 0 || !this.outbound.hasRoom) return;
    for (const waiter of this.writableWaiters.splice(0)) waiter.resolve();
  }

  private failAll(messages: OutboundMessage[], failure: SendFailure): void {
    this.counters.sendsFailed += messages.length;
    for (const message of messages) message.reject(failure);
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    this.heartbeat = setInterval(() => this.beat(), this.options.heartbeatIntervalMs);
    this.heartbeat.unref();
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  private beat(): void {
    const connection = this.connection;
    if (!connection) return;
    const now = performance.now();
    const silentMs = now - this.lastHeardAt;
    if (silentMs > this.options.heartbeatTimeoutMs) {
      this.counters.heartbeatTimeouts++;
      connection.destroy({ code: 'heartbeat-timeout', detail: `nothing received from ${this.nodeId} for ${Math.round(silentMs)} ms` });
      return;
    }
    connection.write({ type: 'ping', timestamp: now });
  }

  private protocolError(detail: string): void {
    this.logger.error({ peer: this.nodeId, detail }, 'cluster peer broke the transport protocol; dropping the connection');
    const connection = this.connection;
    if (!connection) return;
    connection.close('protocol-error', detail);
  }

  /** Close the current connection on purpose; the link stays (it will get another connection). */
  private dropConnection(reason: 'duplicate-connection' | 'link-removed' | 'shutdown', detail: string): void {
    this.connection?.close(reason, detail);
  }

  /** The current connection ended; `disconnected` is emitted even if it never got past the SESSION exchange. */
  private detached(end: ConnectionEnd): void {
    const wasConnected = this.state === 'open';
    this.connection = undefined;
    this.stopHeartbeat();
    if (this.state !== 'closed') this.state = 'idle';
    this.counters.disconnects++;
    this.emit('disconnected', { code: end.code, detail: end.detail, wasConnected });
  }
}
