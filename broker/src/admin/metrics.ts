import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type QosLabel = '0' | '1' | '2';

type BoundCounter = ReturnType<Counter<'qos'>['labels']>;

function byQos(counter: Counter<'qos'>): Record<QosLabel, BoundCounter> {
  return { 0: counter.labels('0'), 1: counter.labels('1'), 2: counter.labels('2') };
}

/**
 * The node's Prometheus registry. One registry per node (not prom-client's global one), so several nodes can live
 * in one process in tests and later modules (cluster, links) add their own metrics to the same registry.
 */
export class BrokerMetrics {
  readonly registry = new Registry();
  readonly connections = new Gauge({ name: 'meridian_connections', help: 'Open client connections', registers: [this.registry] });
  readonly connectionsAccepted = new Counter({ name: 'meridian_connections_accepted_total', help: 'Client connections accepted (CONNACK 0)', registers: [this.registry] });
  readonly connectionsRefused = new Counter({
    name: 'meridian_connections_refused_total', help: 'Connections refused or closed by the broker, by reason', labelNames: ['reason'] as const, registers: [this.registry],
  });
  readonly messagesIn = new Counter({ name: 'meridian_messages_received_total', help: 'PUBLISH packets received from clients', labelNames: ['qos'] as const, registers: [this.registry] });
  readonly messagesOut = new Counter({ name: 'meridian_messages_sent_total', help: 'PUBLISH packets delivered to clients', labelNames: ['qos'] as const, registers: [this.registry] });
  readonly bytesIn = new Counter({ name: 'meridian_payload_bytes_received_total', help: 'Payload bytes received from clients', labelNames: ['qos'] as const, registers: [this.registry] });
  readonly bytesOut = new Counter({ name: 'meridian_payload_bytes_sent_total', help: 'Payload bytes delivered to clients', labelNames: ['qos'] as const, registers: [this.registry] });
  readonly messagesDropped = new Counter({
    name: 'meridian_messages_dropped_total', help: 'Messages not delivered or refused, by reason', labelNames: ['reason'] as const, registers: [this.registry],
  });
  readonly authorizationDenied = new Counter({
    name: 'meridian_authorization_denied_total', help: 'Publish/subscribe attempts denied by ACL or tenancy', labelNames: ['action'] as const, registers: [this.registry],
  });
  readonly storeWriteSeconds = new Histogram({
    name: 'meridian_store_write_seconds', help: 'Latency of durable store commits',
    buckets: [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1], registers: [this.registry],
  });

  // Per-message counters bound to their label once: a labelled inc() on every message costs a lookup.
  readonly messagesInByQos = byQos(this.messagesIn);
  readonly messagesOutByQos = byQos(this.messagesOut);
  readonly bytesInByQos = byQos(this.bytesIn);
  readonly bytesOutByQos = byQos(this.bytesOut);

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'meridian_process_' });
  }

  /** Gauges computed at scrape time (sessions, subscriptions) are registered by their owner with a collect callback. */
  gauge(name: string, help: string, collect: () => number | Promise<number>): Gauge {
    return new Gauge({
      name, help, registers: [this.registry],
      async collect() { this.set(await collect()); },
    });
  }
}
