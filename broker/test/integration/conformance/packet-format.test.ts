/**
 * MQTT 3.1.1 conformance: data representation (1.5.3), the fixed header and packet identifiers (2.2, 2.3),
 * handling of errors (4.8) and conformance targets (7): how the server treats bytes on the wire.
 * Statement ids refer to the OASIS mqtt-v3.1.1-os normative statements; docs/conformance.md maps them.
 */
import mqtt from 'mqtt';
import { generate } from 'mqtt-packet';
import { BrokerProcess } from '../../harness/broker-process.js';
import {
  ClientPool, RawMqttClient, acknowledge, field, frame, publish, rawPublish, rawSubscribe, receive, subscribe, u16, uniqueId,
} from '../../harness/mqtt-raw.js';

let broker: BrokerProcess;
const pool = new ClientPool(() => broker.mqttPort);

beforeAll(async () => {
  broker = await BrokerProcess.start({ nodeName: 'conformance-format' });
});
afterEach(() => pool.closeAll());
afterAll(() => broker?.dispose());

async function connected(clean = true, clientId = uniqueId()): Promise<RawMqttClient> {
  return pool.connected({ clientId, clean });
}

/** The first-byte values of Table 2.2 for the packets a server sends. */
const SERVER_FIRST_BYTE: Record<string, (b: number) => boolean> = {
  connack: (b) => b === 0x20,
  publish: (b) => (b & 0xf0) === 0x30 && ((b >> 1) & 0x03) !== 3,
  puback: (b) => b === 0x40,
  pubrec: (b) => b === 0x50,
  pubrel: (b) => b === 0x62,
  pubcomp: (b) => b === 0x70,
  suback: (b) => b === 0x90,
  unsuback: (b) => b === 0xb0,
  pingresp: (b) => b === 0xd0,
};

describe('1.5.3 UTF-8 encoded strings', () => {
  test('[MQTT-1.5.3-1] a Topic Filter with an encoded surrogate (U+D800, ill-formed UTF-8) closes the connection', async () => {
    const client = await connected();
    client.sendBytes(rawSubscribe(1, [{ filter: Buffer.from([0x73, 0x2f, 0xed, 0xa0, 0x80]), options: 0 }]));
    expect((await client.closedByServer(1000)).map((p) => p.cmd)).toEqual([]);
  });

  test('[MQTT-1.5.3-2] a string containing U+0000 (here the Client Identifier) closes the connection', async () => {
    const client = await pool.open();
    client.sendBytes(frame(0x10, field('MQTT'), Buffer.from([4, 0x02]), u16(30), field(Buffer.from([0x61, 0x00, 0x62]))));
    expect((await client.closedByServer(1000)).map((p) => p.cmd)).toEqual([]);
  });

  test('[MQTT-1.5.3-3] U+FEFF (EF BB BF) in a string is neither skipped nor stripped', async () => {
    const base = uniqueId();
    const withBom = `\ufeff${base}/bom`;
    const client = await connected();
    await subscribe(client, { [withBom]: 0, [`${base}/bom`]: 0 });
    const pub = await connected();
    pub.sendBytes(rawPublish({ topic: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(`${base}/bom`)]), payload: 'b' }));
    const message = await client.next('publish');
    expect(Buffer.from(message.topic, 'utf8').subarray(0, 3)).toEqual(Buffer.from([0xef, 0xbb, 0xbf]));
    expect(await client.poll(300)).toBeUndefined();
  });
});

describe('2.2 Fixed header', () => {
  test('[MQTT-2.2.2-1] the packets the server sends carry the flag values of Table 2.2', async () => {
    const topic = `flags/${uniqueId()}`;
    const client = await connected();
    await subscribe(client, { [topic]: 2 });
    const pub = await connected();
    await publish(pub, topic, 'q2', { qos: 2, messageId: 1 });
    await acknowledge(client, await client.next('publish'));
    await publish(pub, topic, 'q1', { qos: 1, messageId: 2 });
    await receive(client);
    await publish(client, `${topic}/own`, 'acks-to-me', { qos: 2, messageId: 3 });
    await publish(client, `${topic}/own`, 'acks-to-me', { qos: 1, messageId: 4 });
    client.send({ cmd: 'unsubscribe', messageId: 3, unsubscriptions: [topic] });
    await client.next('unsuback');
    client.send({ cmd: 'pingreq' });
    await client.next('pingresp');
    expect(client.parseError).toBeUndefined();
    const bad = client.receivedFirstBytes.filter((b, i) => i > 0 && !Object.values(SERVER_FIRST_BYTE).some((ok) => ok(b)));
    expect(bad.map((b) => `0x${b.toString(16)}`)).toEqual([]);
    expect(SERVER_FIRST_BYTE.connack?.(client.receivedFirstBytes[0] as number)).toBe(true);
  });

  test.each([
    ['PUBACK', '41', u16(1)],
    ['PUBREC', '58', u16(1)],
    ['PUBREL', '60', u16(1)],
    ['PUBCOMP', '7f', u16(1)],
    ['SUBSCRIBE', '80', Buffer.concat([u16(1), field('x'), Buffer.from([0])])],
    ['UNSUBSCRIBE', 'a8', Buffer.concat([u16(1), field('x')])],
    ['PINGREQ', 'c4', Buffer.alloc(0)],
    ['DISCONNECT', 'e2', Buffer.alloc(0)],
  ])('[MQTT-2.2.2-2] invalid fixed-header flags on %s (0x%s) close the connection', async (_name, firstByte, body) => {
    const client = await connected();
    client.sendBytes(frame(parseInt(firstByte, 16), body));
    expect((await client.closedByServer()).map((p) => p.cmd)).toEqual([]);
  });

  test('[MQTT-2.2.2-2] invalid fixed-header flags on CONNECT close the connection without CONNACK', async () => {
    const client = await pool.open();
    const connect = generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: uniqueId(), clean: true, keepalive: 30 });
    connect[0] = 0x11;
    client.sendBytes(connect);
    expect((await client.closedByServer()).map((p) => p.cmd)).toEqual([]);
  });
});

describe('2.3 Packet Identifier', () => {
  test('[MQTT-2.3.1-7] SUBACK and UNSUBACK carry the Packet Identifier of their SUBSCRIBE and UNSUBSCRIBE', async () => {
    const client = await connected();
    const topic = `pid/${uniqueId()}`;
    client.send({ cmd: 'subscribe', messageId: 65535, subscriptions: [{ topic, qos: 0 }] });
    expect(await client.next()).toMatchObject({ cmd: 'suback', messageId: 65535 });
    client.send({ cmd: 'unsubscribe', messageId: 1, unsubscriptions: [topic] });
    expect(await client.next()).toMatchObject({ cmd: 'unsuback', messageId: 1 });
  });
});

describe('4.8 Handling errors', () => {
  test.each([
    ['reserved type 0', frame(0x00)],
    ['reserved type 15', frame(0xf0)],
    ['CONNACK (server-to-client only)', frame(0x20, Buffer.from([0, 0]))],
    ['SUBACK (server-to-client only)', frame(0x90, u16(1), Buffer.from([0]))],
    ['PINGRESP (server-to-client only)', frame(0xd0)],
  ])('[MQTT-4.8.0-1] a protocol violation (%s) closes the connection it arrived on, and only that one', async (_what, bytes) => {
    const bystander = await connected();
    const client = await connected();
    client.sendBytes(bytes);
    expect((await client.closedByServer()).map((p) => p.cmd)).toEqual([]);
    bystander.send({ cmd: 'pingreq' });
    expect((await bystander.next()).cmd).toBe('pingresp');
  });

  test('[MQTT-4.8.0-1] the server logs why it closed a connection for a protocol violation', async () => {
    const clientId = uniqueId('bad');
    const client = await connected(true, clientId);
    client.sendBytes(frame(0x62, u16(1)).subarray(0, 1));
    client.sendBytes(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f]));
    await client.closedByServer();
    // The log line travels through the child's stdout pipe: it may land a moment after the socket closed.
    const logged = (): string | undefined => broker.logs.find((line) => line.includes(clientId) || line.includes('remaining length'));
    for (let waited = 0; !logged() && waited < 3000; waited += 50) await new Promise((r) => setTimeout(r, 50));
    expect(logged()).toBeDefined();
  });
});

describe('7 Conformance targets', () => {
  test('[MQTT-7.0.0-2] a stock MQTT 3.1.1 client (MQTT.js) interoperates without any extension', async () => {
    const url = `mqtt://127.0.0.1:${broker.mqttPort}`;
    const sub = await mqtt.connectAsync(url, { protocolVersion: 4, clientId: uniqueId('js'), reconnectPeriod: 0 });
    const pub = await mqtt.connectAsync(url, { protocolVersion: 4, clientId: uniqueId('js'), reconnectPeriod: 0 });
    try {
      const topic = `interop/${uniqueId()}`;
      const got = new Promise<string>((resolve) => sub.on('message', (_t, payload) => resolve(payload.toString())));
      await sub.subscribeAsync(topic, { qos: 2 });
      await pub.publishAsync(topic, 'from-mqtt.js', { qos: 2 });
      expect(await got).toBe('from-mqtt.js');
    } finally {
      await Promise.all([sub.endAsync(), pub.endAsync()]);
    }
  });

  test('[MQTT-7.1.1-1] the byte stream is read as a stream: packets split byte by byte, or several in one write', async () => {
    const topic = `stream/${uniqueId()}`;
    const client = await pool.open();
    const bytes = Buffer.concat([
      generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: uniqueId(), clean: true, keepalive: 30 }),
      generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 1 }] }),
    ]);
    for (const byte of bytes) {
      client.sendBytes(Buffer.from([byte]));
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect((await client.next()).cmd).toBe('connack');
    expect((await client.next()).cmd).toBe('suback');
    const burst = Buffer.concat([1, 2, 3].map((i) => generate({ cmd: 'publish', topic, payload: Buffer.from(`m${i}`), qos: 1, dup: false, retain: false, messageId: i })));
    client.sendBytes(burst);
    const payloads: string[] = [];
    while (payloads.length < 3) {
      const p = await client.next();
      if (p.cmd === 'publish') {
        payloads.push(p.payload.toString());
        client.send({ cmd: 'puback', messageId: p.messageId as number });
      }
    }
    expect(payloads).toEqual(['m1', 'm2', 'm3']);
  });
});
