import mqtt from 'mqtt';
import { BrokerProcess } from '../../harness/broker-process.js';
import { collectMessages, connectClient as connect } from '../../harness/mqtt-client.js';

describe('kill -9 and restart on the same data directory', () => {
  const started: BrokerProcess[] = [];
  let broker: BrokerProcess;
  const start = async (options: Parameters<typeof BrokerProcess.start>[0]): Promise<BrokerProcess> => {
    const process = await BrokerProcess.start(options);
    started.push(process);
    return process;
  };
  afterAll(async () => {
    await Promise.all(started.map((p) => p.dispose()));
  });

  test('a persistent session keeps its subscription, queued QoS 1/2 messages and retained messages', async () => {
    broker = await start({ nodeName: 'crashy' });
    const dataDir = broker.dataDir;
    const subscriber = await connect(broker.mqttPort, { clientId: 'durable-sub', clean: false });
    await subscriber.subscribeAsync('orders/#', { qos: 2 });
    subscriber.end(true);
    const publisher = await connect(broker.mqttPort, { clientId: 'pub', clean: true });
    for (let i = 0; i < 20; i++) await publisher.publishAsync(`orders/${i}`, `m${i}`, { qos: (1 + (i % 2)) as 1 | 2 });
    await publisher.publishAsync('config/mode', 'night', { qos: 1, retain: true });
    publisher.end(true);

    await broker.kill9();
    broker = await start({ nodeName: 'crashy', dataDir });

    const resumed = mqtt.connect(`mqtt://127.0.0.1:${broker.mqttPort}`, { clientId: 'durable-sub', clean: false, reconnectPeriod: 0 });
    const sessionPresent = new Promise<boolean>((resolve) => resumed.once('connect', (ack) => resolve(ack.sessionPresent)));
    const messages = await collectMessages(resumed, 20);
    expect(await sessionPresent).toBe(true);
    expect(messages.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `orders/${i}=m${i}`).sort());
    resumed.end(true);

    const late = await connect(broker.mqttPort, { clientId: 'late', clean: true });
    const retained = collectMessages(late, 1);
    await late.subscribeAsync('config/#', { qos: 1 });
    expect(await retained).toEqual(['config/mode=night']);
    late.end(true);
  });

  test('the will of a client that was connected when the node died is published after restart', async () => {
    broker = await start({ nodeName: 'will-node' });
    const dataDir = broker.dataDir;
    const watcher = await connect(broker.mqttPort, { clientId: 'watcher', clean: false });
    await watcher.subscribeAsync('status/#', { qos: 1 });
    watcher.end(true);
    const device = await connect(broker.mqttPort, {
      clientId: 'door-7', will: { topic: 'status/door-7', payload: Buffer.from('offline'), qos: 1, retain: false },
    });
    await broker.kill9();
    device.end(true);
    broker = await start({ nodeName: 'will-node', dataDir });
    const resumed = mqtt.connect(`mqtt://127.0.0.1:${broker.mqttPort}`, { clientId: 'watcher', clean: false, reconnectPeriod: 0 });
    expect(await collectMessages(resumed, 1)).toEqual(['status/door-7=offline']);
    resumed.end(true);
  });
});
