import { mkdirSync } from 'node:fs';
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { Aedes, type AedesPublishPacket, type Client } from 'aedes';
import type { BrokerConfig } from '../config/types.js';
import { AdminServer } from '../admin/server.js';
import { BrokerMetrics, type QosLabel } from '../admin/metrics.js';
import type { Logger } from '../log/logger.js';
import { startListener, type ConnectionInfo, type RunningListener } from '../mqtt/listeners.js';
import { PacketSizeGuard } from '../mqtt/packet-size-guard.js';
import { clientsOf, interceptReceivedBytes, subscriptionsOf } from '../mqtt/aedes-internals.js';
import { withConnectPolicy } from '../mqtt/connect-policy.js';
import { enforceProtocolChecks } from '../mqtt/protocol-checks.js';
import { createSecurity, type Security } from '../mqtt/security.js';
import { SharedSubscriptions } from '../mqtt/shared-subscriptions.js';
import { openStore, type NodeStore } from '../store/index.js';
import { registerNodeApi } from './api.js';
import { publishOrphanedWills } from './orphaned-wills.js';
import { SysTopicPublisher } from './sys-topics.js';
import { ClusterNode } from '../cluster/cluster.js';
import { withSessionTakeover } from '../cluster/takeover.js';
import { clusterEnabled } from '../config/load.js';
import { LinkAgent } from '../link/agent.js';

export interface ListenerAddress {
  name: string;
  protocol: string;
  host: string;
  port: number;
}

/**
 * One broker node: store, aedes, listeners and admin endpoint, started and stopped in dependency order.
 * The cluster and link modules plug in through `aedes`, `store`, `metrics` and `admin`.
 */
export class BrokerNode {
  readonly metrics = new BrokerMetrics();
  readonly admin: AdminServer;
  readonly startedAt = new Date();
  private readonly connectionInfo = new WeakMap<Duplex, ConnectionInfo>();
  private listeners: RunningListener[] = [];
  private sysTopics?: SysTopicPublisher;
  private openConnections = 0;
  private stopping?: Promise<void>;
  private requestStop!: () => void;
  /** Resolves when stop() is called: a start still waiting for the regional table gives up. */
  private readonly stopRequested = new Promise<void>((resolve) => { this.requestStop = resolve; });
  private _store?: NodeStore;
  private _aedes?: Aedes;
  private _security?: Security;
  private _adminAddress?: { host: string; port: number };
  private _cluster?: ClusterNode;
  private _shared?: SharedSubscriptions;
  private _links?: LinkAgent;

  constructor(readonly config: BrokerConfig, readonly logger: Logger) {
    this.admin = new AdminServer(logger.child({ component: 'admin' }));
  }

  get store(): NodeStore { return must(this._store, 'store'); }
  get aedes(): Aedes { return must(this._aedes, 'aedes'); }
  get security(): Security { return must(this._security, 'security'); }
  /** The regional cluster this node belongs to; undefined for a standalone node. */
  get cluster(): ClusterNode | undefined { return this._cluster; }
  get ready(): boolean { return this._store !== undefined && this.listeners.length === this.config.listeners.length && !this.stopping; }
  get connectionCount(): number { return this.openConnections; }
  get adminAddress(): { host: string; port: number } | undefined { return this._adminAddress; }

  listenerAddresses(): ListenerAddress[] {
    return this.listeners.map((l) => ({ name: l.config.name, protocol: l.config.protocol, host: l.address.address, port: l.address.port }));
  }

  connectionInfoOf(client: Client): ConnectionInfo | undefined {
    return this.connectionInfo.get(client.conn as Duplex);
  }

  /** Admin first (so /healthz answers while the store opens), then store, aedes, listeners. */
  async start(): Promise<void> {
    const { config } = this;
    registerNodeApi(this);
    const adminAddress = await this.admin.listen(config.admin.host, config.admin.port);
    this._adminAddress = { host: adminAddress.address, port: adminAddress.port };
    mkdirSync(config.node.dataDir, { recursive: true });
    this._store = await openStore({
      dir: config.node.dataDir,
      durability: config.store.durability,
      commitDelayMs: config.store.commitDelayMs,
      maxSizeMb: config.store.maxSizeMb,
      maxQueuedMessages: config.limits.maxQueuedMessages,
      logger: this.logger.child({ component: 'store' }),
      onWriteLatency: (seconds) => this.metrics.storeWriteSeconds.observe(seconds),
      onQueueFull: (clientId, topic) => {
        this.metrics.messagesDropped.inc({ reason: 'queue_full' });
        this.logger.warn({ clientId, topic }, 'session queue full: message not queued');
      },
    });
    this._security = createSecurity(config.auth, {
      logger: this.logger.child({ component: 'auth' }),
      metrics: this.metrics,
      connectionInfo: (client) => this.connectionInfoOf(client),
      listeners: config.listeners,
    });
    this._aedes = await this.createAedes();
    this._shared = SharedSubscriptions.attach(this.aedes, this.store.persistence, { logger: this.logger, registry: this.metrics.registry });
    this.registerStateGauges();
    if (clusterEnabled(config)) {
      this._cluster = await ClusterNode.create({ config, logger: this.logger, metrics: this.metrics, admin: this.admin, store: this.store, aedes: this.aedes, shared: this._shared });
    }
    // The embedded agent's restored routes are in the node's lane before the node joins (see ClusterNode.create).
    if (config.links.file) this._links = await this.startLinks(config.links.file);
    if (this._cluster) {
      await this._cluster.join();
      await this.untilRegionalTable(this._cluster);
      if (this.stopping) return;
    }
    this.publishOrphanedWills();
    for (const listenerConfig of config.listeners) {
      const listener = await startListener(listenerConfig, (stream, info, req) => this.onConnection(stream, info, req));
      this.listeners.push(listener);
      this.logger.info({ listener: listenerConfig.name, protocol: listenerConfig.protocol, address: `${listener.address.address}:${listener.address.port}` }, 'listening');
    }
    this.sysTopics = new SysTopicPublisher(this, config.mqtt.sysInterval);
    this.logger.info({ cluster: config.node.clusterName, incarnation: this.store.incarnation, admin: `${adminAddress.address}:${adminAddress.port}` }, 'node ready');
  }

  /**
   * Graceful stop: refuse new connections, give in-flight acknowledgements up to `drainTimeoutMs` to finish,
   * disconnect clients, flush and close the store.
   */
  stop(): Promise<void> {
    this.requestStop();
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    this.sysTopics?.stop();
    await Promise.all(this.listeners.map((l) => l.close()));
    await this._links?.stop();
    if (this._aedes) {
      await this.drainInflight(this.config.mqtt.drainTimeoutMs);
      const aedes = this._aedes;
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
    }
    await this._cluster?.stop();
    this._security?.close();
    await this._store?.close();
    await this.admin.close();
    this.logger.info('node stopped');
  }

  /**
   * Clients are accepted only once the regional route table is complete (or the bounded wait gave up): a publish
   * routed with a partial table would be acknowledged and miss the subscribers on the nodes whose lanes are not
   * here yet. The listeners stay closed meanwhile, and /readyz answers 503 (see cluster/README.md).
   */
  private async untilRegionalTable(cluster: ClusterNode): Promise<void> {
    if (cluster.readiness.isReady) return;
    this.logger.info({ maxWaitSeconds: this.config.cluster.tableWaitSeconds }, 'waiting for the regional route table before accepting clients');
    await Promise.race([cluster.tableReady, this.stopRequested]);
  }

  /**
   * Wills left by a crash of the previous incarnation, published once the cluster's table and the links are there
   * (they reach every subscriber of the region and the links, like any publish). In the background: a copy for a
   * node or link agent that is restarting may take a while, and must not hold the listeners closed.
   */
  private publishOrphanedWills(): void {
    publishOrphanedWills(this.aedes, this.store.persistence, this.config.node.name, this.logger).catch((err: Error) => {
      if (!this.stopping) this.logger.warn({ err: err.message }, 'wills of clients orphaned by an earlier incarnation: not all published');
    });
  }

  /** The embedded link agent (`--links <file>`). */
  private async startLinks(file: string): Promise<LinkAgent> {
    return LinkAgent.start({
      clusterName: this.config.node.clusterName, nodeName: this.config.node.name, logger: this.logger, metrics: this.metrics,
      admin: this.admin, store: this.store, aedes: this.aedes, security: this.security, region: this._cluster,
    }, { file, routeTtlMs: this.config.cluster.routeTtlSeconds * 1000 });
  }

  private async drainInflight(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && this.pendingAcknowledgements() > 0) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Writes the node has still to flush to clients' sockets; acks in progress keep these non-zero. */
  private pendingAcknowledgements(): number {
    let pending = 0;
    for (const client of clientsOf(this.aedes)) {
      const conn = client.conn as Duplex;
      pending += conn.writableLength ?? 0;
    }
    return pending;
  }

  private async createAedes(): Promise<Aedes> {
    const { limits } = this.config;
    const hooks = this.security.hooks;
    const metrics = this.metrics;
    const aedes = await Aedes.createBroker({
      id: `${this.config.node.name}.${this.store.incarnation}`,
      persistence: this.store.persistence,
      maxClientsIdLength: limits.maxClientIdLength,
      // aedes would refuse with CONNACK 6, reserved in MQTT 3.1.1: withConnectPolicy enforces maxKeepalive.
      keepaliveLimit: 0,
      maxInflightInbound: limits.maxInflightInbound,
      maxTopicLevels: limits.maxTopicLevels,
      ...hooks,
      published: (packet, client, done) => {
        const local = (next: (err?: Error | null) => void): void => {
          if (this._cluster) return this._cluster.published(packet, client, next);
          if (this._shared) return this._shared.published(packet, client, next);
          next(null);
        };
        if (this._links) return this._links.published(packet, client, local, done);
        local(done);
      },
      // Takeover after authentication: an unauthenticated CONNECT never closes a connection on another node.
      ...withSessionTakeover(withConnectPolicy(hooks, limits, (client, refusal) => {
        metrics.connectionsRefused.inc({ reason: refusal.reason });
        this.logger.info({ clientId: client.id, remote: this.connectionInfoOf(client)?.remoteAddress, reason: refusal.detail }, 'connection refused');
      }), () => this._cluster?.takeover),
      authorizeForward(client, packet) {
        const forwarded = hooks.authorizeForward(client, packet);
        if (forwarded) {
          const qos = String(forwarded.qos) as QosLabel;
          metrics.messagesOutByQos[qos].inc();
          metrics.bytesOutByQos[qos].inc(forwarded.payload.length);
        }
        return forwarded;
      },
    });
    aedes.on('publish', (packet: AedesPublishPacket, client: Client | null) => {
      if (!client) return;
      const qos = String(packet.qos) as QosLabel;
      metrics.messagesInByQos[qos].inc();
      metrics.bytesInByQos[qos].inc(packet.payload.length);
    });
    aedes.on('client', () => metrics.connectionsAccepted.inc());
    aedes.on('clientError', (client: Client, err: Error) => {
      this.logger.info({ clientId: client.id, err: err.message }, 'client error: connection closed');
    });
    aedes.on('connectionError', (client: Client, err: Error & { errorCode?: number }) => {
      // aedes marks the CONNACK 0x01 refusal of an unsupported protocol level with errorCode 1.
      metrics.connectionsRefused.inc({ reason: err.errorCode === 1 ? 'unsupported_protocol' : 'protocol_error' });
      this.logger.info({ remote: this.connectionInfoOf(client)?.remoteAddress, err: err.message }, 'connection error before CONNECT completed');
    });
    aedes.on('keepaliveTimeout', (client: Client) => {
      metrics.connectionsRefused.inc({ reason: 'keepalive_timeout' });
      this.logger.info({ clientId: client.id }, 'keepalive timeout');
    });
    return aedes;
  }

  private registerStateGauges(): void {
    const connected = (): Client[] => clientsOf(this.aedes).filter((c) => c.connected);
    this.metrics.gauge('meridian_sessions_connected', 'Connected client sessions', () => connected().length);
    this.metrics.gauge('meridian_subscriptions', 'Subscriptions of connected clients', () =>
      connected().reduce((n, c) => n + Object.keys(subscriptionsOf(c)).length, 0));
    this.metrics.gauge('meridian_sessions_persistent', 'Persistent sessions with stored subscriptions (online or offline)', async () =>
      (await this.persistenceCounts()).clients);
  }

  private async persistenceCounts(): Promise<{ clients: number; subscriptions: number }> {
    const persistence = this.store.persistence as { countOffline(): Promise<{ clientsCount: number; subsCount: number }> };
    const counts = await persistence.countOffline();
    return { clients: counts.clientsCount, subscriptions: counts.subsCount };
  }

  private onConnection(stream: Duplex, info: ConnectionInfo, req?: http.IncomingMessage): void {
    if (this.stopping) {
      stream.destroy();
      return;
    }
    if (this.openConnections >= this.config.limits.maxConnections) {
      this.metrics.connectionsRefused.inc({ reason: 'max_connections' });
      this.logger.warn({ remote: info.remoteAddress, limit: this.config.limits.maxConnections }, 'connection refused: max connections reached');
      stream.destroy();
      return;
    }
    this.openConnections++;
    this.metrics.connections.inc();
    stream.once('close', () => {
      this.openConnections--;
      this.metrics.connections.dec();
    });
    stream.on('error', () => { /* reported by aedes as clientError/connectionError */ });
    this.connectionInfo.set(stream, info);
    const client = this.aedes.handle(stream, req);
    enforceProtocolChecks(client);
    this.guardPacketSize(client, info);
  }

  private guardPacketSize(client: Client, info: ConnectionInfo): void {
    const guard = new PacketSizeGuard(this.config.limits.maxPacketSize);
    interceptReceivedBytes(client, (chunk) => {
      const verdict = guard.feed(chunk);
      if (verdict.ok) return true;
      this.metrics.connectionsRefused.inc({ reason: verdict.reason });
      this.logger.warn({ clientId: client.id, remote: info.remoteAddress, reason: verdict.detail }, 'connection closed: bad packet');
      (client.conn as Duplex).destroy();
      return false;
    });
  }
}

function must<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`node not started: ${what} is not open`);
  return value;
}
