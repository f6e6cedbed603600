import type { PhaseTimes } from './clients.js';
import type { ConnOptions, Endpoint, PubOptions, SubOptions } from './options.js';
import type { Distribution } from './stats.js';

export interface ReceiveReport {
  received: number;
  /** Deliveries the subscriptions should have produced (pub with --subscribers only). */
  expected?: number;
  /** expected - received when positive: lost, or still in flight when the drain timeout ended. */
  missing?: number;
  /** Messages without a bench latency header (published by another tool). */
  withoutHeader: number;
  /** From the start of publishing (pub) or the first message (sub) to the last message received. */
  elapsedMs: number;
  ratePerSec: number;
  latencyMs: Distribution | undefined;
  /** Received messages sent during `--warmup`: counted above, not in `latencyMs`. */
  warmupMessages?: number;
}

export interface PublishReport {
  publishers: number;
  sent: number;
  /** QoS 0: written to the socket; QoS 1: PUBACKed; QoS 2: PUBCOMPed. */
  completed: number;
  /** From the start of publishing to the last completion. */
  elapsedMs: number;
  ratePerSec: number;
  stoppedBy: 'duration' | 'messages' | 'interrupt';
}

type Settings<T> = Omit<T, 'password'>;

export interface ConnReport {
  command: 'conn';
  settings: Settings<ConnOptions>;
  connect: PhaseTimes;
  heldMs: number;
}

export interface SubReport {
  command: 'sub';
  settings: Settings<SubOptions>;
  connect: PhaseTimes;
  /** SUBACKs are per client; this counts the filters: clients x --topic flags. */
  subscribe: PhaseTimes;
  subscriptions: number;
  receive: ReceiveReport;
}

/** CPU this bench process used while publishing and draining: near 100% of one core means the client is the limit. */
export interface ClientCpu {
  userMs: number;
  systemMs: number;
  /** (user + system) / wall time of the phase, in percent of one core. */
  percentOfOneCore: number;
}

export interface PubReport {
  command: 'pub';
  settings: Settings<PubOptions>;
  connect: PhaseTimes;
  subscribersConnect?: PhaseTimes;
  subscribe?: PhaseTimes;
  publish: PublishReport;
  receive?: ReceiveReport;
  clientCpu: ClientCpu;
}

export type BenchReport = ConnReport | SubReport | PubReport;

export function settingsOf<T extends { password?: string }>(options: T): Settings<T> {
  const { password: _password, ...settings } = options;
  return settings;
}

/** The report as JSON, with times and rates rounded to 3 decimals (microseconds for milliseconds). */
export function reportJson(report: BenchReport): string {
  return JSON.stringify(report, (_key, value: unknown) => (typeof value === 'number' && !Number.isInteger(value) ? Math.round(value * 1000) / 1000 : value), 2) + '\n';
}

export function formatReport(report: BenchReport): string {
  const lines = [headline(report)];
  switch (report.command) {
    case 'conn':
      lines.push(phaseLine('connect', 'connections', report.connect, 'connect'));
      lines.push(`hold       ${seconds(report.heldMs)}`);
      break;
    case 'sub':
      lines.push(phaseLine('connect', 'subscribers', report.connect, 'connect'));
      lines.push(phaseLine('subscribe', 'clients subscribed', report.subscribe, 'suback'));
      lines.push(`           ${report.subscriptions} subscriptions in total`);
      lines.push(...receiveLines(report.receive));
      break;
    case 'pub':
      lines.push(phaseLine('connect', 'publishers', report.connect, 'connect'));
      if (report.subscribersConnect) lines.push(phaseLine('connect', 'subscribers', report.subscribersConnect, 'connect'));
      if (report.subscribe) lines.push(phaseLine('subscribe', 'subscriptions', report.subscribe, 'suback'));
      lines.push(publishLine(report.publish));
      if (report.receive) lines.push(...receiveLines(report.receive));
      lines.push(cpuLine(report.clientCpu));
      break;
  }
  return lines.join('\n') + '\n';
}

function headline(report: BenchReport): string {
  const s = report.settings;
  const target = s.hosts.map(({ host, port }) => `${host}:${port}`).join(',');
  switch (report.command) {
    case 'conn':
      return `meridian bench conn -> ${target}: ${s.count} connections, interval ${s.intervalMs} ms`;
    case 'sub':
      return `meridian bench sub -> ${target}: ${s.count} subscribers on "${report.settings.topics.join('", "')}", QoS ${report.settings.qos}`;
    case 'pub': {
      const p = report.settings;
      const rate = p.rate > 0 ? `${p.rate} msg/s each` : 'max rate';
      const subTarget = sameEndpoints(p.subHosts, p.hosts) ? '' : ` at ${p.subHosts.map(({ host, port }) => `${host}:${port}`).join(',')}`;
      const subs = p.subscribers > 0 ? ` -> ${p.subscribers} subscribers on "${p.subTopic}"${subTarget} (QoS ${p.subQos})` : '';
      const window = p.e2eWindow > 0 ? `, e2e window ${p.e2eWindow}` : '';
      return `meridian bench pub -> ${target}: ${p.count} publishers on "${p.topic}" QoS ${p.qos}${subs}, ${p.payloadSize} B, ${rate}${window}`;
    }
  }
}

function sameEndpoints(a: readonly Endpoint[], b: readonly Endpoint[]): boolean {
  return a.length === b.length && a.every((endpoint, i) => endpoint.host === b[i]?.host && endpoint.port === b[i]?.port);
}

function phaseLine(label: string, noun: string, phase: PhaseTimes, replyName: string): string {
  const head = `${label.padEnd(10)} ${phase.count} ${noun} in ${seconds(phase.elapsedMs)} (${rate(phase.ratePerSec)}/s)`;
  return phase.perClientMs ? `${head}; ${replyName} ms ${distribution(phase.perClientMs)}` : head;
}

function publishLine(publish: PublishReport): string {
  return `publish    ${publish.sent} sent, ${publish.completed} completed in ${seconds(publish.elapsedMs)}: ` +
    `${rate(publish.ratePerSec)} msg/s (stopped by ${publish.stoppedBy})`;
}

function receiveLines(receive: ReceiveReport): string[] {
  const expected = receive.expected === undefined ? '' : ` of ${receive.expected} expected (${receive.missing ?? 0} missing)`;
  const foreign = receive.withoutHeader > 0 ? `, ${receive.withoutHeader} without latency header` : '';
  const warmup = receive.warmupMessages ? `, ${receive.warmupMessages} sent during the warm-up (no latency)` : '';
  const lines = [`receive    ${receive.received}${expected}${foreign}${warmup} in ${seconds(receive.elapsedMs)}: ${rate(receive.ratePerSec)} msg/s`];
  lines.push(receive.latencyMs ? `latency    ms ${distribution(receive.latencyMs)}` : 'latency    no bench messages received');
  return lines;
}

function cpuLine(cpu: ClientCpu): string {
  return `client cpu ${cpu.percentOfOneCore.toFixed(0)}% of one core (user ${seconds(cpu.userMs)}, system ${seconds(cpu.systemMs)})`;
}

function distribution(d: Distribution): string {
  const parts: [string, number][] = [['min', d.min], ['mean', d.mean], ['p50', d.p50], ['p90', d.p90], ['p95', d.p95], ['p99', d.p99], ['p99.9', d.p999], ['max', d.max]];
  return parts.map(([name, value]) => `${name} ${ms(value)}`).join('  ');
}

function ms(value: number): string {
  return value >= 100 ? value.toFixed(0) : value.toFixed(value >= 10 ? 1 : 2);
}

function seconds(elapsedMs: number): string {
  return `${(elapsedMs / 1000).toFixed(2)} s`;
}

function rate(value: number): string {
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}
