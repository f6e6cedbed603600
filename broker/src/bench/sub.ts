import { clientEndpoint, connectClients, phaseTimes, subscribeClient } from './clients.js';
import { writeReadyFile } from './conn.js';
import type { SubOptions } from './options.js';
import { Receiver } from './receiver.js';
import { settingsOf, type SubReport } from './report.js';
import { Sample } from './stats.js';
import { waitUntil } from './timing.js';

/**
 * `meridian bench sub`: each client subscribes right after its CONNACK; once all are subscribed it receives
 * for --duration seconds (or until --messages), timing messages that carry the bench latency header.
 */
export async function runSubBench(options: SubOptions, signal?: AbortSignal): Promise<SubReport> {
  const receiver = new Receiver();
  const subackMs = new Sample();
  const startedAt = performance.now();
  const { pool, times } = await connectClients(options, {
    role: 'sub',
    count: options.count,
    afterConnect: async (benchClient) => {
      receiver.attach(benchClient.client);
      await subscribeClient(benchClient, options.topics, options.qos, subackMs, clientEndpoint(options, benchClient.index));
    },
  });
  try {
    const subscribedAt = performance.now();
    const subscribe = phaseTimes(subackMs, startedAt, subscribedAt);
    if (options.readyFile !== undefined) {
      // Wall-clock times let a script in another process (e2e/bench/cluster.sh) put its own observations, e.g.
      // when the routes became visible on every cluster node, on the same time line as the run.
      const startedAtEpochMs = performance.timeOrigin + startedAt;
      const subscribedAtEpochMs = performance.timeOrigin + subscribedAt;
      await writeReadyFile(options.readyFile, { subscriptions: subackMs.count, startedAtEpochMs, subscribedAtEpochMs });
    }
    const enough = (): boolean => options.messages > 0 && receiver.received >= options.messages;
    await waitUntil(options.durationS * 1000, () => pool.lost !== undefined || enough(), signal);
    if (pool.lost) throw pool.lost;
    const subscriptions = subackMs.count * options.topics.length;
    return { command: 'sub', settings: settingsOf(options), connect: times, subscribe, subscriptions, receive: receiver.report() };
  } finally {
    await pool.close();
  }
}
