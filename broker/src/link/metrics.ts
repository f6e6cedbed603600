import { Counter, Gauge } from 'prom-client';
import type { BrokerMetrics } from '../admin/metrics.js';
import type { LinkStatus } from './link.js';

const STATES = ['connecting', 'connected', 'disconnected', 'misconfigured', 'disabled'] as const;

/** Prometheus metrics of the node's cluster links, labelled by link (the remote cluster's name). */
export class LinkMetrics {
  readonly forwarded: Counter<'link'>;
  readonly received: Counter<'link'>;
  readonly deduplicated: Counter<'link'>;
  readonly bytesOut: Counter<'link'>;
  readonly bytesIn: Counter<'link'>;
  readonly controlBytesOut: Counter<'link'>;
  readonly controlBytesIn: Counter<'link'>;
  readonly queueRejected: Counter<'link'>;
  readonly originResets: Counter<'link'>;
  private readonly counters: Counter<'link'>[];

  constructor(metrics: BrokerMetrics, statuses: () => LinkStatus[], linksFile: () => { file: string; failing: boolean }) {
    const registers = [metrics.registry];
    const counter = (name: string, help: string): Counter<'link'> => new Counter({ name, help, labelNames: ['link'] as const, registers });
    this.forwarded = counter('meridian_link_messages_forwarded_total', 'Messages sent to the remote cluster and acknowledged by it');
    this.received = counter('meridian_link_messages_received_total', 'Messages received from the remote cluster and published here');
    this.deduplicated = counter('meridian_link_messages_deduplicated_total', 'Resent messages from the remote cluster recognised and not published again');
    this.bytesOut = counter('meridian_link_bytes_sent_total', 'Envelope bytes of forwarded messages sent to the remote cluster');
    this.bytesIn = counter('meridian_link_bytes_received_total', 'Envelope bytes of messages received from the remote cluster');
    this.controlBytesOut = counter('meridian_link_control_bytes_sent_total', 'Route-sync and capabilities bytes this link sent (both halves)');
    this.controlBytesIn = counter('meridian_link_control_bytes_received_total', 'Route-sync and capabilities bytes this link received (both halves)');
    this.queueRejected = counter('meridian_link_queue_rejected_total', 'Messages refused because the link queue was full (QoS ≥ 1: not acknowledged; QoS 0: dropped)');
    this.originResets = counter('meridian_link_origin_resets_total', 'Remote link agents that came back with a new store (their undelivered queue lost; de-duplication restarted for them)');
    this.counters = [this.forwarded, this.received, this.deduplicated, this.bytesOut, this.bytesIn, this.controlBytesOut, this.controlBytesIn,
      this.queueRejected, this.originResets];
    const gauge = (name: string, help: string, value: (s: LinkStatus) => number): void => {
      new Gauge({
        name, help, labelNames: ['link'] as const, registers,
        collect() {
          this.reset();
          for (const s of statuses()) this.set({ link: s.name }, value(s));
        },
      });
    };
    gauge('meridian_link_queue_messages', 'Messages waiting in the link queue', (s) => s.queue.depth);
    gauge('meridian_link_queue_bytes', 'Bytes waiting in the link queue', (s) => s.queue.bytes);
    gauge('meridian_link_queue_oldest_age_seconds', 'Age of the oldest message in the link queue (lag)', (s) => s.queue.oldestAgeMs / 1000);
    gauge('meridian_link_routes_sent', 'Routes this agent exports to the remote cluster', (s) => s.routesSent);
    gauge('meridian_link_routes_received', 'Routes the remote cluster\'s agents hold here', (s) => s.routesReceived);
    gauge('meridian_link_bootstraps', 'Route bootstraps received from the remote cluster\'s agents', (s) => s.bootstraps);
    gauge('meridian_link_last_bootstrap_timestamp_seconds', 'When the last route bootstrap from the remote cluster\'s agents arrived (0: none yet)',
      (s) => (s.lastBootstrapAt === null ? 0 : Date.parse(s.lastBootstrapAt) / 1000));
    gauge('meridian_link_connected_since_timestamp_seconds', 'When the current connection became connected (0: not connected)',
      (s) => (s.connectedSince === null ? 0 : Date.parse(s.connectedSince) / 1000));
    gauge('meridian_link_remote_agents', 'Remote cluster agents whose route-sync lanes this agent holds', (s) => s.remoteAgents);
    new Gauge({
      name: 'meridian_link_file_error', help: 'The links file cannot be applied (unreadable or invalid; the previous links keep running): 1, else 0',
      labelNames: ['file'] as const, registers,
      collect() {
        this.reset();
        const state = linksFile();
        this.set({ file: state.file }, state.failing ? 1 : 0);
      },
    });
    new Gauge({
      name: 'meridian_link_state', help: 'Link state (1 for the current one)', labelNames: ['link', 'state'] as const, registers,
      collect() {
        this.reset();
        for (const s of statuses()) for (const state of STATES) this.set({ link: s.name, state }, s.state === state ? 1 : 0);
      },
    });
  }

  /** Every counter of a link appears at 0 from its start (a scrape then shows the link before any traffic). */
  linkStarted(link: string): void {
    for (const counter of this.counters) counter.inc({ link }, 0);
  }
}
