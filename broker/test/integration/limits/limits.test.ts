/**
 * The `limits.*` settings, each exercised through a real `meridian broker` process and observed on the wire, in
 * its log and on /metrics: max packet size, max connections, max client id length, max in-flight inbound QoS 2
 * messages and max keepalive.
 */
import { BrokerProcess } from '../../harness/broker-process.js';
import { eventually, scrapeMetric } from '../../harness/metrics.js';
import { ClientPool, RawMqttClient, rawConnect, rawPublish, receive, remainingLength, subscribe, uniqueId } from '../../harness/mqtt-raw.js';

const REFUSED = 'meridian_connections_refused_total';

/** A QoS 0 PUBLISH of exactly `size` bytes on the wire (fixed header included). */
function publishOfSize(topic: string, size: number): Buffer {
  const fixedHeader = (bodyLength: number): number => 1 + remainingLength(bodyLength).length;
  let body = size - 2;
  while (body + fixedHeader(body) > size) body--;
  const packet = rawPublish({ topic, payload: Buffer.alloc(body - 2 - Buffer.byteLength(topic), 0x61) });
  if (packet.length !== size) throw new Error(`could not build a ${size}-byte PUBLISH (got ${packet.length})`);
  return packet;
}

describe('limits on one node: packet size, client id length, in-flight QoS 2, keepalive', () => {
  let broker: BrokerProcess;
  const pool = new ClientPool(() => broker.mqttPort);
  const refused = (reason?: string): Promise<number> => scrapeMetric(broker, REFUSED, reason === undefined ? undefined : { reason });

  beforeAll(async () => {
    broker = await BrokerProcess.start({
      nodeName: 'limits',
      args: ['--max-packet-size', '1024'],
      configYaml: 'limits:\n  maxClientIdLength: 30\n  maxInflightInbound: 5\n  maxKeepalive: 60\n',
    });
  });
  afterEach(async () => {
    await pool.closeAll();
    await eventually(async () => (await scrapeMetric(broker, 'meridian_connections')) === 0);
  });
  afterAll(() => broker?.dispose());

  describe('limits.maxPacketSize (--max-packet-size 1024)', () => {
    test('a packet of exactly the limit is accepted', async () => {
      const topic = `size/${uniqueId()}`;
      const client = await pool.connected({ clientId: uniqueId() });
      await subscribe(client, { [topic]: 0 });
      client.sendBytes(publishOfSize(topic, 1024));
      expect((await client.next('publish')).payload.length).toBeGreaterThan(900);
    });

    test('a larger packet closes only that connection, is logged, and counts as reason packet_too_large', async () => {
      const before = await refused('packet_too_large');
      const bystander = await pool.connected({ clientId: uniqueId('by') });
      const clientId = uniqueId('big');
      const client = await pool.connected({ clientId });
      client.sendBytes(publishOfSize(`size/${uniqueId()}`, 1025));
      expect(await client.closedByServer()).toEqual([]);
      expect(await refused('packet_too_large')).toBe(before + 1);
      expect(broker.logs.some((l) => l.includes('connection closed: bad packet') && l.includes(clientId) && l.includes('exceeds limit 1024'))).toBe(true);
      bystander.send({ cmd: 'pingreq' });
      expect((await bystander.next()).cmd).toBe('pingresp');
    });

    test('the announced length is enough: the connection closes before the body is sent', async () => {
      const before = await refused('packet_too_large');
      const client = await pool.connected({ clientId: uniqueId() });
      client.sendBytes(Buffer.concat([Buffer.from([0x30]), remainingLength(50 * 1024 * 1024), Buffer.from([0x00, 0x01, 0x61])]));
      expect(await client.closedByServer()).toEqual([]);
      expect(await refused('packet_too_large')).toBe(before + 1);
    });

    test('an oversized CONNECT is refused without CONNACK and counted', async () => {
      const before = await refused('packet_too_large');
      const client = await pool.open();
      client.sendBytes(rawConnect({ clientId: uniqueId(), willTopic: 'will/big', willPayload: 'w'.repeat(2000) }));
      expect(await client.closedByServer()).toEqual([]);
      expect(await refused('packet_too_large')).toBe(before + 1);
    });
  });

  describe('limits.maxClientIdLength (30)', () => {
    test('a client id of exactly the limit is accepted', async () => {
      const { connack } = await pool.connect({ clientId: 'c'.repeat(30) });
      expect(connack.returnCode).toBe(0);
    });

    test('a longer client id gets CONNACK 0x02 (identifier rejected), is closed and counted as refused', async () => {
      const before = await refused();
      const beforeReason = await refused('client_id_too_long');
      const client = await pool.open();
      client.sendBytes(rawConnect({ clientId: 'c'.repeat(31) }));
      expect(await client.closedByServer()).toEqual([expect.objectContaining({ cmd: 'connack', returnCode: 2 })]);
      expect(await refused()).toBe(before + 1);
      expect(await refused('client_id_too_long')).toBe(beforeReason + 1);
      expect(broker.logs.some((l) => l.includes('connection refused') && l.includes('exceeds limits.maxClientIdLength 30'))).toBe(true);
    });
  });

  describe('limits.maxInflightInbound (5 QoS 2 messages awaiting PUBREL)', () => {
    async function fillWindow(client: RawMqttClient, topic: string): Promise<void> {
      for (let id = 1; id <= 5; id++) {
        client.sendBytes(rawPublish({ topic, payload: `m${id}`, qos: 2, messageId: id }));
        expect(await client.next()).toMatchObject({ cmd: 'pubrec', messageId: id });
      }
    }

    test('a sixth unreleased QoS 2 message closes the connection, with the reason in the log', async () => {
      const clientId = uniqueId('qos2');
      const client = await pool.connected({ clientId });
      await fillWindow(client, `inflight/${clientId}`);
      client.sendBytes(rawPublish({ topic: `inflight/${clientId}`, payload: 'm6', qos: 2, messageId: 6 }));
      expect(await client.closedByServer()).toEqual([]);
      const logged = await eventually(() => broker.logs.some((l) => l.includes(clientId) && l.includes('maxInflightInbound exceeded')));
      expect(logged ? 'logged' : broker.logs.filter((l) => l.includes(clientId)).join('\n')).toBe('logged');
      expect(await eventually(async () => (await scrapeMetric(broker, 'meridian_connections')) === 0)).toBe(true);
    });

    test('PUBREL frees a slot, and a DUP re-send of an in-flight message takes none', async () => {
      const clientId = uniqueId('qos2');
      const topic = `inflight/${clientId}`;
      const client = await pool.connected({ clientId });
      await fillWindow(client, topic);
      client.sendBytes(rawPublish({ topic, payload: 'm1', qos: 2, messageId: 1, dup: true }));
      expect(await client.next()).toMatchObject({ cmd: 'pubrec', messageId: 1 });
      client.send({ cmd: 'pubrel', messageId: 1 });
      expect(await client.next()).toMatchObject({ cmd: 'pubcomp', messageId: 1 });
      client.sendBytes(rawPublish({ topic, payload: 'm6', qos: 2, messageId: 6 }));
      expect(await client.next()).toMatchObject({ cmd: 'pubrec', messageId: 6 });
      expect(client.closed).toBe(false);
    });
  });

  describe('limits.maxKeepalive (60 s)', () => {
    test('a keepalive up to the limit is accepted', async () => {
      const { connack } = await pool.connect({ clientId: uniqueId(), keepalive: 60 });
      expect(connack.returnCode).toBe(0);
    });

    test.each([61, 0])('a keepalive of %i s (above the limit; 0 = none) is refused, closed and counted', async (keepalive) => {
      const before = await refused();
      const beforeReason = await refused('keepalive_too_large');
      const client = await pool.open();
      client.sendBytes(rawConnect({ clientId: uniqueId(), keepalive }));
      const packets = await client.closedByServer();
      expect(packets.filter((p) => p.cmd === 'connack' && p.returnCode === 0)).toEqual([]);
      expect(await eventually(async () => (await refused()) === before + 1)).toBe(true);
      expect(await refused('keepalive_too_large')).toBe(beforeReason + 1);
    });

    test('[MQTT-3.2.2-6] the refusal never uses a reserved CONNACK return code (6-255): a code of Table 3.1 or no CONNACK', async () => {
      const client = await pool.open();
      client.sendBytes(rawConnect({ clientId: uniqueId(), keepalive: 120 }));
      const codes = (await client.closedByServer()).flatMap((p) => (p.cmd === 'connack' ? [p.returnCode] : []));
      expect(codes.filter((code) => code === undefined || code > 5)).toEqual([]);
      expect(codes).toEqual([2]);
    });
  });
});

describe('limits.maxConnections (--max-connections 3)', () => {
  let broker: BrokerProcess;
  const pool = new ClientPool(() => broker.mqttPort);

  beforeAll(async () => {
    broker = await BrokerProcess.start({ nodeName: 'limits-connections', args: ['--max-connections', '3'] });
  });
  afterEach(async () => {
    await pool.closeAll();
    // The node frees a slot when it sees the close; the next test needs all three.
    await eventually(async () => (await scrapeMetric(broker, 'meridian_connections')) === 0);
  });
  afterAll(() => broker?.dispose());

  test('the connection beyond the limit is closed without CONNACK, logged and counted as max_connections; others are unaffected', async () => {
    const before = await scrapeMetric(broker, REFUSED, { reason: 'max_connections' });
    const admitted = [];
    for (let i = 0; i < 3; i++) admitted.push(await pool.connected({ clientId: uniqueId(`ok${i}`) }));
    const extra = await pool.open();
    extra.sendBytes(rawConnect({ clientId: uniqueId('extra') }));
    expect(await extra.closedByServer()).toEqual([]);
    expect(await scrapeMetric(broker, REFUSED, { reason: 'max_connections' })).toBe(before + 1);
    expect(broker.logs.some((l) => l.includes('max connections reached'))).toBe(true);
    for (const client of admitted) {
      client.send({ cmd: 'pingreq' });
      expect((await client.next()).cmd).toBe('pingresp');
    }
    const topic = `conn/${uniqueId()}`;
    await subscribe(admitted[0] as RawMqttClient, { [topic]: 1 });
    (admitted[1] as RawMqttClient).sendBytes(rawPublish({ topic, payload: 'still-served', qos: 1, messageId: 1 }));
    expect((await receive(admitted[0] as RawMqttClient)).payload.toString()).toBe('still-served');
  });

  test('a slot freed by a disconnect is available again', async () => {
    const admitted = [];
    for (let i = 0; i < 3; i++) admitted.push(await pool.connected({ clientId: uniqueId(`ok${i}`) }));
    await (admitted[0] as RawMqttClient).disconnect();
    expect(await eventually(async () => (await scrapeMetric(broker, 'meridian_connections')) === 2)).toBe(true);
    const { connack } = await pool.connect({ clientId: uniqueId('again') });
    expect(connack.returnCode).toBe(0);
  });

  test('a refused connection does not hold a slot: the metric gauge stays at the limit', async () => {
    for (let i = 0; i < 3; i++) await pool.connected({ clientId: uniqueId(`ok${i}`) });
    for (let i = 0; i < 5; i++) {
      const extra = await pool.open();
      expect(await extra.waitClosed()).toBe(true);
    }
    expect(await scrapeMetric(broker, 'meridian_connections')).toBe(3);
  });
});
