import mqtt, { type MqttClient } from 'mqtt';
import { TestCluster, laneRoutes, type ClusterTable } from '../../harness/cluster.js';
import { TcpProxy } from '../../harness/tcp-proxy.js';

const REPLICANT_HOST = '127.0.0.9';

function connect(port: number, clientId: string): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId, reconnectPeriod: 0, connectTimeout: 5000 });
    client.once('connect', () => resolve(client));
    client.once('error', reject);
  });
}

function nextMessage(client: MqttClient, timeoutMs = 10000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no message')), timeoutMs);
    client.once('message', (topic, payload) => {
      clearTimeout(timer);
      resolve(`${topic}=${payload.toString()}`);
    });
  });
}

/**
 * Every node is reached through a TCP proxy in front of its cluster port, and the replicant dials from its own
 * loopback address, so the test can partition the replicant alone: its proxy holds everything, and the cores'
 * proxies hold the connections that come from the replicant's address.
 */
describe('a replicant partitioned from the cores through TCP proxies', () => {
  let cluster: TestCluster;
  const proxies = new Map<string, TcpProxy>();
  const clients: MqttClient[] = [];
  const viaProxy = (name: string, host = '127.0.0.1') => async (clusterPort: number): Promise<string> => {
    const proxy = await TcpProxy.start(clusterPort, host);
    proxies.set(name, proxy);
    return proxy.address;
  };

  beforeAll(async () => {
    cluster = await TestCluster.start([
      { name: 'core-1', role: 'core', advertise: viaProxy('core-1') },
      { name: 'core-2', role: 'core', advertise: viaProxy('core-2') },
      { name: 'repl-9', role: 'replicant', clusterHost: REPLICANT_HOST, advertise: viaProxy('repl-9', REPLICANT_HOST) },
    ], { extraArgs: ['--route-ttl', '3'] });
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await cluster?.dispose();
    await Promise.all([...proxies.values()].map((p) => p.close()));
  });

  test('keeps serving its local clients while cut off, and catches up when healed', async () => {
    const remoteSub = await connect(cluster.node('core-2').mqttPort, 'core-side-sub');
    const localSub = await connect(cluster.node('repl-9').mqttPort, 'replicant-side-sub');
    const localPub = await connect(cluster.node('repl-9').mqttPort, 'replicant-side-pub');
    clients.push(remoteSub, localSub, localPub);
    await remoteSub.subscribeAsync('island/from-replicant', { qos: 1 });
    await cluster.waitForTables((_n, table) => laneRoutes(table, 'core-2') >= 1);

    for (const [name, proxy] of proxies) proxy.blackhole(name === 'repl-9' ? undefined : REPLICANT_HOST);

    // Cut off: the cores drop the replicant's routes after the TTL; the replicant still serves its own clients.
    await cluster.waitForTables((name, table) => name === 'repl-9' || laneRoutes(table, 'repl-9') === 0 && table.lanes.every((l) => l.actor !== 'repl-9'), 15000);
    await localSub.subscribeAsync('island/local', { qos: 1 });
    const local = nextMessage(localSub);
    await localPub.publishAsync('island/local', 'still served', { qos: 1 });
    expect(await local).toBe('island/local=still served');

    // A subscription made during the partition reaches the cores once healed.
    await localSub.subscribeAsync('island/to-replicant', { qos: 1 });
    for (const proxy of proxies.values()) proxy.restore();
    await cluster.waitForTables((name, table) => name === 'repl-9' || laneRoutes(table, 'repl-9') >= 2, 20000);
    const table = (await cluster.node('repl-9').getJson<ClusterTable>('/api/v1/cluster')).body;
    expect(table.upstreamCore).toMatch(/^core-/);

    const corePub = await connect(cluster.node('core-1').mqttPort, 'core-side-pub');
    clients.push(corePub);
    const toReplicant = nextMessage(localSub);
    await corePub.publishAsync('island/to-replicant', 'healed', { qos: 1 });
    expect(await toReplicant).toBe('island/to-replicant=healed');
    const fromReplicant = nextMessage(remoteSub);
    await localPub.publishAsync('island/from-replicant', 'back online', { qos: 1 });
    expect(await fromReplicant).toBe('island/from-replicant=back online');
  });
});
