import { readFileSync } from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import { BrokerProcess } from '../../harness/broker-process.js';
import { createTestPki, type TestPki } from '../../harness/certs.js';

function connect(url: string, options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
    client.once('connect', () => resolve(client));
    client.once('error', (err) => { client.end(true); reject(err); });
    client.once('close', () => reject(new Error(`connection to ${url} closed before CONNACK`)));
  });
}

async function roundTrip(publisher: MqttClient, subscriber: MqttClient, topic: string): Promise<string> {
  await subscriber.subscribeAsync(topic, { qos: 1 });
  const received = new Promise<string>((resolve) => subscriber.once('message', (_t, payload) => resolve(payload.toString())));
  await publisher.publishAsync(topic, `via-${topic}`, { qos: 1 });
  return received;
}

describe('TLS and WebSocket listeners', () => {
  let pki: TestPki;
  let broker: BrokerProcess;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    pki = createTestPki();
    const tls = `{ certFile: ${pki.serverCert}, keyFile: ${pki.serverKey}, caFile: ${pki.caCert}, requireClientCert: true }`;
    broker = await BrokerProcess.start({
      configYaml: [
        'auth: { allowAnonymous: true }',
        'listeners:',
        '  - { name: mqtt, protocol: mqtt, port: 0 }',
        `  - { name: mqtts, protocol: mqtts, port: 0, tls: ${tls} }`,
        '  - { name: ws, protocol: ws, port: 0, path: /mqtt }',
        `  - { name: wss, protocol: wss, port: 0, path: /mqtt, tls: { certFile: ${pki.serverCert}, keyFile: ${pki.serverKey} } }`,
      ].join('\n'),
    });
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await broker?.dispose();
  });

  test('an MQTTS client with a certificate from the trusted CA exchanges messages with a TCP client', async () => {
    const device = pki.clientCert('device-1');
    const tlsClient = await connect(`mqtts://127.0.0.1:${broker.port('mqtts')}`, {
      ca: readFileSync(pki.caCert), cert: readFileSync(device.cert), key: readFileSync(device.key), servername: 'localhost',
    });
    const tcpClient = await connect(`mqtt://127.0.0.1:${broker.mqttPort}`);
    clients.push(tlsClient, tcpClient);
    expect(await roundTrip(tcpClient, tlsClient, 'tls/in')).toBe('via-tls/in');
    expect(await roundTrip(tlsClient, tcpClient, 'tls/out')).toBe('via-tls/out');
  });

  test('an MQTTS client without a client certificate is refused when the listener requires one', async () => {
    await expect(connect(`mqtts://127.0.0.1:${broker.port('mqtts')}`, { ca: readFileSync(pki.caCert), servername: 'localhost' }))
      .rejects.toThrow();
  });

  test('WebSocket and secure WebSocket clients exchange messages', async () => {
    const ws = await connect(`ws://127.0.0.1:${broker.port('ws')}/mqtt`);
    const wss = await connect(`wss://127.0.0.1:${broker.port('wss')}/mqtt`, { ca: readFileSync(pki.caCert), servername: 'localhost' });
    clients.push(ws, wss);
    expect(await roundTrip(ws, wss, 'ws/a')).toBe('via-ws/a');
    expect(await roundTrip(wss, ws, 'ws/b')).toBe('via-ws/b');
  });
});
