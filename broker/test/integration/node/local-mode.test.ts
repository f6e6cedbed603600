import { BrokerProcess } from '../../harness/broker-process.js';
import { connectClient } from '../../harness/mqtt-client.js';
import { ensureMosquittoClients, mosquittoPub, mosquittoSub } from '../../harness/mosquitto-clients.js';

describe('meridian broker with no configuration (local-only mode)', () => {
  let broker: BrokerProcess;
  beforeAll(async () => {
    ensureMosquittoClients();
    broker = await BrokerProcess.start();
  });
  afterAll(async () => broker?.dispose());

  test.each([0, 1, 2])('mosquitto_pub/sub exchange a message at QoS %i', async (qos) => {
    const topic = `local/qos${qos}`;
    const sub = mosquittoSub(['-h', '127.0.0.1', '-p', String(broker.mqttPort), '-t', topic, '-q', String(qos), '-C', '1', '-W', '10', '-v']);
    await new Promise((r) => setTimeout(r, 300));
    mosquittoPub(['-h', '127.0.0.1', '-p', String(broker.mqttPort), '-t', topic, '-q', String(qos), '-m', `payload-${qos}`]);
    expect(await sub.collect()).toEqual([`${topic} payload-${qos}`]);
  });

  test('readiness, node API and metrics answer on the admin port', async () => {
    expect((await broker.getJson('/readyz')).status).toBe(200);
    expect((await broker.getJson('/healthz')).body).toBe('ok');
    const node = await broker.getJson<{ name: string; listeners: { host: string }[] }>('/api/v1/node');
    expect(node.body.name).toBe('test-node');
    expect(node.body.listeners[0]?.host).toBe('127.0.0.1');
    const metrics = await broker.getJson<string>('/metrics');
    expect(metrics.body).toMatch(/meridian_messages_received_total\{qos="2"\} \d+/);
  });

  test('SIGTERM stops the node with exit code 0', async () => {
    const other = await BrokerProcess.start({ nodeName: 'sigterm-node' });
    try {
      expect(await other.stop('SIGTERM')).toBe(0);
      expect(other.logs.join('\n')).toContain('node stopped');
    } finally {
      await other.dispose();
    }
  });

  test('SIGTERM with clients connected: the node drains, disconnects them and exits 0 well before a SIGKILL', async () => {
    const busy = await BrokerProcess.start({ nodeName: 'sigterm-busy-node' });
    const clients = await Promise.all([0, 1, 2].map((i) => connectClient(busy.mqttPort, { clientId: `stay-${i}`, reconnectPeriod: 0 })));
    try {
      const started = Date.now();
      expect(await busy.stop('SIGTERM', 20000)).toBe(0);
      expect(Date.now() - started).toBeLessThan(10000);
      expect(busy.logs.join('\n')).toContain('node stopped');
    } finally {
      for (const c of clients) c.end(true);
      await busy.dispose();
    }
  });
});
