/**
 * The cluster transport of one node: the listener that authenticates peers, the dialer, and the set of peer links
 * by node id — one link (and one connection at a time) per peer.
 */
import { EventEmitter } from 'node:events';
import net, { type AddressInfo, type Server, type Socket } from 'node:net';
import tls, { type ConnectionOptions, type TlsOptions } from 'node:tls';
import type { Logger } from '../../log/logger.js';
import { authenticate, type HandshakeFailure, type HandshakeFailureReason } from './authenticate.js';
import { DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
import { HANDSHAKE_MAX_FRAME_BYTES, type NodeIdentity, type RefusalReason } from './codec.js';
import { FramedConnection } from './connection.js';
import { PersistentDialer } from './dialer.js';
import { SendFailure } from './errors.js';
import { AcceptorHandshake, DialerHandshake, refusalMessage } from './handshake.js';
import {
  DEFAULT_LINK_OPTIONS, PeerLink,
  type ConnectedPeer, type Delivery, type Direction, type Disconnection, type LinkStats, type PeerLinkOptions,
} from './peer-link.js';

export interface ClusterTransportOptions {
  /** This node: cluster name, node id, role, incarnation, advertised cluster address. */
  identity: NodeIdentity;
  /** Shared cluster secret (see `readClusterSecret`); never sent. */
  secret: Buffer;
  logger: Logger;
  /** With TLS, the listener is a TLS server and dials use TLS; the options go to Node's tls module unchanged. */
  tls?: { server: TlsOptions; client: ConnectionOptions };
  link?: Partial<PeerLinkOptions>;
  /** From TCP connect to authenticated, per attempt. */
  handshakeTimeoutMs?: number;
  backoff?: Partial<BackoffOptions>;
  /** Local address outgoing connections are made from (the cluster interface); default: the OS chooses. */
  dialFrom?: string;
}

export type TransportFailureReason = HandshakeFailureReason | 'tls-error';

export interface HandshakeFailureEvent extends HandshakeFailure {
  side: 'dialer' | 'acceptor';
  /** `ip:port` of the other end. */
  remoteAddress: string;
}

export interface TransportEvents {
  peerConnected: [peer: ConnectedPeer];
  /** Follows a `peerConnected` when that connection ends. */
  peerDisconnected: [nodeId: string, reason: Disconnection];
  message: [nodeId: string, channel: number, payload: Buffer, delivery: Delivery];
  handshakeFailed: [failure: HandshakeFailureEvent];
}

export interface TransportStats {
  connectionsAccepted: number;
  connectionsDialed: number;
  /** Dials that never reached a handshake (refused, unreachable, TLS failure). */
  dialFailures: number;
  handshakeFailures: Record<TransportFailureReason, number>;
  peers: LinkStats[];
}

/** A dial that did not end with an authenticated link. */
export class DialFailure extends Error {
  override readonly name = 'DialFailure';
  constructor(readonly address: string, readonly reason: TransportFailureReason | 'connect-failed', message: string) {
    super(message);
  }
}

const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;
const REFUSALS: ReadonlySet<string> = new Set<RefusalReason>(['wrong-secret', 'wrong-cluster', 'version-mismatch', 'same-node-id', 'protocol-error', 'unknown']);

/** `host:port` or `[v6]:port`. */
export function parseClusterAddress(address: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(address.trim());
  const port = Number(match?.[3]);
  if (!match || port < 1 || port > 65535) throw new Error(`cluster address '${address}' is not host:port`);
  return { host: (match[1] ?? match[2]) as string, port };
}

export class ClusterTransport extends EventEmitter<TransportEvents> {
  private readonly links = new Map<string, PeerLink>();
  private readonly dialers = new Map<string, PersistentDialer>();
  private readonly handshaking = new Set<FramedConnection>();
  /** Addresses of `connect` dialed at least once (the first attempt ended). */
  private readonly dialedOnce = new Set<string>();
  private readonly linkOptions: PeerLinkOptions;
  private readonly backoff: BackoffOptions;
  private readonly handshakeTimeoutMs: number;
  private readonly logger: Logger;
  private server: Server | undefined;
  private closed = false;
  private readonly counters = {
    connectionsAccepted: 0,
    connectionsDialed: 0,
    dialFailures: 0,
    handshakeFailures: {
      'wrong-secret': 0, 'wrong-cluster': 0, 'version-mismatch': 0, 'same-node-id': 0, 'protocol-error': 0, unknown: 0,
      timeout: 0, 'connection-lost': 0, 'tls-error': 0,
    } satisfies Record<TransportFailureReason, number>,
  };

  constructor(private readonly options: ClusterTransportOptions) {
    super();
    this.linkOptions = { ...DEFAULT_LINK_OPTIONS, ...options.link };
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    this.logger = options.logger.child({ component: 'cluster-transport', node: options.identity.nodeId });
  }

  get identity(): NodeIdentity {
    return this.options.identity;
  }

  /** Start the cluster listener; resolves with the bound address (port 0 picks a free port). */
  listen(port: number, host = '0.0.0.0'): Promise<AddressInfo> {
    if (this.server) return Promise.reject(new Error('cluster transport is already listening'));
    const server = this.options.tls
      ? tls.createServer(this.options.tls.server, (socket) => this.accept(socket))
      : net.createServer((socket) => this.accept(socket));
    if (this.options.tls) {
      server.on('tlsClientError', (err, socket) => {
        this.recordFailure('acceptor', `${socket.remoteAddress}:${socket.remotePort}`, { reason: 'tls-error', detail: err.message, origin: 'local' });
      });
    }
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        server.on('error', (err) => this.logger.error({ err }, 'cluster listener error'));
        const address = server.address() as AddressInfo;
        this.logger.info({ host: address.address, port: address.port, tls: Boolean(this.options.tls) }, 'cluster listener started');
        resolve(address);
      });
    });
  }

  /** Keep `address` dialed: connect now and redial with back-off whenever the link is down. Idempotent. */
  connect(address: string): void {
    if (this.closed || this.dialers.has(address)) return;
    parseClusterAddress(address);
    const dialer = new PersistentDialer(address, (a) => this.dial(a).finally(() => this.dialedOnce.add(a)), this.backoff, this.logger);
    this.dialers.set(address, dialer);
    dialer.start();
  }

  /** Whether `address` (given to `connect`) was dialed at least once, with or without success. */
  dialAttempted(address: string): boolean {
    return this.dialedOnce.has(address);
  }

  /** Stop redialing `address` (the link, if any, stays until `removePeer`). */
  disconnect(address: string): void {
    this.dialers.get(address)?.stop();
    this.dialers.delete(address);
  }

  /** One dial attempt: connect, authenticate, attach to the peer's link. */
  async dial(address: string): Promise<PeerLink> {
    if (this.closed) throw new DialFailure(address, 'connect-failed', 'cluster transport is closed');
    const connection = await this.openConnection(address);
    this.counters.connectionsDialed++;
    const outcome = await this.runHandshake(connection, new DialerHandshake(this.handshakeConfig()), 'dialer');
    if (!outcome.ok) throw new DialFailure(address, outcome.failure.reason, `${address}: ${outcome.failure.reason}: ${outcome.failure.detail}`);
    return this.adopt(connection, outcome.peer, 'outbound');
  }

  peer(nodeId: string): PeerLink | undefined {
    return this.links.get(nodeId);
  }

  /**
   * The link to `nodeId`, created if needed before the node ever connected: sends made on it wait for the first
   * connection (they stay pending until then, or until `removePeer`).
   */
  ensurePeer(nodeId: string): PeerLink {
    if (this.closed) throw new Error('cluster transport is closed');
    return this.links.get(nodeId) ?? this.createLink(nodeId);
  }

  peers(): PeerLink[] {
    return [...this.links.values()];
  }

  /** Send to a peer this node has a link to (see PeerLink.send). */
  send(nodeId: string, channel: number, payload: Buffer): Promise<void> {
    const link = this.links.get(nodeId);
    if (!link) return Promise.reject(new SendFailure('unknown-peer', nodeId, `no link to cluster node ${nodeId}`));
    return link.send(channel, payload);
  }

  /** Forget a peer: its pending sends fail (`link-closed`), its connection closes. A later connection starts afresh. */
  removePeer(nodeId: string, reason = 'removed from the cluster'): void {
    const link = this.links.get(nodeId);
    if (!link) return;
    this.links.delete(nodeId);
    link.close(new SendFailure('link-closed', nodeId, `link to ${nodeId} closed: ${reason}`));
  }

  stats(): TransportStats {
    return {
      connectionsAccepted: this.counters.connectionsAccepted,
      connectionsDialed: this.counters.connectionsDialed,
      dialFailures: this.counters.dialFailures,
      handshakeFailures: { ...this.counters.handshakeFailures },
      peers: this.peers().map((link) => link.stats()),
    };
  }

  /** Stop dialing and listening, close every link (pending sends fail), wait for the listener to close. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const dialer of this.dialers.values()) dialer.stop();
    this.dialers.clear();
    for (const [nodeId, link] of this.links) {
      link.close(new SendFailure('link-closed', nodeId, 'cluster transport is shutting down'), 'shutdown');
    }
    this.links.clear();
    for (const connection of this.handshaking) connection.destroy({ code: 'local-close', detail: 'cluster transport is shutting down' });
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  // ------------------------------------------------------------------------------ internals

  private handshakeConfig(): { identity: NodeIdentity; secret: Buffer } {
    return { identity: this.options.identity, secret: this.options.secret };
  }

  private newConnection(socket: Socket): FramedConnection {
    return new FramedConnection(socket, { maxFrameBytes: HANDSHAKE_MAX_FRAME_BYTES, highWaterBytes: this.linkOptions.socketHighWaterBytes });
  }

  private accept(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.counters.connectionsAccepted++;
    const connection = this.newConnection(socket);
    void this.runHandshake(connection, new AcceptorHandshake(this.handshakeConfig()), 'acceptor').then((outcome) => {
      if (outcome.ok) this.adopt(connection, outcome.peer, 'inbound');
    });
  }

  private async runHandshake(
    connection: FramedConnection,
    machine: DialerHandshake | AcceptorHandshake,
    side: 'dialer' | 'acceptor',
  ): ReturnType<typeof authenticate> {
    this.handshaking.add(connection);
    const outcome = await authenticate(connection, machine, this.handshakeTimeoutMs);
    this.handshaking.delete(connection);
    if (!outcome.ok) this.recordFailure(side, connection.remote, outcome.failure);
    else if (this.closed) {
      connection.close('shutdown', 'cluster transport is shutting down');
      return { ok: false, failure: { reason: 'connection-lost', detail: 'cluster transport is shutting down', origin: 'local' } };
    }
    return outcome;
  }

  private recordFailure(side: 'dialer' | 'acceptor', remoteAddress: string, failure: HandshakeFailure | { reason: 'tls-error'; detail: string; origin: 'local' }): void {
    this.counters.handshakeFailures[failure.reason]++;
    const fields = { side, remote: remoteAddress, reason: failure.reason, refusedBy: failure.origin === 'local' ? 'this node' : 'peer', detail: failure.detail };
    if (REFUSALS.has(failure.reason)) this.logger.error(fields, refusalMessage(failure.reason as RefusalReason));
    else this.logger.warn(fields, `cluster handshake failed: ${failure.reason}`);
    if (failure.reason !== 'tls-error') this.emit('handshakeFailed', { ...failure, side, remoteAddress });
  }

  private openConnection(address: string): Promise<FramedConnection> {
    const { host, port } = parseClusterAddress(address);
    return new Promise((resolve, reject) => {
      const localAddress = this.options.dialFrom;
      const tcp = (): net.Socket => net.connect({ host, port, localAddress });
      const socket = this.options.tls ? tls.connect({ ...this.options.tls.client, host, port, socket: localAddress ? tcp() : undefined }) : tcp();
      const readyEvent = this.options.tls ? 'secureConnect' : 'connect';
      const fail = (detail: string): void => {
        clearTimeout(timer);
        socket.destroy();
        this.counters.dialFailures++;
        reject(new DialFailure(address, 'connect-failed', `cannot connect to cluster peer ${address}: ${detail}`));
      };
      const timer = setTimeout(() => fail(`no connection within ${this.handshakeTimeoutMs} ms`), this.handshakeTimeoutMs);
      timer.unref();
      socket.once('error', (err) => fail(err.message));
      socket.once(readyEvent, () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(this.newConnection(socket));
      });
    });
  }

  /** A peer authenticated: attach the connection to its link, unless a better connection to it is already up. */
  private adopt(connection: FramedConnection, identity: NodeIdentity, direction: Direction): PeerLink {
    const existing = this.links.get(identity.nodeId);
    if (existing?.attached && this.keepsExisting(existing, direction)) {
      connection.close('duplicate-connection', `a connection dialed by ${this.preferredDialer(identity.nodeId)} is already up`);
      return existing;
    }
    const link = existing ?? this.createLink(identity.nodeId);
    link.attach(connection, { ...identity, remoteAddress: connection.remote, direction });
    return link;
  }

  /**
   * Two connections to one peer: a newer one dialed the same way replaces the old (the dialer gave up on it);
   * of two dialed in opposite directions (simultaneous dial) both nodes keep the one dialed by the smaller node id.
   */
  private keepsExisting(link: PeerLink, incoming: Direction): boolean {
    const current = link.peer?.direction;
    if (current === undefined || current === incoming) return false;
    const preferred: Direction = this.options.identity.nodeId < link.nodeId ? 'outbound' : 'inbound';
    return current === preferred;
  }

  private preferredDialer(peerNodeId: string): string {
    return this.options.identity.nodeId < peerNodeId ? this.options.identity.nodeId : peerNodeId;
  }

  private createLink(nodeId: string): PeerLink {
    const link = new PeerLink(nodeId, this.linkOptions, this.logger.child({ peer: nodeId }));
    link.on('connected', (peer) => {
      this.logger.info({ peer: nodeId, role: peer.role, incarnation: peer.incarnation, address: peer.address, direction: peer.direction, session: peer.session },
        'cluster peer connected');
      this.emit('peerConnected', peer);
    });
    link.on('disconnected', (reason) => {
      if (!reason.wasConnected) {
        this.logger.debug({ peer: nodeId, code: reason.code, detail: reason.detail }, 'cluster connection ended before its session opened');
        return;
      }
      this.logger.info({ peer: nodeId, code: reason.code, detail: reason.detail }, 'cluster peer disconnected');
      this.emit('peerDisconnected', nodeId, reason);
    });
    link.on('message', (channel, payload, delivery) => this.emit('message', nodeId, channel, payload, delivery));
    this.links.set(nodeId, link);
    return link;
  }
}
