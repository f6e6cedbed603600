import { connectClients, endpointOf, phaseTimes, subscribeClient } from './clients.js';
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
  const endpoint = endpointOf(options);
  const startedAt = performance.now();
  const { pool, times } = await connectClients(options, {
    role: 'sub',
    count: options.count,
    afterConnect: async (benchClient) => {
      receiver.attach(benchClient.client);
      await subscribeClient(benchClient, options.topics, options.qos, subackMs, endpoint);
    },
  });
  try {
    const subscribe = phaseTimes(subackMs, startedAt, performance.now());
    if (options.readyFile !== undefined) await writeReadyFile(options.readyFile, { subscriptions: subackMs.count });
    const enough = (): boolean => options.messages > 0 && receiver.received >= options.messages;
    await waitUntil(options.durationS * 1000, () => pool.lost !== undefined || enough(), signal);
    if (pool.lost) throw pool.lost;
    const subscriptions = subackMs.count * options.topics.length;
    return { command: 'sub', settings: settingsOf(options), connect: times, subscribe, subscriptions, receive: receiver.report() };
  } finally {
    await pool.close();
  }
}
