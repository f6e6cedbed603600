import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { openStore, type NodeStore, type StoreOptions } from '../../../src/store/index.js';
import { RawMqttClient, publish, subscribe } from '../../harness/mqtt-raw.js';

// aedes 1.2 on the durable store, over real loopback sockets: a persistent session's subscription, its queued
// QoS 1/2 messages and a retained message survive closing the broker and the store and opening them again.

interface RunningBroker { store: NodeStore; aedes: Aedes; server: Server; port: number }

let root: string;
const clients: MqttClient[] = [];
const rawClients: RawMqttClient[] = [];
let running: RunningBroker | undefined;

beforeAll(() => {
  root = mkdtempSync(path.join(tmpdir(), 'store-aedes-'));
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  await Promise.all(rawClients.splice(0).map((c) => c.destroy()));
  if (running) await stopBroker(running);
  running = undefined;
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function startBroker(dir: string, overrides: Partial<StoreOptions> = {}): Promise<RunningBroker> {
  const store = await openStore({ dir, durability: 'durable', commitDelayMs: 0, maxSizeMb: 64, maxQueuedMessages: 100, logger: pino({ level: 'silent' }), ...overrides });
  const aedes = await Aedes.createBroker({ id: `node-a.${store.incarnation}`, persistence: store.persistence });
  const server = createServer(aedes.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  running = { store, aedes, server, port: (server.address() as AddressInfo).port };
  return running;
}

async function stopBroker(broker: RunningBroker): Promise<void> {
  await new Promise<void>((resolve) => broker.server.close(() => resolve()));
  await new Promise<void>((resolve) => broker.aedes.close(() => resolve()));
  await broker.store.close();
}

async function connect(port: number, clientId: string, clean: boolean): Promise<MqttClient> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId, clean, reconnectPeriod: 0, protocolVersion: 4 });
  clients.push(client);
  return client;
}

function nextMessages(client: MqttClient, count: number): Promise<{ topic: string; payload: string; qos: number; retain: boolean }[]> {
  return new Promise((resolve, reject) => {
    const got: { topic: string; payload: string; qos: number; retain: boolean }[] = [];
    const timer = setTimeout(() => reject(new Error(`got ${got.length} of ${count} messages: ${JSON.stringify(got)}`)), 10_000);
    client.on('message', (topic, payload, packet) => {
      got.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain });
      if (got.length === count) {
        clearTimeout(timer);
        resolve(got);
      }
    });
  });
}

test('queued QoS 1/2 messages and retained messages of a persistent session survive a broker restart', async () => {
  const dir = path.join(root, 'restart');
  let broker = await startBroker(dir);
  const subscriber = await connect(broker.port, 'sub-1', false);
  await subscriber.subscribeAsync({ 'plant/+/temp': { qos: 1 }, 'plant/alarm': { qos: 2 } });
  await subscriber.endAsync();

  const publisher = await connect(broker.port, 'pub-1', true);
  await publisher.publishAsync('plant/a/temp', '21.5', { qos: 1 });
  await publisher.publishAsync('plant/b/temp', '19.0', { qos: 1 });
  await publisher.publishAsync('plant/alarm', 'overheat', { qos: 2 });
  await publisher.publishAsync('plant/status', 'running', { qos: 1, retain: true });
  await publisher.endAsync();

  await stopBroker(broker);
  broker = await startBroker(dir);
  expect(broker.store.incarnation).toBe(2);

  const resumed = mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'sub-1', clean: false, reconnectPeriod: 0, protocolVersion: 4 });
  clients.push(resumed);
  const queued = await nextMessages(resumed, 3);
  expect(queued.map((m) => [m.topic, m.payload, m.qos])).toEqual([
    ['plant/a/temp', '21.5', 1],
    ['plant/b/temp', '19.0', 1],
    ['plant/alarm', 'overheat', 2],
  ]);

  const late = await connect(broker.port, 'late-1', true);
  const retained = nextMessages(late, 1);
  await late.subscribeAsync('plant/status', { qos: 1 });
  expect((await retained).map((m) => [m.topic, m.payload, m.retain])).toEqual([['plant/status', 'running', true]]);

  // Everything was acknowledged by the subscriber: nothing is left queued for it.
  await new Promise((resolve) => setTimeout(resolve, 200));
  expect(broker.store.persistence.queuedCount('sub-1')).toBe(0);
}, 30_000);

async function rawClient(port: number, clientId: string, clean: boolean): Promise<RawMqttClient> {
  const client = await RawMqttClient.connected(port, { clientId, clean });
  rawClients.push(client);
  return client;
}

test('after a restart an in-flight QoS 1 PUBLISH comes again with DUP 1 and a pending PUBREL is re-sent, both with their identifiers', async () => {
  const dir = path.join(root, 'restart-in-flight');
  let broker = await startBroker(dir);
  const first = await rawClient(broker.port, 'in-flight-sub', false);
  await subscribe(first, { 'flight/q1': 1, 'flight/q2': 2 });
  const publisher = await rawClient(broker.port, 'in-flight-pub', true);
  await publish(publisher, 'flight/q1', 'unacked', { qos: 1, messageId: 1 });
  await publish(publisher, 'flight/q2', 'released', { qos: 2, messageId: 2 });
  const q1 = await first.next('publish');
  const q2 = await first.next('publish');
  first.send({ cmd: 'pubrec', messageId: q2.messageId as number });
  expect((await first.next('pubrel')).messageId).toBe(q2.messageId);
  await Promise.all([first.destroy(), publisher.destroy()]);

  await stopBroker(broker);
  broker = await startBroker(dir);
  const { client: resumed, connack } = await RawMqttClient.connect(broker.port, { clientId: 'in-flight-sub', clean: false });
  rawClients.push(resumed);
  expect(connack).toMatchObject({ returnCode: 0, sessionPresent: true });
  const again = await resumed.next('publish');
  expect({ id: again.messageId, dup: again.dup, payload: again.payload.toString() }).toEqual({ id: q1.messageId, dup: true, payload: 'unacked' });
  expect(await resumed.next('pubrel')).toMatchObject({ messageId: q2.messageId });
  resumed.send({ cmd: 'puback', messageId: q1.messageId as number });
  resumed.send({ cmd: 'pubcomp', messageId: q2.messageId as number });
  expect(await resumed.poll(400)).toBeUndefined();
  expect(resumed.closed).toBe(false);
  expect(broker.store.persistence.queuedCount('in-flight-sub')).toBe(0);
}, 30_000);

test('a stored session without subscriptions is present after a restart; a clean session ends it', async () => {
  const dir = path.join(root, 'restart-bare-session');
  let broker = await startBroker(dir);
  await (await rawClient(broker.port, 'bare', false)).destroy();
  await stopBroker(broker);
  broker = await startBroker(dir);
  const resumed = await RawMqttClient.connect(broker.port, { clientId: 'bare', clean: false });
  rawClients.push(resumed.client);
  expect(resumed.connack.sessionPresent).toBe(true);
  await resumed.client.destroy();
  const clean = await RawMqttClient.connect(broker.port, { clientId: 'bare', clean: true });
  rawClients.push(clean.client);
  expect(clean.connack.sessionPresent).toBe(false);
  await clean.client.destroy();
  const fresh = await RawMqttClient.connect(broker.port, { clientId: 'bare', clean: false });
  rawClients.push(fresh.client);
  expect(fresh.connack.sessionPresent).toBe(false);
}, 30_000);

describe('maxQueuedMessages under aedes', () => {
  test('an offline session keeps the oldest messages up to the limit; the newer ones are dropped and reported', async () => {
    const dropped: string[] = [];
    const broker = await startBroker(path.join(root, 'limit-offline'), { maxQueuedMessages: 2, onQueueFull: (clientId, topic) => dropped.push(`${clientId} ${topic}`) });
    const subscriber = await rawClient(broker.port, 'offline-sub', false);
    await subscribe(subscriber, { 'q/#': 1 });
    await subscriber.destroy();
    const publisher = await rawClient(broker.port, 'offline-pub', true);
    for (let i = 1; i <= 4; i++) await publish(publisher, `q/${i}`, `m${i}`, { qos: 1, messageId: i });
    expect(dropped).toEqual(['offline-sub q/3', 'offline-sub q/4']);

    const resumed = await rawClient(broker.port, 'offline-sub', false);
    const first = await resumed.next('publish');
    const second = await resumed.next('publish');
    expect([first.topic, second.topic]).toEqual(['q/1', 'q/2']);
    await expect(resumed.next('publish', 300)).rejects.toThrow('nothing arrived');
  }, 20_000);

  test('a live session that does not acknowledge: refused messages go out once unstored, the connection stays up', async () => {
    const dropped: string[] = [];
    const broker = await startBroker(path.join(root, 'limit-live'), { maxQueuedMessages: 2, onQueueFull: (_clientId, topic) => dropped.push(topic) });
    const subscriber = await rawClient(broker.port, 'live-sub', false);
    await subscribe(subscriber, { 'q/#': 1 });
    const publisher = await rawClient(broker.port, 'live-pub', true);
    for (let i = 1; i <= 4; i++) await publish(publisher, `q/${i}`, `m${i}`, { qos: 1, messageId: i });
    const delivered = [];
    for (let i = 1; i <= 4; i++) delivered.push((await subscriber.next('publish')).topic);
    expect(delivered).toEqual(['q/1', 'q/2', 'q/3', 'q/4']);
    expect(dropped).toEqual(['q/3', 'q/4']);
    expect(subscriber.closed).toBe(false);
    expect(broker.store.persistence.queuedCount('live-sub')).toBe(2);

    // Reconnecting without having acknowledged anything: only the two stored messages come again.
    await subscriber.destroy();
    const resumed = await rawClient(broker.port, 'live-sub', false);
    const again = [(await resumed.next('publish')).topic, (await resumed.next('publish')).topic];
    expect(again).toEqual(['q/1', 'q/2']);
    await expect(resumed.next('publish', 300)).rejects.toThrow('nothing arrived');
  }, 20_000);
});
