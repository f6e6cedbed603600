/**
 * The aedes patch lets a client's next packets be read once broker.publish has started for its QoS 1/2 publish
 * (the acknowledgement still waits for the durable commit): acknowledgements and deliveries keep the arrival
 * order, and a PUBLISH or PUBREL reusing the messageId of a publish still in progress waits for it.
 */
import type { IPublishPacket, Packet } from 'mqtt-packet';
import { BrokerProcess } from '../../harness/broker-process.js';
import { ClientPool, rawPublish, subscribe, uniqueId, type RawMqttClient } from '../../harness/mqtt-raw.js';

let broker: BrokerProcess;
const pool = new ClientPool(() => broker.mqttPort);

beforeAll(async () => {
  broker = await BrokerProcess.start({ nodeName: 'publish-read-release' });
});
afterEach(() => pool.closeAll());
afterAll(() => broker?.dispose());

const pubrel = (messageId: number): Buffer => Buffer.from([0x62, 2, messageId >> 8, messageId & 0xff]);

async function collect(client: RawMqttClient, count: number, accept: (p: Packet) => boolean, timeoutMs = 20_000): Promise<Packet[]> {
  const got: Packet[] = [];
  const deadline = Date.now() + timeoutMs;
  while (got.length < count) {
    const packet = await client.next(undefined, Math.max(1, deadline - Date.now()));
    if (accept(packet)) got.push(packet);
  }
  return got;
}

async function subscribed(topic: string): Promise<RawMqttClient> {
  const client = await pool.connected({ clientId: uniqueId('sub'), clean: true });
  await subscribe(client, { [topic]: 0 });
  return client;
}

test('QoS 1 publishes sent one per socket write: PUBACKs and deliveries in arrival order', async () => {
  const topic = `release/${uniqueId()}`;
  const sub = await subscribed(topic);
  const pub = await pool.connected({ clientId: uniqueId('pub'), clean: true });
  const count = 300;
  for (let i = 1; i <= count; i++) {
    pub.sendBytes(rawPublish({ topic, payload: String(i), qos: 1, messageId: i }));
    if (i % 10 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  const acks = await collect(pub, count, (p) => p.cmd === 'puback');
  expect(acks.map((p) => (p as { messageId: number }).messageId)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
  const delivered = await collect(sub, count, (p) => p.cmd === 'publish');
  expect(delivered.map((p) => (p as IPublishPacket).payload.toString())).toEqual(Array.from({ length: count }, (_, i) => String(i + 1)));
}, 60_000);

test('QoS 2 publishes sent one per socket write: PUBRECs in order, every message once and in order', async () => {
  const topic = `release/${uniqueId()}`;
  const sub = await subscribed(topic);
  const pub = await pool.connected({ clientId: uniqueId('pub'), clean: true });
  const count = 200;
  for (let i = 1; i <= count; i++) {
    pub.sendBytes(rawPublish({ topic, payload: String(i), qos: 2, messageId: i }));
    if (i % 10 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  const recs = await collect(pub, count, (p) => p.cmd === 'pubrec');
  expect(recs.map((p) => (p as { messageId: number }).messageId)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
  for (let i = 1; i <= count; i++) pub.sendBytes(pubrel(i));
  const comps = await collect(pub, count, (p) => p.cmd === 'pubcomp');
  expect(comps).toHaveLength(count);
  const delivered = await collect(sub, count, (p) => p.cmd === 'publish');
  expect(delivered.map((p) => (p as IPublishPacket).payload.toString())).toEqual(Array.from({ length: count }, (_, i) => String(i + 1)));
  expect(await sub.drain(500)).toEqual([]);
}, 60_000);

test('a repeated PUBLISH and an early PUBREL of a QoS 2 id still in progress wait for it: PUBREC before PUBCOMP, delivered once', async () => {
  const topic = `release/${uniqueId()}`;
  const sub = await subscribed(topic);
  const pub = await pool.connected({ clientId: uniqueId('pub'), clean: true });
  for (let round = 0; round < 20; round++) {
    const messageId = 100 + round;
    // Separate writes, so that they can arrive in separate socket chunks while the first publish is in progress.
    pub.sendBytes(rawPublish({ topic, payload: `m${round}`, qos: 2, messageId }));
    pub.sendBytes(rawPublish({ topic, payload: `m${round}`, qos: 2, messageId, dup: true }));
    pub.sendBytes(pubrel(messageId));
    const flow = await collect(pub, 3, (p) => 'messageId' in p && p.messageId === messageId);
    // The publish's PUBREC (durable), the repeat's, then the PUBCOMP: neither answer overtook the publish in progress.
    expect(flow.map((p) => p.cmd)).toEqual(['pubrec', 'pubrec', 'pubcomp']);
  }
  const delivered = await collect(sub, 20, (p) => p.cmd === 'publish');
  expect(delivered.map((p) => (p as IPublishPacket).payload.toString())).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
  expect(await sub.drain(500)).toEqual([]);
}, 60_000);
