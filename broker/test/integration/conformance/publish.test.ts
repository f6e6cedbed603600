/**
 * MQTT 3.1.1 conformance: PUBLISH and its acknowledgements (3.3–3.7), QoS flows (4.3), message receipt (4.5),
 * ordering (4.6) and packet identifiers on server-sent PUBLISH packets (2.3.1).
 * Statement ids refer to the OASIS mqtt-v3.1.1-os normative statements; docs/conformance.md maps them.
 */
import type { IPublishPacket } from 'mqtt-packet';
import { BrokerProcess } from '../../harness/broker-process.js';
import {
  ClientPool, RawMqttClient, acknowledge, frame, publish, rawPublish, receive, subscribe, u16, uniqueId,
} from '../../harness/mqtt-raw.js';

let broker: BrokerProcess;
const pool = new ClientPool(() => broker.mqttPort);

beforeAll(async () => {
  broker = await BrokerProcess.start({ nodeName: 'conformance-publish' });
});
afterEach(() => pool.closeAll());
afterAll(() => broker?.dispose());

async function connected(clean = true, clientId = uniqueId()): Promise<RawMqttClient> {
  return pool.connected({ clientId, clean });
}

async function subscriber(filters: Record<string, 0 | 1 | 2>): Promise<RawMqttClient> {
  const client = await connected();
  await subscribe(client, filters);
  return client;
}

function summary(p: IPublishPacket): { topic: string; payload: string; qos: number; retain: boolean; dup: boolean } {
  return { topic: p.topic, payload: p.payload.toString(), qos: p.qos, retain: p.retain, dup: p.dup };
}

describe('3.3.1 PUBLISH fixed header', () => {
  test('[MQTT-3.3.1-1] a PUBLISH the server re-delivers after reconnect has DUP 1', async () => {
    const clientId = uniqueId();
    const topic = `redeliver/${clientId}`;
    const first = await connected(false, clientId);
    await subscribe(first, { [topic]: 1 });
    await publish(await connected(), topic, 'again', { qos: 1 });
    const original = await first.next('publish');
    expect(original.dup).toBe(false);
    await first.destroy();
    const second = await connected(false, clientId);
    const resent = await second.next('publish');
    expect({ id: resent.messageId, dup: resent.dup }).toEqual({ id: original.messageId, dup: true });
  });

  test('[MQTT-3.3.1-2] every QoS 0 PUBLISH the server sends has DUP 0, even when the publisher set DUP', async () => {
    const topic = `dup0/${uniqueId()}`;
    const sub = await subscriber({ [topic]: 0 });
    const pub = await connected();
    pub.sendBytes(rawPublish({ topic, payload: 'dup-set', qos: 1, dup: true, messageId: 9 }));
    await pub.next('puback');
    expect(summary(await sub.next('publish'))).toMatchObject({ qos: 0, dup: false });
  });

  test('[MQTT-3.3.1-3] the DUP flag of an incoming PUBLISH is not propagated to subscribers', async () => {
    const topic = `dup-propagation/${uniqueId()}`;
    const sub = await subscriber({ [topic]: 1 });
    const pub = await connected();
    pub.sendBytes(rawPublish({ topic, payload: 'first-attempt-marked-dup', qos: 1, dup: true, messageId: 3 }));
    await pub.next('puback');
    expect(summary(await receive(sub))).toMatchObject({ qos: 1, dup: false });
  });

  test('[MQTT-3.3.1-4] a PUBLISH with both QoS bits set closes the connection', async () => {
    const client = await connected();
    client.sendBytes(rawPublish({ topic: 'qos/three', payload: 'x', qos: 3, messageId: 1 }));
    expect(await client.closedByServer()).toEqual([]);
  });

  test('[MQTT-3.3.1-5] a retained PUBLISH is stored with its QoS and delivered to future subscribers', async () => {
    const topic = `retain-qos/${uniqueId()}`;
    await publish(await connected(), topic, 'kept-at-qos1', { qos: 1, retain: true });
    const late = await subscriber({ [topic]: 2 });
    expect(summary(await receive(late))).toMatchObject({ payload: 'kept-at-qos1', qos: 1, retain: true });
  });

  test('[MQTT-3.3.1-6] a new subscription receives the last retained message of each matching topic', async () => {
    const base = `retain-each/${uniqueId()}`;
    const pub = await connected();
    await publish(pub, `${base}/a`, 'a1', { qos: 1, retain: true, messageId: 1 });
    await publish(pub, `${base}/a`, 'a2', { qos: 1, retain: true, messageId: 2 });
    await publish(pub, `${base}/b`, 'b1', { qos: 1, retain: true, messageId: 3 });
    const late = await subscriber({ [`${base}/+`]: 1 });
    const received = [await receive(late), await receive(late)].map((p) => `${p.topic}=${p.payload.toString()}`).sort();
    expect(received).toEqual([`${base}/a=a2`, `${base}/b=b1`]);
    expect(await late.poll(300)).toBeUndefined();
  });

  test('[MQTT-3.3.1-7] a retained QoS 0 PUBLISH discards the message previously retained for the topic', async () => {
    const topic = `retain-qos0/${uniqueId()}`;
    const pub = await connected();
    await publish(pub, topic, 'old-qos1', { qos: 1, retain: true });
    await publish(pub, topic, 'new-qos0', { qos: 0, retain: true });
    pub.send({ cmd: 'pingreq' });
    await pub.next('pingresp');
    const late = await subscriber({ [topic]: 1 });
    const received = (await late.drain(300)).map((p) => (p.cmd === 'publish' ? p.payload.toString() : p.cmd));
    expect(received.filter((payload) => payload !== 'new-qos0')).toEqual([]);
  });

  test('[MQTT-3.3.1-8] a message sent because a new subscription was made has RETAIN 1', async () => {
    const topic = `retain-flag/${uniqueId()}`;
    await publish(await connected(), topic, 'r', { qos: 0, retain: true });
    const late = await subscriber({ [topic]: 0 });
    expect((await late.next('publish')).retain).toBe(true);
  });

  test('[MQTT-3.3.1-9] a message sent to an established subscription has RETAIN 0, however it was published', async () => {
    const topic = `retain-live/${uniqueId()}`;
    const sub = await subscriber({ [topic]: 1 });
    await publish(await connected(), topic, 'published-retained', { qos: 1, retain: true });
    expect(summary(await receive(sub))).toMatchObject({ payload: 'published-retained', retain: false });
  });

  test('[MQTT-3.3.1-10] a retained zero-byte PUBLISH reaches current subscribers and removes the retained message', async () => {
    const topic = `retain-clear/${uniqueId()}`;
    const pub = await connected();
    await publish(pub, topic, 'to-be-cleared', { qos: 1, retain: true, messageId: 1 });
    const sub = await subscriber({ [topic]: 1 });
    expect((await receive(sub)).payload.toString()).toBe('to-be-cleared');
    await publish(pub, topic, Buffer.alloc(0), { qos: 1, retain: true, messageId: 2 });
    expect((await receive(sub)).payload.length).toBe(0);
    const late = await subscriber({ [topic]: 1 });
    expect(await late.poll(400)).toBeUndefined();
  });

  test('[MQTT-3.3.1-11] a zero-byte retained message is not stored as a retained message', async () => {
    const topic = `retain-empty/${uniqueId()}`;
    await publish(await connected(), topic, Buffer.alloc(0), { qos: 1, retain: true });
    const late = await subscriber({ [topic]: 1 });
    expect(await late.poll(400)).toBeUndefined();
  });

  test('[MQTT-3.3.1-12] a PUBLISH with RETAIN 0 is not stored and does not replace the retained message', async () => {
    const topic = `retain-keep/${uniqueId()}`;
    const pub = await connected();
    await publish(pub, topic, 'retained-one', { qos: 1, retain: true, messageId: 1 });
    await publish(pub, topic, 'not-retained', { qos: 1, retain: false, messageId: 2 });
    const late = await subscriber({ [topic]: 1 });
    expect((await receive(late)).payload.toString()).toBe('retained-one');
    expect(await late.poll(300)).toBeUndefined();
  });
});

describe('3.3.2 PUBLISH variable header', () => {
  test('[MQTT-3.3.2-1] a Topic Name that is ill-formed UTF-8 closes the connection', async () => {
    const client = await connected();
    client.sendBytes(rawPublish({ topic: Buffer.from([0x74, 0x2f, 0xff, 0xfe]), payload: 'x' }));
    expect(await client.closedByServer(1000)).toEqual([]);
  });

  test('[MQTT-3.3.2-2] a Topic Name containing a wildcard closes the connection', async () => {
    const client = await connected();
    client.sendBytes(rawPublish({ topic: 'sport/+/score', payload: 'x', qos: 1, messageId: 1 }));
    expect((await client.closedByServer()).map((p) => p.cmd)).toEqual([]);
  });

  test('[MQTT-3.3.2-3] the Topic Name the server sends matches the subscription Topic Filter', async () => {
    const base = `match/${uniqueId()}`;
    const sub = await subscriber({ [`${base}/+/score`]: 0 });
    const pub = await connected();
    for (const topic of [`${base}/tennis/score`, `${base}/tennis/player`, `${base}/golf/score`, `${base}/score`, `${base}/a/b/score`]) {
      await publish(pub, topic, topic);
    }
    const topics = (await sub.drain(300)).map((p) => (p.cmd === 'publish' ? p.topic : p.cmd));
    expect(topics).toEqual([`${base}/tennis/score`, `${base}/golf/score`]);
  });
});

describe('3.3.4 PUBLISH actions', () => {
  test('[MQTT-3.3.4-1] QoS 0 gets no response, QoS 1 gets PUBACK, QoS 2 gets PUBREC', async () => {
    const client = await connected();
    const topic = `responses/${uniqueId()}`;
    client.send({ cmd: 'publish', topic, payload: Buffer.from('q0'), qos: 0, dup: false, retain: false });
    expect(await client.poll(200)).toBeUndefined();
    client.send({ cmd: 'publish', topic, payload: Buffer.from('q1'), qos: 1, dup: false, retain: false, messageId: 11 });
    expect(await client.next()).toMatchObject({ cmd: 'puback', messageId: 11 });
    client.send({ cmd: 'publish', topic, payload: Buffer.from('q2'), qos: 2, dup: false, retain: false, messageId: 12 });
    expect(await client.next()).toMatchObject({ cmd: 'pubrec', messageId: 12 });
  });

  test('[MQTT-3.3.5-1] with overlapping subscriptions the message is delivered respecting the maximum QoS of them', async () => {
    const base = `overlap/${uniqueId()}`;
    const sub = await subscriber({ [`${base}/#`]: 0, [`${base}/x`]: 2 });
    await publish(await connected(), `${base}/x`, 'overlapping', { qos: 2 });
    const copies: IPublishPacket[] = [];
    for (let p = await sub.poll(500); p !== undefined; p = await sub.poll(300)) {
      if (p.cmd !== 'publish') continue;
      copies.push(p);
      await acknowledge(sub, p);
    }
    expect(copies.length).toBeGreaterThanOrEqual(1);
    expect(Math.max(...copies.map((c) => c.qos))).toBe(2);
  });

  /** The QoS of each copy a subscriber with `filters` gets of one QoS 2 message on `<base>/x`, acknowledged. */
  async function copiesQos(filters: (base: string) => Record<string, 0 | 1 | 2>): Promise<number[]> {
    const base = `overlap/${uniqueId()}`;
    const sub = await subscriber(filters(base));
    await publish(await connected(), `${base}/x`, 'overlapping', { qos: 2 });
    const qos: number[] = [];
    for (let p = await sub.poll(500); p !== undefined; p = await sub.poll(300)) {
      if (p.cmd !== 'publish') continue;
      qos.push(p.qos);
      await acknowledge(sub, p);
    }
    return qos;
  }

  test('[MQTT-3.3.5-1] overlapping wildcard subscriptions: one copy at the highest granted QoS, whichever matches first', async () => {
    expect(await copiesQos((base) => ({ [`${base}/#`]: 0, [`${base}/+`]: 1, [`+/${base.slice('overlap/'.length)}/+`]: 0 }))).toEqual([1]);
  });

  // Cause: security.ts authorizeForward (downgradeToSubscriptionQos) lowers the QoS to that of a filter equal to
  // the topic, after aedes has chosen the highest of the matching subscriptions.
  test('[MQTT-3.3.5-1] an exact filter granted a lower QoS than an overlapping wildcard does not lower the delivery', async () => {
    expect(await copiesQos((base) => ({ [`${base}/#`]: 2, [`${base}/x`]: 0 }))).toEqual([2]);
  });

  test('[MQTT-3.3.5-2] an unauthorized PUBLISH ($SYS topic from an ordinary client) is acknowledged or the connection closed', async () => {
    const client = await connected();
    client.send({ cmd: 'publish', topic: '$SYS/forged', payload: Buffer.from('x'), qos: 1, dup: false, retain: false, messageId: 5 });
    const answer = await client.poll(1000);
    const outcome = answer?.cmd === 'puback' ? `puback ${answer.messageId}` : client.closed ? 'closed' : `unexpected: ${answer?.cmd ?? 'nothing'}`;
    expect(['puback 5', 'closed']).toContain(outcome);
  });
});

describe('3.6 PUBREL', () => {
  test('[MQTT-3.6.1-1] a PUBREL whose fixed-header flags are not 0010 closes the connection', async () => {
    const client = await connected();
    client.send({ cmd: 'publish', topic: `pubrel/${uniqueId()}`, payload: Buffer.from('x'), qos: 2, dup: false, retain: false, messageId: 4 });
    await client.next('pubrec');
    client.sendBytes(frame(0x60, u16(4)));
    expect((await client.closedByServer()).map((p) => p.cmd)).toEqual([]);
  });
});

describe('4.3 Quality of Service levels and protocol flows', () => {
  test('[MQTT-4.3.1-1] the server sends QoS 0 messages with QoS 0 and DUP 0', async () => {
    const topic = `qos0/${uniqueId()}`;
    const sub = await subscriber({ [topic]: 0 });
    await publish(await connected(), topic, 'fire-and-forget', { qos: 0 });
    expect(summary(await sub.next('publish'))).toMatchObject({ qos: 0, dup: false });
  });

  test('[MQTT-4.3.2-1] QoS 1 sender: DUP 0 first, and a PUBLISH stays unacknowledged (re-sent) until its PUBACK', async () => {
    const clientId = uniqueId();
    const topic = `qos1-sender/${clientId}`;
    const first = await connected(false, clientId);
    await subscribe(first, { [topic]: 1 });
    const pub = await connected();
    await publish(pub, topic, 'acked', { qos: 1, messageId: 1 });
    await publish(pub, topic, 'not-acked', { qos: 1, messageId: 2 });
    const acked = await first.next('publish');
    const notAcked = await first.next('publish');
    expect([acked.dup, notAcked.dup]).toEqual([false, false]);
    expect(acked.messageId).not.toBe(notAcked.messageId);
    first.send({ cmd: 'puback', messageId: acked.messageId as number });
    await new Promise((resolve) => setTimeout(resolve, 100));
    await first.destroy();
    const second = await connected(false, clientId);
    const resent = (await second.drain(400)).map((p) => (p.cmd === 'publish' ? p.payload.toString() : p.cmd));
    expect(resent).toEqual(['not-acked']);
  });

  test('[MQTT-4.3.2-2] QoS 1 receiver: PUBACK carries the identifier, and the same identifier after PUBACK is a new publication', async () => {
    const topic = `qos1-receiver/${uniqueId()}`;
    const sub = await subscriber({ [topic]: 1 });
    const pub = await connected();
    pub.sendBytes(rawPublish({ topic, payload: 'one', qos: 1, messageId: 77 }));
    expect(await pub.next()).toMatchObject({ cmd: 'puback', messageId: 77 });
    pub.sendBytes(rawPublish({ topic, payload: 'two', qos: 1, messageId: 77, dup: true }));
    expect(await pub.next()).toMatchObject({ cmd: 'puback', messageId: 77 });
    expect([(await receive(sub)).payload.toString(), (await receive(sub)).payload.toString()]).toEqual(['one', 'two']);
  });

  test('[MQTT-4.3.3-1] QoS 2 sender: PUBLISH with DUP 0, PUBREL with the same identifier after PUBREC, nothing after PUBCOMP', async () => {
    const topic = `qos2-sender/${uniqueId()}`;
    const sub = await subscriber({ [topic]: 2 });
    await publish(await connected(), topic, 'exactly-once', { qos: 2 });
    const message = await sub.next('publish');
    expect(summary(message)).toMatchObject({ qos: 2, dup: false });
    sub.send({ cmd: 'pubrec', messageId: message.messageId as number });
    expect(await sub.next()).toMatchObject({ cmd: 'pubrel', messageId: message.messageId });
    sub.send({ cmd: 'pubcomp', messageId: message.messageId as number });
    expect(await sub.poll(400)).toBeUndefined();
  });

  test('[MQTT-4.3.3-2] QoS 2 receiver: a repeated PUBLISH before PUBREL is not delivered twice; after PUBCOMP the identifier is new', async () => {
    const topic = `qos2-receiver/${uniqueId()}`;
    const sub = await subscriber({ [topic]: 2 });
    const pub = await connected();
    pub.sendBytes(rawPublish({ topic, payload: 'once', qos: 2, messageId: 42 }));
    expect(await pub.next()).toMatchObject({ cmd: 'pubrec', messageId: 42 });
    pub.sendBytes(rawPublish({ topic, payload: 'once', qos: 2, messageId: 42, dup: true }));
    expect(await pub.next()).toMatchObject({ cmd: 'pubrec', messageId: 42 });
    pub.send({ cmd: 'pubrel', messageId: 42 });
    expect(await pub.next()).toMatchObject({ cmd: 'pubcomp', messageId: 42 });
    expect((await receive(sub)).payload.toString()).toBe('once');
    expect(await sub.poll(300)).toBeUndefined();
    pub.sendBytes(rawPublish({ topic, payload: 'next', qos: 2, messageId: 42 }));
    expect(await pub.next()).toMatchObject({ cmd: 'pubrec', messageId: 42 });
    pub.send({ cmd: 'pubrel', messageId: 42 });
    expect(await pub.next()).toMatchObject({ cmd: 'pubcomp', messageId: 42 });
    expect((await receive(sub)).payload.toString()).toBe('next');
  });
});

describe('2.3.1 Packet Identifier on PUBLISH packets the server sends', () => {
  test('[MQTT-2.3.1-1] QoS 1 and QoS 2 PUBLISH packets from the server carry a non-zero Packet Identifier', async () => {
    const topic = `ids/${uniqueId()}`;
    const sub = await subscriber({ [topic]: 2 });
    const pub = await connected();
    await publish(pub, topic, 'q1', { qos: 1, messageId: 1 });
    await publish(pub, topic, 'q2', { qos: 2, messageId: 2 });
    const ids = [await receive(sub), await receive(sub)].map((p) => p.messageId);
    expect(ids.every((id) => typeof id === 'number' && id > 0)).toBe(true);
  });

  test('[MQTT-2.3.1-4] the server gives each in-flight QoS 1 PUBLISH an unused identifier, and re-sends with the same one', async () => {
    const clientId = uniqueId();
    const topic = `inflight-ids/${clientId}`;
    const first = await connected(false, clientId);
    await subscribe(first, { [topic]: 1 });
    const pub = await connected();
    for (let i = 1; i <= 30; i++) await publish(pub, topic, `m${i}`, { qos: 1, messageId: i });
    const sent = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const p = await first.next('publish');
      sent.set(p.payload.toString(), p.messageId as number);
    }
    expect(new Set(sent.values()).size).toBe(30);
    await first.destroy();
    const second = await connected(false, clientId);
    for (let i = 0; i < 30; i++) {
      const p = await second.next('publish');
      expect(p.messageId).toBe(sent.get(p.payload.toString()));
      second.send({ cmd: 'puback', messageId: p.messageId as number });
    }
  });

  test('[MQTT-2.3.1-5] a QoS 0 PUBLISH from the server has no Packet Identifier', async () => {
    const topic = `no-id/${uniqueId()}`;
    const sub = await subscriber({ [topic]: 0 });
    await publish(await connected(), topic, 'payload-bytes', { qos: 1 });
    const packet = await sub.next('publish');
    expect({ qos: packet.qos, messageId: packet.messageId, payload: packet.payload.toString() })
      .toEqual({ qos: 0, messageId: undefined, payload: 'payload-bytes' });
  });

  test('[MQTT-2.3.1-6] PUBACK, PUBREC and PUBCOMP (and the server\'s PUBREL) carry the identifier of the PUBLISH', async () => {
    const topic = `ack-ids/${uniqueId()}`;
    const sub = await subscriber({ [topic]: 2 });
    const pub = await connected();
    pub.send({ cmd: 'publish', topic, payload: Buffer.from('a'), qos: 1, dup: false, retain: false, messageId: 1001 });
    expect(await pub.next()).toMatchObject({ cmd: 'puback', messageId: 1001 });
    pub.send({ cmd: 'publish', topic, payload: Buffer.from('b'), qos: 2, dup: false, retain: false, messageId: 1002 });
    expect(await pub.next()).toMatchObject({ cmd: 'pubrec', messageId: 1002 });
    pub.send({ cmd: 'pubrel', messageId: 1002 });
    expect(await pub.next()).toMatchObject({ cmd: 'pubcomp', messageId: 1002 });
    await receive(sub);
    const toSubscriber = await sub.next('publish');
    sub.send({ cmd: 'pubrec', messageId: toSubscriber.messageId as number });
    expect(await sub.next()).toMatchObject({ cmd: 'pubrel', messageId: toSubscriber.messageId });
  });
});

describe('4.5 Message receipt, 4.6 Message ordering', () => {
  test('[MQTT-4.5.0-1] a message the server takes ownership of is added to every matching session, connected or not', async () => {
    const base = `ownership/${uniqueId()}`;
    const offlineId = uniqueId('off');
    const offline = await connected(false, offlineId);
    await subscribe(offline, { [`${base}/#`]: 1 });
    await offline.disconnect();
    const online = await subscriber({ [`${base}/+`]: 1 });
    await publish(await connected(), `${base}/x`, 'owned', { qos: 1 });
    expect((await receive(online)).payload.toString()).toBe('owned');
    const back = await connected(false, offlineId);
    expect((await receive(back)).payload.toString()).toBe('owned');
  });

  test.each([0, 1, 2] as const)('[MQTT-4.6.0-6] QoS %i messages from one client on one topic reach a subscriber in the order sent', async (qos) => {
    const topic = `order/${qos}/${uniqueId()}`;
    const sub = await subscriber({ [topic]: qos });
    const pub = await connected();
    const count = 100;
    for (let i = 1; i <= count; i++) {
      pub.send({ cmd: 'publish', topic, payload: Buffer.from(String(i)), qos, dup: false, retain: false, messageId: qos > 0 ? i : undefined });
    }
    const received: number[] = [];
    while (received.length < count) {
      const p = await sub.next(undefined, 5000);
      if (p.cmd === 'pubrel') sub.send({ cmd: 'pubcomp', messageId: p.messageId });
      if (p.cmd !== 'publish') continue;
      received.push(Number(p.payload.toString()));
      if (p.qos === 1) sub.send({ cmd: 'puback', messageId: p.messageId as number });
      if (p.qos === 2) sub.send({ cmd: 'pubrec', messageId: p.messageId as number });
    }
    expect(received).toEqual(Array.from({ length: count }, (_, i) => i + 1));
  });

  test('[MQTT-4.6.0-5] topics are ordered by default: messages queued for an offline session are re-sent in order', async () => {
    const clientId = uniqueId();
    const topic = `ordered-queue/${clientId}`;
    const first = await connected(false, clientId);
    await subscribe(first, { [topic]: 1 });
    await first.disconnect();
    const pub = await connected();
    for (let i = 1; i <= 40; i++) await publish(pub, topic, String(i), { qos: 1, messageId: i });
    const back = await connected(false, clientId);
    const received: number[] = [];
    for (let i = 0; i < 40; i++) received.push(Number((await receive(back)).payload.toString()));
    expect(received).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
  });
});
