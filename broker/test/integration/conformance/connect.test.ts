/**
 * MQTT 3.1.1 conformance, sections 3.1 (CONNECT) and 3.2 (CONNACK): what the server does with valid and invalid
 * CONNECT packets. Statement ids refer to the OASIS mqtt-v3.1.1-os normative statements (appendix B);
 * docs/conformance.md maps each to its test.
 */
import { generate } from 'mqtt-packet';
import { BrokerProcess } from '../../harness/broker-process.js';
import { eventually, scrapeMetric } from '../../harness/metrics.js';
import { ClientPool, field, frame, publish, rawConnect, receive, subscribe, u16, uniqueId } from '../../harness/mqtt-raw.js';

let broker: BrokerProcess;
const pool = new ClientPool(() => broker.mqttPort);

beforeAll(async () => {
  broker = await BrokerProcess.start({ nodeName: 'conformance-connect' });
});
afterEach(() => pool.closeAll());
afterAll(() => broker?.dispose());

/** Sends raw bytes on a fresh connection and returns what the server sent before closing it. */
async function sendAndAwaitClose(bytes: Buffer): Promise<string[]> {
  const client = await pool.open();
  client.sendBytes(bytes);
  return (await client.closedByServer(1000)).map((p) => p.cmd);
}

/** Ill-formed UTF-8: a lone continuation byte and an encoded surrogate (U+D800). */
const ILL_FORMED_UTF8 = Buffer.from([0x61, 0x80, 0xed, 0xa0, 0x80]);

describe('3.1 CONNECT: packet order', () => {
  test.each([
    ['PINGREQ', frame(0xc0)],
    ['PUBLISH', generate({ cmd: 'publish', topic: 'early', payload: Buffer.from('x'), qos: 0, dup: false, retain: false })],
    ['SUBSCRIBE', generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'early', qos: 0 }] })],
  ])('[MQTT-3.1.0-1] a %s before CONNECT closes the connection unanswered', async (_name, bytes) => {
    expect(await sendAndAwaitClose(bytes)).toEqual([]);
  });

  test('[MQTT-3.1.0-2] a second CONNECT is a protocol violation: the server disconnects without a second CONNACK', async () => {
    const client = await pool.connected({ clientId: uniqueId() });
    client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: uniqueId(), clean: true, keepalive: 30 });
    expect((await client.closedByServer()).map((p) => p.cmd)).toEqual([]);
  });
});

describe('3.1.2 CONNECT variable header', () => {
  test('[MQTT-3.1.2-1] a CONNECT with an incorrect protocol name is not processed: closed without CONNACK', async () => {
    expect(await sendAndAwaitClose(rawConnect({ protocolName: 'MQTX', clientId: uniqueId() }))).toEqual([]);
  });

  test('[MQTT-3.1.2-2] an unsupported protocol level (5, MQTT 5) gets CONNACK 0x01 and the connection is closed', async () => {
    const client = await pool.open();
    client.sendBytes(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: uniqueId(), clean: true, keepalive: 30 }));
    const packets = await client.closedByServer();
    expect(packets).toEqual([expect.objectContaining({ cmd: 'connack', returnCode: 1 })]);
  });

  test.each([2, 6, 255])('[MQTT-3.1.2-2] an unsupported protocol level (%i) gets CONNACK 0x01 and the connection is closed', async (level) => {
    const client = await pool.open();
    client.sendBytes(rawConnect({ level, clientId: uniqueId() }));
    const packets = await client.closedByServer();
    expect(packets).toEqual([expect.objectContaining({ cmd: 'connack', returnCode: 1 })]);
  });

  test('[MQTT-3.1.2-2] an unsupported protocol level is counted as refused with reason unsupported_protocol', async () => {
    const unsupported = (): Promise<number> => scrapeMetric(broker, 'meridian_connections_refused_total', { reason: 'unsupported_protocol' });
    const before = await unsupported();
    const client = await pool.open();
    client.sendBytes(rawConnect({ level: 6, clientId: uniqueId() }));
    await client.closedByServer();
    expect(await eventually(async () => (await unsupported()) === before + 1)).toBe(true);
  });

  test('[MQTT-3.1.2-3] a CONNECT whose reserved flag (bit 0) is 1 is refused: closed without CONNACK', async () => {
    expect(await sendAndAwaitClose(rawConnect({ flags: 0x03, clientId: uniqueId() }))).toEqual([]);
  });
});

describe('3.1.3 CONNECT payload', () => {
  test('[MQTT-3.1.3-1] the payload fields are read in the order Client Identifier, Will Topic, Will Message', async () => {
    const watcher = await pool.connected({ clientId: uniqueId('w') });
    const willTopic = `order/${uniqueId()}`;
    await subscribe(watcher, { [willTopic]: 0 });
    const client = await pool.open();
    client.sendBytes(rawConnect({ clientId: uniqueId(), willTopic, willPayload: 'will-body', willQos: 0 }));
    expect(await client.next('connack')).toMatchObject({ returnCode: 0 });
    await client.destroy();
    const will = await watcher.next('publish');
    expect({ topic: will.topic, payload: will.payload.toString() }).toEqual({ topic: willTopic, payload: 'will-body' });
  });

  test('[MQTT-3.1.3-2] the Client Identifier identifies the session state', async () => {
    const owner = uniqueId('a');
    const first = await pool.connected({ clientId: owner, clean: false });
    await subscribe(first, { [`ident/${owner}`]: 1 });
    await first.disconnect();
    const stranger = await pool.connect({ clientId: uniqueId('b'), clean: false });
    expect(stranger.connack.sessionPresent).toBe(false);
    const again = await pool.connect({ clientId: owner, clean: false });
    expect(again.connack.sessionPresent).toBe(true);
  });

  test('[MQTT-3.1.3-3] a CONNECT without a Client Identifier field is closed without CONNACK', async () => {
    expect(await sendAndAwaitClose(frame(0x10, field('MQTT'), Buffer.from([4, 0x02]), u16(30)))).toEqual([]);
  });

  test('[MQTT-3.1.3-4] a Client Identifier that is ill-formed UTF-8 closes the connection without CONNACK', async () => {
    expect(await sendAndAwaitClose(rawConnect({ clientId: ILL_FORMED_UTF8 }))).toEqual([]);
  });

  test.each([
    ['23 bytes', 'ABCDEFGHIJ0123456789xyz'],
    ['1 byte', 'Z'],
  ])('[MQTT-3.1.3-5] a Client Identifier of %s of [0-9a-zA-Z] is accepted', async (_len, clientId) => {
    const { connack } = await pool.connect({ clientId });
    expect(connack.returnCode).toBe(0);
  });

  test('[MQTT-3.1.3-6] a zero-byte Client Identifier with CleanSession 1 gets a unique identifier of its own', async () => {
    const a = await pool.connected({ clientId: '', clean: true });
    const b = await pool.connected({ clientId: '', clean: true });
    const topicA = `anon/${uniqueId()}`;
    const topicB = `anon/${uniqueId()}`;
    await subscribe(a, { [topicA]: 1 });
    await subscribe(b, { [topicB]: 1 });
    await publish(a, topicB, 'to-b', { qos: 1 });
    expect((await receive(b)).payload.toString()).toBe('to-b');
    await publish(b, topicA, 'to-a', { qos: 1 });
    expect((await receive(a)).payload.toString()).toBe('to-a');
    expect(a.closed || b.closed).toBe(false);
  });

  test('[MQTT-3.1.3-8] a zero-byte Client Identifier with CleanSession 0 gets CONNACK 0x02 and is closed', async () => {
    const client = await pool.open();
    client.sendBytes(rawConnect({ clientId: '', clean: false }));
    expect(await client.closedByServer()).toEqual([expect.objectContaining({ cmd: 'connack', returnCode: 2, sessionPresent: false })]);
  });

  test('[MQTT-3.1.3-9] a rejected Client Identifier (longer than limits.maxClientIdLength) gets CONNACK 0x02 and is closed', async () => {
    const client = await pool.open();
    client.sendBytes(rawConnect({ clientId: 'x'.repeat(300) }));
    expect(await client.closedByServer()).toEqual([expect.objectContaining({ cmd: 'connack', returnCode: 2 })]);
  });

  test('[MQTT-3.1.3-10] a Will Topic that is ill-formed UTF-8 closes the connection without CONNACK', async () => {
    expect(await sendAndAwaitClose(rawConnect({ clientId: uniqueId(), willTopic: ILL_FORMED_UTF8, willPayload: 'x' }))).toEqual([]);
  });

  test('[MQTT-3.1.3-11] a User Name that is ill-formed UTF-8 closes the connection without CONNACK', async () => {
    expect(await sendAndAwaitClose(rawConnect({ clientId: uniqueId(), username: ILL_FORMED_UTF8 }))).toEqual([]);
  });
});

describe('3.1.4 CONNECT actions', () => {
  test('[MQTT-3.1.4-1] a CONNECT that does not conform (field longer than the packet) is closed without CONNACK', async () => {
    expect(await sendAndAwaitClose(frame(0x10, field('MQTT'), Buffer.from([4, 0x02]), u16(30), u16(50), Buffer.from('abc')))).toEqual([]);
  });

  test('[MQTT-3.1.4-2] a CONNECT with the Client Identifier of a connected client disconnects the existing client', async () => {
    const clientId = uniqueId();
    const existing = await pool.connected({ clientId });
    const successor = await pool.connected({ clientId });
    expect(await existing.waitClosed()).toBe(true);
    successor.send({ cmd: 'pingreq' });
    expect((await successor.next()).cmd).toBe('pingresp');
  });

  test('[MQTT-3.1.4-3] CleanSession processing is performed: CleanSession 1 drops the stored session and its queued messages', async () => {
    const clientId = uniqueId();
    const topic = `clean/${clientId}`;
    const persistent = await pool.connected({ clientId, clean: false });
    await subscribe(persistent, { [topic]: 1 });
    await persistent.disconnect();
    await publish(await pool.connected({ clientId: uniqueId('p') }), topic, 'queued', { qos: 1 });
    const { client, connack } = await pool.connect({ clientId, clean: true });
    expect(connack.sessionPresent).toBe(false);
    expect(await client.poll(500)).toBeUndefined();
  });

  test('[MQTT-3.1.4-4] a valid CONNECT is acknowledged with CONNACK return code 0', async () => {
    const { connack } = await pool.connect({ clientId: uniqueId() });
    expect(connack).toMatchObject({ cmd: 'connack', returnCode: 0 });
  });

  test('[MQTT-3.1.4-5] after refusing a CONNECT the server processes no data sent behind it', async () => {
    const topic = `refused/${uniqueId()}`;
    const client = await pool.open();
    const v5 = { protocolVersion: 5 };
    client.sendBytes(Buffer.concat([
      generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: uniqueId(), clean: true, keepalive: 30 }, v5),
      generate({ cmd: 'publish', topic, payload: Buffer.from('must-not-be-retained'), qos: 0, dup: false, retain: true }, v5),
    ]));
    expect((await client.closedByServer()).map((p) => p.cmd)).toEqual(['connack']);
    const observer = await pool.connected({ clientId: uniqueId('o') });
    await subscribe(observer, { [topic]: 0 });
    expect(await observer.poll(500)).toBeUndefined();
  });
});

describe('3.2 CONNACK', () => {
  test('[MQTT-3.2.0-1] the first packet the server sends is CONNACK, even when more packets follow CONNECT at once', async () => {
    const topic = `first/${uniqueId()}`;
    await publish(await pool.connected({ clientId: uniqueId('p') }), topic, 'retained', { retain: true });
    const client = await pool.open();
    client.sendBytes(Buffer.concat([
      generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: uniqueId(), clean: true, keepalive: 30 }),
      generate({ cmd: 'subscribe', messageId: 7, subscriptions: [{ topic, qos: 0 }] }),
      generate({ cmd: 'pingreq' }),
    ]));
    const received = [await client.next(), await client.next(), await client.next(), await client.next()].map((p) => p.cmd);
    expect(received[0]).toBe('connack');
    expect(received.slice(1).sort()).toEqual(['pingresp', 'publish', 'suback']);
  });

  test('[MQTT-3.2.2-1] CleanSession 1 is acknowledged with Session Present 0, even when a session was stored', async () => {
    const clientId = uniqueId();
    const persistent = await pool.connected({ clientId, clean: false });
    await subscribe(persistent, { [`sp/${clientId}`]: 1 });
    await persistent.disconnect();
    const { connack } = await pool.connect({ clientId, clean: true });
    expect(connack).toMatchObject({ returnCode: 0, sessionPresent: false });
  });

  test('[MQTT-3.2.2-2] CleanSession 0 with a stored session (with subscriptions) gets Session Present 1', async () => {
    const clientId = uniqueId();
    const first = await pool.connected({ clientId, clean: false });
    await subscribe(first, { [`sp/${clientId}`]: 1 });
    await first.disconnect();
    const { connack } = await pool.connect({ clientId, clean: false });
    expect(connack).toMatchObject({ returnCode: 0, sessionPresent: true });
  });

  test('[MQTT-3.2.2-2] CleanSession 0 with a stored session that has no subscriptions gets Session Present 1', async () => {
    const clientId = uniqueId();
    await (await pool.connected({ clientId, clean: false })).disconnect();
    const { connack } = await pool.connect({ clientId, clean: false });
    expect(connack).toMatchObject({ returnCode: 0, sessionPresent: true });
  });

  test('[MQTT-3.2.2-3] CleanSession 0 without a stored session gets Session Present 0', async () => {
    const { connack } = await pool.connect({ clientId: uniqueId(), clean: false });
    expect(connack).toMatchObject({ returnCode: 0, sessionPresent: false });
  });

  test('[MQTT-3.2.2-4] a CONNACK with a non-zero return code has Session Present 0, even for a stored session', async () => {
    const clientId = uniqueId();
    const first = await pool.connected({ clientId, clean: false });
    await subscribe(first, { [`sp/${clientId}`]: 1 });
    await first.disconnect();
    const client = await pool.open();
    client.sendBytes(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId, clean: false, keepalive: 30 }));
    const connack = await client.next('connack');
    expect(connack.returnCode).not.toBe(0);
    expect(connack.sessionPresent).toBe(false);
  });

  test('[MQTT-3.2.2-5] after a CONNACK with a non-zero return code the server closes the connection', async () => {
    const client = await pool.open();
    client.sendBytes(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: uniqueId(), clean: true, keepalive: 30 }));
    expect((await client.next('connack')).returnCode).toBe(1);
    expect(await client.waitClosed()).toBe(true);
  });
});
