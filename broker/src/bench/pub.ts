import { clientEndpoint, connectClients, phaseTimes, type ClientPool, type PhaseTimes } from './clients.js';
import { subscribeClient } from './clients.js';
import type { PubOptions } from './options.js';
import { PublishLoop, type Publisher } from './publisher.js';
import { wallClockMs } from './payload.js';
import { Receiver } from './receiver.js';
import { settingsOf, type ClientCpu, type PubReport, type PublishReport } from './report.js';
import { ratePerSecond, Sample } from './stats.js';
import { expandTemplate, topicMatches } from './template.js';
import { sleep, waitUntil } from './timing.js';

interface SubscriberSide {
  pool: ClientPool;
  receiver: Receiver;
  filters: string[];
  connect: PhaseTimes;
  subscribe: PhaseTimes;
}

/**
 * `meridian bench pub`: optional in-process subscribers connect and subscribe first, then the publishers
 * connect and publish for --duration seconds (or --messages each), then outstanding acks and deliveries
 * get up to --drain-timeout seconds.
 */
export async function runPubBench(options: PubOptions, signal?: AbortSignal): Promise<PubReport> {
  const subscribers = options.subscribers > 0 ? await openSubscribers(options) : undefined;
  try {
    if (subscribers && options.publishDelayS > 0) await sleep(options.publishDelayS * 1000, signal);
    const { pool, times } = await connectClients(options, { role: 'pub', count: options.count });
    try {
      const lost = (): Error | undefined => pool.lost ?? subscribers?.pool.lost;
      const publishers = pool.clients.map((bench) => publisherFor(bench, options, subscribers?.filters ?? []));
      const receiver = subscribers?.receiver;
      const loop = new PublishLoop(options, publishers, (index) => receiver?.receivedFrom(index) ?? 0);
      if (receiver) receiver.onBenchMessage = (index) => loop.onDelivered(index);
      if (receiver && options.warmupS > 0) receiver.measureFrom(wallClockMs() + options.warmupS * 1000);
      const cpuBefore = process.cpuUsage();
      const { startedAt, stoppedBy } = await publishPhase(loop, options, lost, signal);
      const expected = subscribers ? publishers.reduce((sum, p) => sum + p.sent * p.matchingSubscriptions, 0) : 0;
      const delivered = (): boolean => subscribers === undefined || subscribers.receiver.received >= expected;
      await waitUntil(options.drainTimeoutS * 1000, () => lost() !== undefined || (loop.inflight === 0 && delivered()));
      const clientCpu = cpuSince(cpuBefore, startedAt);
      const failure = lost();
      if (failure) throw failure;
      return {
        command: 'pub',
        settings: settingsOf(options),
        connect: times,
        ...(subscribers ? { subscribersConnect: subscribers.connect, subscribe: subscribers.subscribe } : {}),
        publish: publishReport(loop, startedAt, stoppedBy),
        ...(subscribers ? { receive: subscribers.receiver.report(startedAt, expected) } : {}),
        clientCpu,
      };
    } finally {
      await pool.close();
    }
  } finally {
    await subscribers?.pool.close();
  }
}

async function openSubscribers(options: PubOptions): Promise<SubscriberSide> {
  const receiver = new Receiver();
  const subackMs = new Sample();
  const filters: string[] = [];
  const subscriberConnection = { ...options, hosts: options.subHosts };
  const startedAt = performance.now();
  const { pool, times } = await connectClients(subscriberConnection, {
    role: 'sub',
    count: options.subscribers,
    afterConnect: async (benchClient) => {
      receiver.attach(benchClient.client);
      filters.push(expandTemplate(options.subTopic, benchClient));
      await subscribeClient(benchClient, [options.subTopic], options.subQos, subackMs, clientEndpoint(subscriberConnection, benchClient.index));
    },
  });
  return { pool, receiver, filters, connect: times, subscribe: phaseTimes(subackMs, startedAt, performance.now()) };
}

function publisherFor(bench: Publisher['bench'], options: PubOptions, filters: readonly string[]): Publisher {
  const topic = expandTemplate(options.topic, bench);
  const matchingSubscriptions = filters.filter((filter) => topicMatches(filter, topic)).length;
  return { bench, topic, matchingSubscriptions, sent: 0, completed: 0, inflight: 0, blockedOnWindow: false };
}

async function publishPhase(
  loop: PublishLoop,
  options: PubOptions,
  lost: () => Error | undefined,
  signal: AbortSignal | undefined,
): Promise<{ startedAt: number; stoppedBy: PublishReport['stoppedBy'] }> {
  const startedAt = loop.start();
  await waitUntil(options.durationS * 1000, () => loop.allSent || lost() !== undefined, signal);
  loop.stop();
  const stoppedBy = signal?.aborted ? 'interrupt' : loop.allSent ? 'messages' : 'duration';
  return { startedAt, stoppedBy };
}

function cpuSince(before: NodeJS.CpuUsage, startedAt: number): ClientCpu {
  const used = process.cpuUsage(before);
  const wallMs = performance.now() - startedAt;
  const [userMs, systemMs] = [used.user / 1000, used.system / 1000];
  return { userMs, systemMs, percentOfOneCore: wallMs > 0 ? ((userMs + systemMs) / wallMs) * 100 : 0 };
}

function publishReport(loop: PublishLoop, startedAt: number, stoppedBy: PublishReport['stoppedBy']): PublishReport {
  const sent = loop.publishers.reduce((sum, p) => sum + p.sent, 0);
  const completed = loop.publishers.reduce((sum, p) => sum + p.completed, 0);
  const elapsedMs = loop.lastCompletion - startedAt;
  return { publishers: loop.publishers.length, sent, completed, elapsedMs, ratePerSec: ratePerSecond(completed, elapsedMs), stoppedBy };
}
