/**
 * MQTT 3.1.1 conformance: SUBSCRIBE/SUBACK (3.8, 3.9), UNSUBSCRIBE/UNSUBACK (3.10, 3.11) and topic names and
 * filters (4.7), plus the rule that `$SYS` broker topics are protected from ordinary clients.
 * Statement ids refer to the OASIS mqtt-v3.1.1-os normative statements; docs/conformance.md maps them.
 */
import { BrokerProcess } from '../../harness/broker-process.js';
import { eventually, scrapeMetric } from '../../harness/metrics.js';
import {
  ClientPool, RawMqttClient, acknowledge, frame, publish, rawSubscribe, rawUnsubscribe, receive, subscribe, u16, uniqueId,
} from '../../harness/mqtt-raw.js';

let broker: BrokerProcess;
const pool = new ClientPool(() => broker.mqttPort);

beforeAll(async () => {
  // $SYS statistics every second, so the $SYS tests see broker-published $SYS messages quickly.
  broker = await BrokerProcess.start({ nodeName: 'conformance-subscribe', configYaml: 'mqtt:\n  sysInterval: 1\n' });
});
afterEach(() => pool.closeAll());
afterAll(() => broker?.dispose());

async function connected(): Promise<RawMqttClient> {
  return pool.connected({ clientId: uniqueId() });
}

/** Topics (and payloads) of the PUBLISH packets that arrive within a quiet period, acknowledged. */
async function publishesWithin(client: RawMqttClient, windowMs = 300): Promise<string[]> {
  const received: string[] = [];
  for (let p = await client.poll(windowMs); p !== undefined; p = await client.poll(windowMs)) {
    if (p.cmd !== 'publish') continue;
    received.push(`${p.topic}=${p.payload.toString()}`);
    await acknowledge(client, p);
  }
  return received;
}

/** What became of a bad SUBSCRIBE: `closed` when the server dropped the connection, else the SUBACK codes. */
async function subscribeOutcome(client: RawMqttClient, bytes: Buffer): Promise<string> {
  client.sendBytes(bytes);
  const answer = await client.poll(1000);
  if (answer?.cmd === 'suback') return `suback ${JSON.stringify(answer.granted)}`;
  return client.closed ? 'closed' : `no answer (${answer?.cmd ?? 'nothing'})`;
}

const ILL_FORMED_UTF8 = Buffer.from([0x61, 0x2f, 0xed, 0xa0, 0x80]);

describe('3.8 SUBSCRIBE', () => {
  test.each(['80', '83', '8a'])('[MQTT-3.8.1-1] a SUBSCRIBE whose fixed-header flags are not 0010 (first byte 0x%s) closes the connection', async (firstByte) => {
    const client = await connected();
    expect(await subscribeOutcome(client, rawSubscribe(1, [{ filter: 'flags/x', options: 0 }], parseInt(firstByte, 16)))).toBe('closed');
  });

  test('[MQTT-3.8.3-1] a Topic Filter that is ill-formed UTF-8 closes the connection', async () => {
    const client = await connected();
    expect(await subscribeOutcome(client, rawSubscribe(1, [{ filter: ILL_FORMED_UTF8, options: 0 }]))).toBe('closed');
  });

  test('[MQTT-3.8.3-2] wildcard Topic Filters are supported: granted and matching', async () => {
    const base = `wild/${uniqueId()}`;
    const client = await connected();
    expect(await subscribe(client, { [`${base}/+/x`]: 1, [`${base}/#`]: 0 })).toEqual([1, 0]);
    await publish(await connected(), `${base}/a/x`, 'w', { qos: 1 });
    expect((await publishesWithin(client)).length).toBeGreaterThanOrEqual(1);
  });

  test('[MQTT-3.8.3-3] a SUBSCRIBE without any Topic Filter/QoS pair is a protocol violation: the connection is closed', async () => {
    const client = await connected();
    expect(await subscribeOutcome(client, frame(0x82, u16(1)))).toBe('closed');
  });

  test.each([
    ['QoS 3', 0x03],
    ['reserved bit 2', 0x04],
    ['reserved bit 7', 0x81],
  ])('[MQTT-3.8.3-4] a SUBSCRIBE with %s in the requested QoS byte is malformed: the connection is closed', async (_what, options) => {
    const client = await connected();
    expect(await subscribeOutcome(client, rawSubscribe(1, [{ filter: 'options/x', options }]))).toBe('closed');
  });

  test('[MQTT-3.8.4-1] [MQTT-3.8.4-2] the server answers SUBSCRIBE with a SUBACK carrying the same Packet Identifier', async () => {
    const client = await connected();
    client.send({ cmd: 'subscribe', messageId: 4242, subscriptions: [{ topic: `ack/${uniqueId()}`, qos: 1 }] });
    expect(await client.next()).toMatchObject({ cmd: 'suback', messageId: 4242, granted: [1] });
  });

  test('[MQTT-3.8.4-3] a SUBSCRIBE with an existing Topic Filter replaces the subscription and re-sends retained messages', async () => {
    const topic = `replace/${uniqueId()}`;
    const pub = await connected();
    await publish(pub, topic, 'retained', { qos: 1, retain: true });
    const client = await connected();
    expect(await subscribe(client, { [topic]: 0 })).toEqual([0]);
    expect((await client.next('publish')).qos).toBe(0);
    expect(await subscribe(client, { [topic]: 1 }, 2)).toEqual([1]);
    const resent = await receive(client);
    expect({ payload: resent.payload.toString(), retain: resent.retain, qos: resent.qos }).toEqual({ payload: 'retained', retain: true, qos: 1 });
    await publish(pub, topic, 'live', { qos: 1, messageId: 2 });
    expect(await publishesWithin(client)).toEqual([`${topic}=live`]);
  });

  test('[MQTT-3.8.4-4] a SUBSCRIBE with several Topic Filters is handled as several SUBSCRIBEs with one SUBACK', async () => {
    const base = `multi/${uniqueId()}`;
    const client = await connected();
    client.send({ cmd: 'subscribe', messageId: 9, subscriptions: [{ topic: `${base}/a`, qos: 0 }, { topic: `${base}/b`, qos: 1 }, { topic: `${base}/c`, qos: 2 }] });
    expect(await client.next()).toMatchObject({ cmd: 'suback', messageId: 9, granted: [0, 1, 2] });
    expect(await client.poll(200)).toBeUndefined();
    const pub = await connected();
    for (const leaf of ['a', 'b', 'c']) await publish(pub, `${base}/${leaf}`, leaf, { qos: 2 });
    expect((await publishesWithin(client)).sort()).toEqual([`${base}/a=a`, `${base}/b=b`, `${base}/c=c`]);
  });

  test('[MQTT-3.8.4-5] the SUBACK has a return code per Topic Filter: the granted QoS or 0x80 for a failure', async () => {
    const client = await connected();
    expect(await subscribe(client, { [`codes/${uniqueId()}`]: 2, '$SYS/#': 1 })).toEqual([2, 0x80]);
  });

  async function deliveredQosThrough(filterOf: (base: string) => string): Promise<number[]> {
    const base = `min-qos/${uniqueId()}`;
    const client = await connected();
    expect(await subscribe(client, { [filterOf(base)]: 1 })).toEqual([1]);
    const pub = await connected();
    await publish(pub, `${base}/exact`, 'published-qos2', { qos: 2, messageId: 1 });
    await publish(pub, `${base}/exact`, 'published-qos0', { qos: 0 });
    return [(await client.next('publish')).qos, (await client.next('publish')).qos];
  }

  test('[MQTT-3.8.4-6] through an exact filter, a message is delivered at the minimum of its QoS and the granted QoS', async () => {
    expect(await deliveredQosThrough((base) => `${base}/exact`)).toEqual([1, 0]);
  });

  test('[MQTT-3.8.4-6] through a wildcard filter, a message is delivered at the minimum of its QoS and the granted QoS', async () => {
    expect(await deliveredQosThrough((base) => `${base}/+`)).toEqual([1, 0]);
  });

  test('[MQTT-3.8.4-6] a retained message sent on SUBSCRIBE through a wildcard filter is at most at the granted QoS', async () => {
    const base = `min-qos-retained/${uniqueId()}`;
    await publish(await connected(), `${base}/kept`, 'retained-qos2', { qos: 2, retain: true });
    const client = await connected();
    expect(await subscribe(client, { [`${base}/+`]: 1 })).toEqual([1]);
    expect(await client.next('publish')).toMatchObject({ topic: `${base}/kept`, qos: 1, retain: true });
  });
});

describe('3.9 SUBACK', () => {
  test('[MQTT-3.9.3-1] the SUBACK return codes are in the order of the Topic Filters', async () => {
    const base = `suback-order/${uniqueId()}`;
    const client = await connected();
    client.send({ cmd: 'subscribe', messageId: 3, subscriptions: [
      { topic: `${base}/x`, qos: 2 }, { topic: `${base}/y`, qos: 0 }, { topic: '$SYS/+', qos: 1 }, { topic: `${base}/z`, qos: 1 },
    ] });
    expect((await client.next('suback')).granted).toEqual([2, 0, 0x80, 1]);
  });

  test('[MQTT-3.9.3-2] SUBACK return codes are only 0x00, 0x01, 0x02 or 0x80', async () => {
    const client = await connected();
    const filters = [`rc/${uniqueId()}/a`, `rc/${uniqueId()}/+`, '#', '$SYS/x', '+/+'];
    client.send({ cmd: 'subscribe', messageId: 5, subscriptions: filters.flatMap((topic) => [0, 1, 2].map((qos) => ({ topic: `${topic}`, qos: qos as 0 | 1 | 2 }))) });
    const granted = (await client.next('suback')).granted as number[];
    expect(granted.every((code) => [0, 1, 2, 0x80].includes(code))).toBe(true);
    expect(client.parseError).toBeUndefined();
  });
});

describe('3.10 UNSUBSCRIBE', () => {
  test.each(['a0', 'a3'])('[MQTT-3.10.1-1] an UNSUBSCRIBE whose fixed-header flags are not 0010 (first byte 0x%s) closes the connection', async (firstByte) => {
    const client = await connected();
    client.sendBytes(rawUnsubscribe(1, ['flags/x'], parseInt(firstByte, 16)));
    expect((await client.closedByServer()).map((p) => p.cmd)).toEqual([]);
  });

  test('[MQTT-3.10.3-1] an UNSUBSCRIBE Topic Filter that is ill-formed UTF-8 closes the connection', async () => {
    const client = await connected();
    client.sendBytes(rawUnsubscribe(1, [ILL_FORMED_UTF8]));
    expect((await client.closedByServer(1000)).map((p) => p.cmd)).toEqual([]);
  });

  test('[MQTT-3.10.3-2] an UNSUBSCRIBE without any Topic Filter is a protocol violation: the connection is closed', async () => {
    const client = await connected();
    client.sendBytes(frame(0xa2, u16(1)));
    expect((await client.closedByServer(1000)).map((p) => p.cmd)).toEqual([]);
  });

  test('[MQTT-3.10.4-1] UNSUBSCRIBE filters are compared character by character with the subscriptions, wildcards included', async () => {
    const base = `unsub-compare/${uniqueId()}`;
    const client = await connected();
    await subscribe(client, { [`${base}/+`]: 0, [`${base}/a`]: 0 });
    client.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: [`${base}/a`, `${base}/#`] });
    await client.next('unsuback');
    await publish(await connected(), `${base}/a`, 'still-matched-by-plus');
    expect(await publishesWithin(client)).toEqual([`${base}/a=still-matched-by-plus`]);
  });

  test('[MQTT-3.10.4-2] after UNSUBSCRIBE the server adds no new messages for the deleted subscription', async () => {
    const topic = `unsub-stop/${uniqueId()}`;
    const client = await connected();
    await subscribe(client, { [topic]: 1 });
    client.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: [topic] });
    await client.next('unsuback');
    await publish(await connected(), topic, 'after-unsubscribe', { qos: 1 });
    expect(await client.poll(400)).toBeUndefined();
  });

  test('[MQTT-3.10.4-3] after UNSUBSCRIBE the server completes a QoS 2 delivery it had started', async () => {
    const topic = `unsub-complete/${uniqueId()}`;
    const client = await connected();
    await subscribe(client, { [topic]: 2 });
    await publish(await connected(), topic, 'in-flight', { qos: 2 });
    const message = await client.next('publish');
    client.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: [topic] });
    expect(await client.next()).toMatchObject({ cmd: 'unsuback', messageId: 2 });
    client.send({ cmd: 'pubrec', messageId: message.messageId as number });
    expect(await client.next()).toMatchObject({ cmd: 'pubrel', messageId: message.messageId });
  });

  test('[MQTT-3.10.4-4] the server answers UNSUBSCRIBE with an UNSUBACK carrying the same Packet Identifier', async () => {
    const client = await connected();
    const topic = `unsuback/${uniqueId()}`;
    await subscribe(client, { [topic]: 0 });
    client.send({ cmd: 'unsubscribe', messageId: 31337, unsubscriptions: [topic] });
    expect(await client.next()).toMatchObject({ cmd: 'unsuback', messageId: 31337 });
  });

  test('[MQTT-3.10.4-5] the server sends UNSUBACK even when no subscription was deleted', async () => {
    const client = await connected();
    client.send({ cmd: 'unsubscribe', messageId: 12, unsubscriptions: [`never-subscribed/${uniqueId()}`] });
    expect(await client.next()).toMatchObject({ cmd: 'unsuback', messageId: 12 });
  });

  test('[MQTT-3.10.4-6] an UNSUBSCRIBE with several Topic Filters is handled as several, with one UNSUBACK', async () => {
    const base = `unsub-multi/${uniqueId()}`;
    const client = await connected();
    await subscribe(client, { [`${base}/a`]: 0, [`${base}/b`]: 0, [`${base}/c`]: 0 });
    client.send({ cmd: 'unsubscribe', messageId: 8, unsubscriptions: [`${base}/a`, `${base}/b`] });
    expect(await client.next()).toMatchObject({ cmd: 'unsuback', messageId: 8 });
    expect(await client.poll(200)).toBeUndefined();
    const pub = await connected();
    for (const leaf of ['a', 'b', 'c']) await publish(pub, `${base}/${leaf}`, leaf);
    expect(await publishesWithin(client)).toEqual([`${base}/c=c`]);
  });
});

describe('4.7 Topic Names and Topic Filters', () => {
  test('[MQTT-4.7.1-1] a Topic Name with the multi-level wildcard closes the connection', async () => {
    const client = await connected();
    client.send({ cmd: 'publish', topic: 'sport/#', payload: Buffer.from('x'), qos: 0, dup: false, retain: false });
    expect((await client.closedByServer()).map((p) => p.cmd)).toEqual([]);
  });

  test.each(['sport/tennis#', 'sport/tennis/#/ranking', 'a#', '#/'])(
    '[MQTT-4.7.1-2] the invalid filter "%s" (# not last or not after /) is refused: connection closed or SUBACK 0x80',
    async (filter) => {
      const client = await connected();
      expect(await subscribeOutcome(client, rawSubscribe(1, [{ filter, options: 0 }]))).toMatch(/^(closed|suback \[128\])$/);
    },
  );

  test('[MQTT-4.7.1-2] "sport/#" also matches the parent level "sport", and "#" matches every non-$ topic', async () => {
    const base = `multi-level/${uniqueId()}`;
    const client = await connected();
    await subscribe(client, { [`${base}/#`]: 0 });
    const pub = await connected();
    await publish(pub, base, 'parent');
    await publish(pub, `${base}/a/b/c`, 'deep');
    expect(await publishesWithin(client)).toEqual([`${base}=parent`, `${base}/a/b/c=deep`]);
  });

  test.each(['sport+', '+a', 'a+/b', 'sport/+tennis'])(
    '[MQTT-4.7.1-3] the invalid filter "%s" (+ not a whole level) is refused: connection closed or SUBACK 0x80',
    async (filter) => {
      const client = await connected();
      expect(await subscribeOutcome(client, rawSubscribe(1, [{ filter, options: 0 }]))).toMatch(/^(closed|suback \[128\])$/);
    },
  );

  test('[MQTT-4.7.1-3] "+" matches exactly one whole level, including an empty one and the first and last levels', async () => {
    const base = `single-level/${uniqueId()}`;
    const client = await connected();
    await subscribe(client, { [`+/${base}/+`]: 0 });
    const pub = await connected();
    for (const topic of [`x/${base}/y`, `x/${base}/`, `x/${base}`, `x/${base}/y/z`]) await publish(pub, topic, 'm');
    expect(await publishesWithin(client)).toEqual([`x/${base}/y=m`, `x/${base}/=m`]);
  });

  test('[MQTT-4.7.2-1] filters starting with a wildcard do not match topics beginning with $', async () => {
    const client = await connected();
    await subscribe(client, { '#': 0, '+/+/+': 0, '+/+': 0 });
    for (const p of await client.drain(200)) if (p.cmd === 'publish') await acknowledge(client, p);
    // The node publishes $SYS/<node>/... every second (sysInterval 1) and aedes $SYS/<id>/new/clients on connects.
    await connected();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const dollarTopics = (await publishesWithin(client)).filter((t) => t.startsWith('$'));
    expect(dollarTopics).toEqual([]);
  });

  test('[MQTT-4.7.3-1] an empty Topic Name in PUBLISH closes the connection', async () => {
    const client = await connected();
    client.sendBytes(frame(0x30, u16(0), Buffer.from('x')));
    expect((await client.closedByServer()).map((p) => p.cmd)).toEqual([]);
  });

  test('[MQTT-4.7.3-1] an empty Topic Filter in SUBSCRIBE is refused: connection closed or SUBACK 0x80', async () => {
    const client = await connected();
    expect(await subscribeOutcome(client, rawSubscribe(1, [{ filter: '', options: 0 }]))).toMatch(/^(closed|suback \[128\])$/);
  });

  test('[MQTT-4.7.3-2] a Topic Name containing U+0000 closes the connection', async () => {
    const client = await connected();
    client.sendBytes(frame(0x30, u16(5), Buffer.from('nul\u0000x'), Buffer.from('payload')));
    expect((await client.closedByServer(1000)).map((p) => p.cmd)).toEqual([]);
  });

  test('[MQTT-4.7.3-2] a Topic Filter containing U+0000 is refused: connection closed or SUBACK 0x80', async () => {
    const client = await connected();
    expect(await subscribeOutcome(client, rawSubscribe(1, [{ filter: 'nul\u0000f', options: 0 }]))).toMatch(/^(closed|suback \[128\])$/);
  });

  test('[MQTT-4.7.3-3] a topic of the full 65535 bytes is accepted as Topic Filter and Topic Name', async () => {
    const topic = 'L'.repeat(65535);
    const client = await connected();
    expect(await subscribe(client, { [topic]: 1 })).toEqual([1]);
    await publish(await connected(), topic, 'long', { qos: 1 });
    const message = await receive(client);
    expect({ length: message.topic.length, payload: message.payload.toString() }).toEqual({ length: 65535, payload: 'long' });
  });

  test('[MQTT-4.7.3-4] topic matching performs no normalization: case, Unicode composition and spaces are significant', async () => {
    const base = `norm-${uniqueId()}`;
    const precomposed = `${base}/caf\u00e9`;
    const client = await connected();
    await subscribe(client, { [`${base}/ACCOUNTS`]: 0, [precomposed]: 0, [`${base}/trailing `]: 0, [`\ufeff${base}`]: 0 });
    const pub = await connected();
    for (const topic of [`${base}/Accounts`, `${base}/cafe\u0301`, `${base}/trailing`, base]) await publish(pub, topic, 'must-not-match');
    await publish(pub, precomposed, 'exact');
    await publish(pub, `\ufeff${base}`, 'with-bom');
    expect(await publishesWithin(client)).toEqual([`${precomposed}=exact`, `\ufeff${base}=with-bom`]);
  });
});

describe('$SYS broker topics are protected from ordinary clients (issue requirement)', () => {
  test('an ordinary client is refused a $SYS subscription (0x80) and receives no $SYS message', async () => {
    const client = await connected();
    expect(await subscribe(client, { '$SYS/#': 0, '$SYS/conformance-subscribe/uptime': 0 })).toEqual([0x80, 0x80]);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(await publishesWithin(client)).toEqual([]);
  });

  test('an ordinary client cannot publish into $SYS: the publish is denied (counted) and the connection answered or closed', async () => {
    const denied = (): Promise<number> => scrapeMetric(broker, 'meridian_authorization_denied_total', { action: 'publish' });
    const before = await denied();
    const forger = await connected();
    forger.send({ cmd: 'publish', topic: '$SYS/conformance-subscribe/uptime', payload: Buffer.from('forged'), qos: 0, dup: false, retain: true });
    forger.send({ cmd: 'pingreq' });
    const answer = await forger.poll(1000);
    expect(answer?.cmd === 'pingresp' || forger.closed).toBe(true);
    expect(await eventually(async () => (await denied()) === before + 1)).toBe(true);
  });
});
