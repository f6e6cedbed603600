import mqtt, { type MqttClient } from 'mqtt';
import { BrokerProcess } from '../../harness/broker-process.js';
import { connectClient as connect } from '../../harness/mqtt-client.js';

// A persistent QoS 2 subscriber (the e2e `audit-offline` drill, scaled down) is offline while door controllers keep
// publishing at QoS 1 and 2; it resumes its session (no new SUBSCRIBE) while they go on publishing. The stored queue
// and the live messages must reach it as one stream: every message exactly once, each door's messages in the order
// the door published them (across its topics, so also per door and topic) [MQTT-4.6.0-6].

const DOORS = 4;
const TOPICS_PER_DOOR = 2;

interface Door { client: MqttClient; sent: string[]; stopped: boolean; done: Promise<void> }

/** Publishes `d<door> <seq>` round-robin on the door's topics, QoS 1 and 2 alternating, one at a time. */
function startDoor(client: MqttClient, door: number): Door {
  const state: Door = { client, sent: [], stopped: false, done: Promise.resolve() };
  state.done = (async () => {
    for (let seq = 0; !state.stopped; seq++) {
      const topic = `door${door}/access/${seq % TOPICS_PER_DOOR}`;
      const payload = `d${door} ${seq}`;
      await client.publishAsync(topic, payload, { qos: (1 + (seq % 2)) as 1 | 2 });
      state.sent.push(payload);
    }
  })();
  return state;
}

async function waitFor(condition: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Every problem with what the subscriber got against what the doors sent: losses and duplicates among the messages
 * MQTT.js handed over (`received`; it hands a QoS 2 message over at PUBREL, so that order is not the wire's), per-door
 * order breaks among the first copies of the PUBLISH packets on the wire (`wire`; a DUP re-send repeats one).
 */
function deliveryProblems(doors: Door[], received: string[], wire: string[]): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const payload of received) {
    if (seen.has(payload)) problems.push(`duplicate ${payload}`);
    seen.add(payload);
  }
  const lost = doors.flatMap((door) => door.sent).filter((payload) => !seen.has(payload));
  if (lost.length > 0) problems.push(`${lost.length} lost: ${lost.slice(0, 10).join(', ')}`);
  const firstCopies = [...new Set(wire)];
  const lastSeq = new Map<string, number>();
  const breaks: string[] = [];
  for (const payload of firstCopies) {
    const [door, seqText] = payload.split(' ');
    const seq = Number(seqText);
    const last = lastSeq.get(door) ?? -1;
    if (seq < last) breaks.push(`${payload} after ${door} ${last}`);
    lastSeq.set(door, Math.max(last, seq));
  }
  if (breaks.length > 0) problems.push(`${breaks.length} of ${firstCopies.length} first deliveries out of per-door order, e.g. ${breaks.slice(0, 3).join('; ')}`);
  return problems;
}

describe('a resumed persistent session gets its stored queue before live messages', () => {
  let broker: BrokerProcess | undefined;
  const clients: MqttClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.endAsync(true)));
    await broker?.dispose();
    broker = undefined;
  });

  test('queue and live publishes arrive exactly once, in each door\'s order', async () => {
    broker = await BrokerProcess.start({ nodeName: 'order-node' });
    const port = broker.mqttPort;
    const audit = await connect(port, { clientId: 'audit', clean: false, protocolVersion: 4 });
    await audit.subscribeAsync('+/access/#', { qos: 2 });
    await audit.endAsync();

    const doors: Door[] = [];
    for (let door = 0; door < DOORS; door++) {
      const client = await connect(port, { clientId: `door-${door}`, clean: true });
      clients.push(client);
      doors.push(startDoor(client, door));
    }
    const sentCount = (): number => doors.reduce((sum, door) => sum + door.sent.length, 0);
    await waitFor(() => sentCount() >= 1500, 60_000, () => `1500 offline publishes (sent ${sentCount()})`);

    const received: string[] = [];
    const resumed = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: 'audit', clean: false, reconnectPeriod: 0, protocolVersion: 4 });
    clients.push(resumed);
    const wire: string[] = [];
    resumed.on('message', (_topic, payload) => received.push(payload.toString()));
    resumed.on('packetreceive', (packet) => {
      if (packet.cmd === 'publish') wire.push(packet.payload.toString());
    });
    const sessionPresent = await new Promise<boolean>((resolve, reject) => {
      resumed.once('connect', (ack) => resolve(ack.sessionPresent));
      resumed.once('error', reject);
    });
    expect(sessionPresent).toBe(true);

    // the doors keep publishing while the queue is replayed, then stop
    const queuedAtResume = sentCount();
    await waitFor(() => sentCount() >= queuedAtResume + 600, 60_000, () => `600 live publishes (sent ${sentCount() - queuedAtResume})`);
    for (const door of doors) door.stopped = true;
    await Promise.all(doors.map((door) => door.done));

    const total = sentCount();
    // a loss shows up in deliveryProblems below, so a timeout here is not the failure reported
    await waitFor(() => received.length >= total, 30_000, () => 'all deliveries').catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 500)); // a duplicate would arrive by now
    expect(deliveryProblems(doors, received, wire)).toEqual([]);
    expect(received).toHaveLength(total);
  }, 180_000);
});
