import { performance } from 'node:perf_hooks';
import type { Logger } from '../log/logger.js';
import { CodecError, decodeMessage, encodeMessage, RouteSyncError, type RouteSync } from '../routesync/index.js';
import { Channel } from './transport/index.js';
import type { ClusterMetrics } from './metrics.js';

export interface RouteSyncTransport {
  send(nodeId: string, channel: number, payload: Buffer): Promise<void>;
  /** Drops the current connection to a peer that broke the protocol (it reconnects and starts over). */
  resetPeer(nodeId: string, reason: string): void;
}

/**
 * Drives the pure route-sync state machine: feeds it transport messages and time, and sends what it produces.
 * Time comes from the monotonic clock; one timer, re-armed at the machine's next wake-up.
 */
export class RouteSyncDriver {
  private timer?: NodeJS.Timeout;
  private kickScheduled = false;
  private stopped = false;

  constructor(
    readonly sync: RouteSync,
    private readonly transport: RouteSyncTransport,
    private readonly metrics: ClusterMetrics,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.run();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  subscribe(filter: string, routeId: string): void {
    this.sync.subscribe(filter, performance.now(), routeId);
    this.kick();
  }

  unsubscribe(filter: string, routeId: string): void {
    this.sync.unsubscribe(filter, performance.now(), routeId);
    this.kick();
  }

  /** Every route learned from other actors' lanes, as [filter, owner, route id] (this actor's own lane excepted). */
  *learnedRoutes(): Generator<[string, string, string]> {
    for (const lane of this.sync.lanes()) {
      if (lane.local) continue;
      for (const route of this.sync.laneRoutes(lane.actor)) yield [route.filter, lane.actor, route.routeId];
    }
  }

  connect(peer: string): void {
    this.sync.connect(peer, performance.now());
    this.kick();
  }

  disconnect(peer: string): void {
    this.sync.disconnect(peer);
  }

  receive(peer: string, payload: Buffer): void {
    try {
      const message = decodeMessage(payload);
      if (message.type === 'ops') {
        this.metrics.routeBatches.inc({ direction: 'received' });
        this.metrics.routeOps.inc({ direction: 'received' }, message.deltas.reduce((n, d) => n + d.ops.length, 0));
      }
      if (message.type === 'snapshot') this.metrics.bootstraps.inc({ direction: 'received' });
      this.sync.receive(peer, message, performance.now());
    } catch (err) {
      if (!(err instanceof CodecError) && !(err instanceof RouteSyncError)) throw err;
      this.logger.warn({ peer, err: err.message }, 'route sync: protocol error from peer; resetting the connection');
      this.transport.resetPeer(peer, `route sync protocol error: ${err.message}`);
      return;
    }
    this.kick();
  }

  /** Runs the machine soon (once per tick of the event loop, however many events arrived). */
  kick(): void {
    if (this.kickScheduled || this.stopped) return;
    this.kickScheduled = true;
    setImmediate(() => {
      this.kickScheduled = false;
      this.run();
    });
  }

  private run(): void {
    if (this.stopped) return;
    const now = performance.now();
    this.sync.tick(now);
    for (const { to, message } of this.sync.takeOutgoing()) {
      if (message.type === 'ops') {
        this.metrics.routeBatches.inc({ direction: 'sent' });
        this.metrics.routeOps.inc({ direction: 'sent' }, message.deltas.reduce((n, d) => n + d.ops.length, 0));
      }
      if (message.type === 'snapshot') this.metrics.bootstraps.inc({ direction: 'sent' });
      this.transport.send(to, Channel.RouteSync, encodeMessage(message)).catch((err: Error) => {
        // Route sync retransmits on its own; a failed hand-over only means the peer's connection ended.
        this.logger.debug({ peer: to, err: err.message }, 'route sync message not delivered');
      });
    }
    if (this.timer) clearTimeout(this.timer);
    const wait = Math.max(1, this.sync.nextWakeup(now) - now);
    this.timer = setTimeout(() => this.run(), Math.min(wait, 1000));
    this.timer.unref();
  }
}
