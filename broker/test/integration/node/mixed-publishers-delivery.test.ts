/**
 * A persistent QoS 2 subscriber gets every message when the publishes of one node finish out of counter order:
 * persistent publishers (their QoS 2 ids stored with a publish identity) and clean ones go through different store
 * paths, so the deliveries to the subscriber complete in another order than aedes numbered the publishes. aedes'
 * per-client de-duplication used the highest counter delivered and dropped the earlier ones (71 of 8 050 lost in a
 * 20 s run before the fix); it now remembers the publishes delivered (patches/aedes+1.2.0.patch, client.js dedupe).
 */
import type { MqttClient } from 'mqtt';
import { BrokerProcess } from '../../harness/broker-process.js';
import { connectClient } from '../../harness/mqtt-client.js';

const PUBLISHERS = 40;
const SECONDS = 8;

describe('delivery to a persistent session when publishes complete out of order', () => {
  let broker: BrokerProcess;
  const clients: MqttClient[] = [];
  beforeAll(async () => {
    broker = await BrokerProcess.start({ nodeName: 'mixed-publishers' });
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await broker?.dispose();
  });

  test('every acknowledged QoS 2 message from persistent and clean publishers reaches the persistent subscriber once', async () => {
    const audit = await connectClient(broker.mqttPort, { clientId: 'audit', clean: false, reconnectPeriod: 0 });
    clients.push(audit);
    const received = new Map<string, number>();
    audit.on('message', (_topic, payload) => received.set(payload.toString(), (received.get(payload.toString()) ?? 0) + 1));
    await audit.subscribeAsync('site/#', { qos: 2 });

    const doors = await Promise.all(Array.from({ length: PUBLISHERS }, (_, i) =>
      connectClient(broker.mqttPort, { clientId: `door-${i}`, clean: i % 2 === 0, reconnectPeriod: 0 })));
    clients.push(...doors);
    const acknowledged: string[] = [];
    const end = Date.now() + SECONDS * 1000;
    await Promise.all(doors.map(async (door, i) => {
      for (let seq = 0; Date.now() < end; seq++) {
        const key = `${i}:${seq}`;
        door.publish(`site/access/door-${i}/denied`, key, { qos: 2 }, (err) => { if (!err) acknowledged.push(key); });
        await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 40));
      }
    }));

    const deadline = Date.now() + 20000;
    while (Date.now() < deadline && acknowledged.some((k) => !received.has(k))) await new Promise((r) => setTimeout(r, 200));
    const missing = acknowledged.filter((k) => !received.has(k));
    const duplicated = [...received].filter(([, n]) => n > 1).map(([k]) => k);
    expect(acknowledged.length).toBeGreaterThan(PUBLISHERS * SECONDS * 5);
    expect({ missing: missing.slice(0, 10), missingCount: missing.length, duplicated: duplicated.slice(0, 10) }).toEqual({ missing: [], missingCount: 0, duplicated: [] });
  });
});
