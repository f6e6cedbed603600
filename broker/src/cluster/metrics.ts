import { Counter } from 'prom-client';
import type { BrokerMetrics } from '../admin/metrics.js';

/** Cluster metrics, registered in the node's registry. */
export class ClusterMetrics {
  readonly forwardedOut: Counter<'peer'>;
  readonly forwardedIn: Counter<'peer'>;
  readonly forwardedBytesOut: Counter<'peer'>;
  readonly forwardedBytesIn: Counter<'peer'>;
  readonly forwardDropped: Counter<'peer' | 'reason'>;
  readonly forwardRejected: Counter<'peer'>;
  readonly routeOps: Counter<'direction'>;
  readonly routeBatches: Counter<'direction'>;
  readonly bootstraps: Counter<'direction'>;
  readonly takeovers: Counter<'role'>;

  constructor(node: BrokerMetrics) {
    const registers = [node.registry];
    this.forwardedOut = new Counter({ name: 'meridian_cluster_forwarded_messages_sent_total', help: 'Messages forwarded to other nodes', labelNames: ['peer'], registers });
    this.forwardedIn = new Counter({ name: 'meridian_cluster_forwarded_messages_received_total', help: 'Messages received from other nodes', labelNames: ['peer'], registers });
    this.forwardedBytesOut = new Counter({ name: 'meridian_cluster_forwarded_bytes_sent_total', help: 'Bytes of forwarded messages sent, by peer', labelNames: ['peer'], registers });
    this.forwardedBytesIn = new Counter({ name: 'meridian_cluster_forwarded_bytes_received_total', help: 'Bytes of forwarded messages received, by peer', labelNames: ['peer'], registers });
    this.forwardDropped = new Counter({ name: 'meridian_cluster_forward_dropped_total', help: 'Forwarded messages not handed over because the destination node was gone', labelNames: ['peer', 'reason'], registers });
    this.forwardRejected = new Counter({ name: 'meridian_cluster_forward_rejected_total', help: 'Malformed forwarded messages dropped', labelNames: ['peer'], registers });
    this.routeOps = new Counter({ name: 'meridian_cluster_route_ops_total', help: 'Route operations sent/received', labelNames: ['direction'], registers });
    this.routeBatches = new Counter({ name: 'meridian_cluster_route_batches_total', help: 'Route-sync batches sent/received', labelNames: ['direction'], registers });
    this.bootstraps = new Counter({ name: 'meridian_cluster_bootstraps_total', help: 'Route bootstraps sent/received', labelNames: ['direction'], registers });
    this.takeovers = new Counter({ name: 'meridian_cluster_takeovers_total', help: 'Client sessions taken over from / handed to another node', labelNames: ['role'], registers });
  }
}
