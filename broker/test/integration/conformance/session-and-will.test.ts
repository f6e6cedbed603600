/**
 * MQTT 3.1.1 conformance: sessions (3.1.2.4, 4.1, 4.4), wills (3.1.2.5–3.1.2.7), user name/password flags
 * (3.1.2.8–3.1.2.9), keep alive (3.1.2.10), PINGREQ (3.12) and DISCONNECT (3.14).
 * Statement ids refer to the OASIS mqtt-v3.1.1-os normative statements; docs/conformance.md maps them.
 */
import { BrokerProcess } from '../../harness/broker-process.js';
import {
  ClientPool, RawMqttClient, acknowledge, field, frame, publish, rawConnect, receive, subscribe, uniqueId,
} from '../../harness/mqtt-raw.js';

let broker: BrokerProcess;
const pool = new ClientPool(() => broker.mqttPort);

beforeAll(async () => {
  broker = await BrokerProcess.start({ nodeName: 'conformance-session' });
});
afterEach(() => pool.closeAll());
afterAll(() => broker?.dispose());

async function publisher(): Promise<RawMqttClient> {
  return pool.connected({ clientId: uniqueId('pub') });
}

/** A subscriber on `filter` that has already received (and discarded) the retained messages matching it. */
async function watcher(filter: string, qos: 0 | 1 | 2 = 1): Promise<RawMqttClient> {
  const client = await pool.connected({ clientId: uniqueId('w') });
  await subscribe(client, { [filter]: qos });
  for (const packet of await client.drain(200)) {
    if (packet.cmd === 'publish') await acknowledge(client, packet);
  }
  return client;
}

/** Opens a connection, sends the raw CONNECT and returns the commands the server sent before closing it. */
async function refusedConnect(bytes: Buffer): Promise<string[]> {
  const client = await pool.open();
  client.sendBytes(bytes);
  return (await client.closedByServer(1000)).map((p) => p.cmd);
}

describe('3.1.2.4 Clean Session', () => {
  test('[MQTT-3.1.2-4] CleanSession 0 resumes the session: its subscriptions still deliver after a reconnect', async () => {
    const clientId = uniqueId();
    const topic = `resume/${clientId}`;
    const first = await pool.connected({ clientId, clean: false });
    await subscribe(first, { [topic]: 1 });
    await first.disconnect();
    const { client, connack } = await pool.connect({ clientId, clean: false });
    expect(connack.sessionPresent).toBe(true);
    await publish(await publisher(), topic, 'after-resume', { qos: 1 });
    expect((await receive(client)).payload.toString()).toBe('after-resume');
  });

  test('[MQTT-3.1.2-5] QoS 1 and QoS 2 messages published while the session is disconnected are stored and delivered on reconnect', async () => {
    const clientId = uniqueId();
    const first = await pool.connected({ clientId, clean: false });
    await subscribe(first, { [`offline/${clientId}/1`]: 1, [`offline/${clientId}/2`]: 2 });
    await first.disconnect();
    const pub = await publisher();
    await publish(pub, `offline/${clientId}/1`, 'qos1', { qos: 1, messageId: 1 });
    await publish(pub, `offline/${clientId}/2`, 'qos2', { qos: 2, messageId: 2 });
    const client = await pool.connected({ clientId, clean: false });
    const delivered = [await receive(client), await receive(client)];
    expect(delivered.map((p) => [p.topic, p.qos, p.payload.toString()])).toEqual([
      [`offline/${clientId}/1`, 1, 'qos1'], [`offline/${clientId}/2`, 2, 'qos2'],
    ]);
  });

  test('[MQTT-3.1.2-6] CleanSession 1 discards the previous session, and its state is not reused by a later session', async () => {
    const clientId = uniqueId();
    const topic = `discard/${clientId}`;
    const first = await pool.connected({ clientId, clean: false });
    await subscribe(first, { [topic]: 1 });
    await first.disconnect();
    const pub = await publisher();
    await publish(pub, topic, 'queued-before-clean', { qos: 1 });
    const clean = await pool.connect({ clientId, clean: true });
    expect(clean.connack.sessionPresent).toBe(false);
    await publish(pub, topic, 'after-clean', { qos: 1, messageId: 2 });
    expect(await clean.client.poll(400)).toBeUndefined();
    await clean.client.disconnect();
    const later = await pool.connect({ clientId, clean: false });
    expect(later.connack.sessionPresent).toBe(false);
    expect(await later.client.poll(400)).toBeUndefined();
  });

  test('[MQTT-3.1.2-7] retained messages are not deleted when the session that published them ends', async () => {
    const topic = `retained-outlives/${uniqueId()}`;
    const owner = await pool.connected({ clientId: uniqueId(), clean: true });
    await publish(owner, topic, 'still-here', { qos: 1, retain: true });
    await owner.disconnect();
    const subscriber = await pool.connected({ clientId: uniqueId('s') });
    await subscribe(subscriber, { [topic]: 1 });
    const retained = await receive(subscriber);
    expect({ payload: retained.payload.toString(), retain: retained.retain }).toEqual({ payload: 'still-here', retain: true });
  });
});

describe('3.1.2.5–3.1.2.7 Will', () => {
  test('[MQTT-3.1.2-8] the will message is published when the network connection closes without DISCONNECT', async () => {
    const topic = `will/${uniqueId()}`;
    const observer = await watcher(topic);
    const client = await pool.connected({ clientId: uniqueId(), will: { topic, payload: 'gone', qos: 1 } });
    await client.destroy();
    const will = await receive(observer);
    expect({ topic: will.topic, payload: will.payload.toString() }).toEqual({ topic, payload: 'gone' });
  });

  test('[MQTT-3.1.2-9] Will Flag 1 without Will Topic and Will Message closes the connection without CONNACK', async () => {
    expect(await refusedConnect(rawConnect({ flags: 0x06, clientId: uniqueId() }))).toEqual([]);
  });

  test('[MQTT-3.1.2-10] the will is removed from the session once published or after DISCONNECT', async () => {
    const topic = `will-once/${uniqueId()}`;
    const observer = await watcher(topic);
    const clientId = uniqueId();
    const first = await pool.connected({ clientId, clean: false, will: { topic, payload: 'first-will', qos: 1 } });
    await first.destroy();
    expect((await receive(observer)).payload.toString()).toBe('first-will');
    const second = await pool.connected({ clientId, clean: false });
    await second.destroy();
    const withWill = await pool.connected({ clientId, clean: false, will: { topic, payload: 'second-will', qos: 1 } });
    await withWill.disconnect();
    const third = await pool.connected({ clientId, clean: false });
    await third.destroy();
    expect(await observer.poll(500)).toBeUndefined();
  });

  test('[MQTT-3.1.2-11] Will Flag 0 with Will QoS 1 set is refused: closed without CONNACK', async () => {
    expect(await refusedConnect(rawConnect({ flags: 0x02 | (1 << 3), clientId: uniqueId() }))).toEqual([]);
  });

  test('[MQTT-3.1.2-11] Will Flag 0 with a Will Topic and Will Message in the payload is refused: closed without CONNACK', async () => {
    const trailing = Buffer.concat([field('will/topic'), field('will-message')]);
    expect(await refusedConnect(rawConnect({ clientId: uniqueId(), trailing }))).toEqual([]);
  });

  test('[MQTT-3.1.2-12] Will Flag 0: no will message is published when the connection ends', async () => {
    const observer = await watcher('#', 0);
    const client = await pool.connected({ clientId: uniqueId() });
    await client.destroy();
    expect(await observer.poll(500)).toBeUndefined();
  });

  test('[MQTT-3.1.2-13] Will Flag 0 with Will QoS 2 set is refused: closed without CONNACK', async () => {
    expect(await refusedConnect(rawConnect({ flags: 0x02 | (2 << 3), clientId: uniqueId() }))).toEqual([]);
  });

  test('[MQTT-3.1.2-14] Will QoS 3 is refused: closed without CONNACK', async () => {
    expect(await refusedConnect(rawConnect({ clientId: uniqueId(), willTopic: 'will/qos3', willPayload: 'x', willQos: 3 }))).toEqual([]);
  });

  test('[MQTT-3.1.2-15] Will Flag 0 with Will Retain 1 is refused: closed without CONNACK', async () => {
    expect(await refusedConnect(rawConnect({ flags: 0x02 | 0x20, clientId: uniqueId() }))).toEqual([]);
  });

  test('[MQTT-3.1.2-16] Will Retain 0: the will is published as a non-retained message', async () => {
    const topic = `will-plain/${uniqueId()}`;
    const observer = await watcher(topic);
    const client = await pool.connected({ clientId: uniqueId(), will: { topic, payload: 'plain', qos: 1, retain: false } });
    await client.destroy();
    expect((await receive(observer)).retain).toBe(false);
    const late = await pool.connected({ clientId: uniqueId('late') });
    await subscribe(late, { [topic]: 1 });
    expect(await late.poll(400)).toBeUndefined();
  });

  test('[MQTT-3.1.2-17] Will Retain 1: the will is published as a retained message', async () => {
    const topic = `will-retained/${uniqueId()}`;
    const client = await pool.connected({ clientId: uniqueId(), will: { topic, payload: 'kept', qos: 1, retain: true } });
    await client.destroy();
    const late = await pool.connected({ clientId: uniqueId('late') });
    let retained;
    for (let attempt = 0; attempt < 20 && !retained; attempt++) {
      await subscribe(late, { [topic]: 1 }, attempt + 1);
      retained = await late.poll(100);
    }
    expect(retained).toMatchObject({ cmd: 'publish', topic, retain: true });
  });
});

describe('3.1.2.8–3.1.2.9 User Name and Password flags', () => {
  test('[MQTT-3.1.2-18] User Name Flag 0 with a User Name in the payload is refused: closed without CONNACK', async () => {
    expect(await refusedConnect(rawConnect({ clientId: uniqueId(), trailing: field('someone') }))).toEqual([]);
  });

  test('[MQTT-3.1.2-19] User Name Flag 1 without a User Name is refused: closed without CONNACK', async () => {
    expect(await refusedConnect(rawConnect({ flags: 0x82, clientId: uniqueId() }))).toEqual([]);
  });

  test('[MQTT-3.1.2-20] Password Flag 0 with a Password in the payload is refused: closed without CONNACK', async () => {
    expect(await refusedConnect(rawConnect({ clientId: uniqueId(), username: 'someone', flags: 0x82, trailing: field('secret') }))).toEqual([]);
  });

  test('[MQTT-3.1.2-21] Password Flag 1 without a Password is refused: closed without CONNACK', async () => {
    expect(await refusedConnect(rawConnect({ flags: 0xc2, clientId: uniqueId(), username: 'someone' }))).toEqual([]);
  });

  test('[MQTT-3.1.2-22] Password Flag 1 with User Name Flag 0 is refused: closed without CONNACK', async () => {
    expect(await refusedConnect(rawConnect({ flags: 0x42, clientId: uniqueId(), password: 'secret' }))).toEqual([]);
  });
});

describe('3.1.2.10 Keep Alive, 3.12 PINGREQ', () => {
  test('[MQTT-3.1.2-24] a silent client is disconnected after one and a half times its Keep Alive, and its will published', async () => {
    const topic = `keepalive-will/${uniqueId()}`;
    const observer = await watcher(topic);
    const client = await pool.connected({ clientId: uniqueId(), keepalive: 1, will: { topic, payload: 'timed-out', qos: 1 } });
    const since = Date.now();
    expect(await client.waitClosed(4000)).toBe(true);
    const after = client.closedAfter(since) as number;
    expect(after).toBeGreaterThanOrEqual(1400);
    expect(after).toBeLessThan(3000);
    expect((await receive(observer)).payload.toString()).toBe('timed-out');
  });

  test('[MQTT-3.1.2-24] control packets within the Keep Alive keep the connection open', async () => {
    const client = await pool.connected({ clientId: uniqueId(), keepalive: 1 });
    for (let i = 0; i < 6; i++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      client.send({ cmd: 'pingreq' });
      expect((await client.next()).cmd).toBe('pingresp');
    }
    expect(client.closed).toBe(false);
  });

  test('[MQTT-3.12.4-1] the server answers PINGREQ with PINGRESP', async () => {
    const client = await pool.connected({ clientId: uniqueId() });
    client.send({ cmd: 'pingreq' });
    client.send({ cmd: 'pingreq' });
    expect([(await client.next()).cmd, (await client.next()).cmd]).toEqual(['pingresp', 'pingresp']);
  });
});

describe('3.14 DISCONNECT', () => {
  test('[MQTT-3.14.1-1] a DISCONNECT with non-zero reserved bits disconnects the client, and is not a normal DISCONNECT: the will is published', async () => {
    const topic = `bad-disconnect/${uniqueId()}`;
    const observer = await watcher(topic);
    const client = await pool.connected({ clientId: uniqueId(), will: { topic, payload: 'published-anyway', qos: 1 } });
    client.sendBytes(frame(0xe1));
    expect(await client.waitClosed()).toBe(true);
    expect((await receive(observer)).payload.toString()).toBe('published-anyway');
  });

  test('[MQTT-3.14.4-3] on DISCONNECT the server discards the will without publishing it', async () => {
    const topic = `clean-disconnect/${uniqueId()}`;
    const observer = await watcher(topic);
    const client = await pool.connected({ clientId: uniqueId(), will: { topic, payload: 'must-not-appear', qos: 1 } });
    await client.disconnect();
    expect(await observer.poll(500)).toBeUndefined();
  });
});

describe('4.1 Storing state, 4.4 Message delivery retry', () => {
  test('[MQTT-4.1.0-1] session state is kept for the whole session, across several disconnections', async () => {
    const clientId = uniqueId();
    const topic = `long-session/${clientId}`;
    const pub = await publisher();
    const first = await pool.connected({ clientId, clean: false });
    await subscribe(first, { [topic]: 1 });
    await first.destroy();
    await publish(pub, topic, 'during-first-gap', { qos: 1, messageId: 1 });
    const second = await pool.connected({ clientId, clean: false });
    expect((await receive(second)).payload.toString()).toBe('during-first-gap');
    await second.destroy();
    await publish(pub, topic, 'during-second-gap', { qos: 1, messageId: 2 });
    const third = await pool.connected({ clientId, clean: false });
    expect((await receive(third)).payload.toString()).toBe('during-second-gap');
  });

  test('[MQTT-4.1.0-2] a clean session lasts as long as its network connection', async () => {
    const client = await pool.connected({ clientId: uniqueId(), clean: true });
    const topic = `lifetime/${uniqueId()}`;
    await subscribe(client, { [topic]: 1 });
    const pub = await publisher();
    for (let i = 0; i < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 300));
      await publish(pub, topic, `tick-${i}`, { qos: 1, messageId: i + 1 });
      expect((await receive(client)).payload.toString()).toBe(`tick-${i}`);
    }
  });

  test('[MQTT-4.4.0-1] on reconnect with CleanSession 0 the server re-sends unacknowledged PUBLISH packets with their original identifiers', async () => {
    const clientId = uniqueId();
    const topic = `retry/${clientId}`;
    const first = await pool.connected({ clientId, clean: false });
    await subscribe(first, { [topic]: 1 });
    const pub = await publisher();
    await publish(pub, topic, 'unacked', { qos: 1 });
    const original = await first.next('publish');
    await first.destroy();
    const second = await pool.connected({ clientId, clean: false });
    const resent = await second.next('publish');
    expect({ id: resent.messageId, payload: resent.payload.toString() }).toEqual({ id: original.messageId, payload: 'unacked' });
  });

  test('[MQTT-4.4.0-1] on reconnect with CleanSession 0 the server re-sends an unacknowledged PUBREL with its original identifier', async () => {
    const clientId = uniqueId();
    const topic = `retry-rel/${clientId}`;
    const first = await pool.connected({ clientId, clean: false });
    await subscribe(first, { [topic]: 2 });
    await publish(await publisher(), topic, 'qos2', { qos: 2 });
    const original = await first.next('publish');
    first.send({ cmd: 'pubrec', messageId: original.messageId as number });
    expect((await first.next('pubrel')).messageId).toBe(original.messageId);
    await first.destroy();
    const second = await pool.connected({ clientId, clean: false });
    const resent = await second.next();
    expect(resent).toMatchObject({ cmd: 'pubrel', messageId: original.messageId });
    second.send({ cmd: 'pubcomp', messageId: original.messageId as number });
    expect(await second.poll(400)).toBeUndefined();
  });
});
