import mqtt, { type MqttClient } from 'mqtt';
import { TestCluster } from '../../harness/cluster.js';
import { connectClient } from '../../harness/mqtt-client.js';
import { scrapeMetric } from '../../harness/metrics.js';

// A persistent subscriber moves between two nodes five times (twice live: its connection is closed by the
// takeover; three times after a clean disconnect) while publishers on a third node keep a steady QoS 1 and QoS 2
// stream going. Every message must arrive, each QoS 2 one exactly once (README.md, "Handover": the taker commits only
// once every node routes the session to it, and the late messages the holder hands over skip what it already has).

const NODES = [
  { name: 'core-1', role: 'core' as const },
  { name: 'core-2', role: 'core' as const },
  { name: 'repl-1', role: 'replicant' as const },
];
const TAKEOVERS = 5;
const CLIENT_ID = 'ts-mover';
const PROBE = 'probe';

interface Stream { name: string; qos: 1 | 2; sent: string[]; stopped: boolean; done: Promise<void> }

/** Publishes `<name> <seq>` one at a time (each waits for its PUBACK / PUBCOMP), pausing `gapMs` between. */
function startStream(client: MqttClient, name: string, qos: 1 | 2, gapMs: number): Stream {
  const stream: Stream = { name, qos, sent: [], stopped: false, done: Promise.resolve() };
  stream.done = (async () => {
    for (let seq = 0; !stream.stopped; seq++) {
      const payload = `${name} ${seq}`;
      await client.publishAsync(`ts/${name}`, payload, { qos });
      stream.sent.push(payload);
      await new Promise((resolve) => setTimeout(resolve, gapMs));
    }
  })();
  return stream;
}

async function waitFor(condition: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('session takeover under a steady publish stream', () => {
  let cluster: TestCluster | undefined;
  const clients: MqttClient[] = [];

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.endAsync(true).catch(() => undefined)));
    await cluster?.dispose();
  });

  test(`${TAKEOVERS} takeovers while a third node publishes at QoS 1 and 2: nothing lost, no QoS 2 message twice`, async () => {
    cluster = await TestCluster.start(NODES, { clusterName: 'takeover-stream' });
    const nodes = cluster;
    await nodes.waitForTables((_name, table) => table.nodes.filter((n) => n.state !== 'disconnected').length === NODES.length);
    const port = (name: string): number => nodes.node(name).mqttPort;

    const received: string[] = [];
    /** Per delivery: which connection (0 the first) and the packet's DUP flag, to tell where a repeat came from. */
    const deliveries = new Map<string, string[]>();
    let connection = -1;
    // One client-side QoS 2 receive store across connections: a PUBREL the new node re-sends completes the message
    // the previous connection received (a fresh store would make MQTT.js drop it).
    const incomingStore = new mqtt.Store({ clean: false });
    const connectSubscriber = (node: string): Promise<MqttClient> => new Promise((resolve, reject) => {
      const client = mqtt.connect(`mqtt://127.0.0.1:${port(node)}`, { clientId: CLIENT_ID, clean: false, reconnectPeriod: 0, connectTimeout: 20_000, incomingStore });
      clients.push(client);
      const index = ++connection;
      client.on('message', (_topic, payload, packet) => {
        if (payload.toString() === PROBE) return;
        received.push(payload.toString());
        deliveries.set(payload.toString(), [...(deliveries.get(payload.toString()) ?? []), `connection ${index}${packet.dup ? ' dup' : ''} at ${Date.now() % 100000}`]);
      });
      client.once('connect', () => resolve(client));
      client.once('error', reject);
    });

    const holders = ['core-1', 'repl-1'];
    let subscriber = await connectSubscriber(holders[0] as string);
    await subscriber.subscribeAsync('ts/#', { qos: 2 });
    const publisher = await connectClient(port('core-2'), { clientId: 'ts-pub' });
    clients.push(publisher);
    // QoS 0 probes until one arrives: core-2 routes the subscriber's filter.
    let probed = false;
    subscriber.on('message', (_topic, payload) => { probed ||= payload.toString() === PROBE; });
    await waitFor(() => {
      if (!probed) publisher.publish('ts/probe', PROBE, { qos: 0 });
      return probed;
    }, 10_000, () => 'the subscriber\'s route on core-2');

    // The steady stream comes from core-2; a slower QoS 2 one from core-1, the node the session leaves every other time.
    const onCore1 = await connectClient(port('core-1'), { clientId: 'ts-pub-core-1' });
    clients.push(onCore1);
    const streams = [startStream(publisher, 'q1', 1, 2), startStream(publisher, 'q2', 2, 2), startStream(onCore1, 'h2', 2, 10)];
    const sentCount = (): number => streams.reduce((n, s) => n + s.sent.length, 0);
    for (let round = 1; round <= TAKEOVERS; round++) {
      await sleep(600);
      const next = holders[round % 2] as string;
      const live = round % 2 === 1 && round < TAKEOVERS;
      if (!live) {
        await subscriber.endAsync();
        await sleep(200);
      }
      subscriber = await connectSubscriber(next);
    }
    await sleep(600);
    for (const stream of streams) stream.stopped = true;
    await Promise.all(streams.map((stream) => stream.done));

    const total = sentCount();
    await waitFor(() => new Set(received).size >= total, 20_000, () => `all ${total} messages (got ${new Set(received).size})`).catch(() => undefined);
    await sleep(1000); // a duplicate would have arrived by now

    const seen = new Map<string, number>();
    for (const payload of received) seen.set(payload, (seen.get(payload) ?? 0) + 1);
    const ofQos = (qos: 1 | 2): Stream[] => streams.filter((s) => s.qos === qos);
    const lost = (qos: 1 | 2): string[] => ofQos(qos).flatMap((s) => s.sent).filter((payload) => !seen.has(payload));
    const twice = (qos: 1 | 2): string[] => ofQos(qos).flatMap((s) => s.sent).filter((payload) => (seen.get(payload) ?? 0) > 1);
    const report = { sent: total, lostQos1: lost(1), lostQos2: lost(2), duplicatedQos2: twice(2), duplicatedQos1: twice(1).length };
    console.info(`takeover stream: ${JSON.stringify(report)}`);
    for (const payload of report.duplicatedQos2) console.info(`${payload}: ${(deliveries.get(payload) ?? []).join('; ')}`);
    expect(total).toBeGreaterThan(200);
    expect(report).toMatchObject({ lostQos1: [], lostQos2: [], duplicatedQos2: [] });

    // Every handover committed only after every node confirmed the taker's routes (no commit on a timeout).
    const logs = NODES.flatMap((n) => nodes.node(n.name).logs);
    expect(logs.filter((line) => line.includes('not every peer confirmed'))).toEqual([]);
    const confirmedMs = logs.filter((line) => line.includes('session taken over from another node')).map((line) => (JSON.parse(line) as { routesConfirmedMs: number }).routesConfirmedMs);
    console.info(`takeover stream: routes confirmed after ${confirmedMs.join(', ')} ms`);
    const taken = await Promise.all(holders.map((name) => scrapeMetric(nodes.node(name), 'meridian_cluster_takeovers_total', { role: 'taken' })));
    expect(taken.reduce((a, b) => a + b, 0)).toBe(TAKEOVERS);
  }, 60_000);
});
