import mqtt, { type MqttClient } from 'mqtt';
import { TestCluster, laneRoutes, type ClusterTable } from '../../harness/cluster.js';
import { collectMessages as expectMessages, connectClient as connect } from '../../harness/mqtt-client.js';

const NODES = [
  { name: 'core-1', role: 'core' as const },
  { name: 'core-2', role: 'core' as const },
  { name: 'core-3', role: 'core' as const },
  { name: 'repl-1', role: 'replicant' as const },
  { name: 'repl-2', role: 'replicant' as const },
];

describe('regional cluster: 3 cores + 2 replicants on loopback', () => {
  let cluster: TestCluster;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    cluster = await TestCluster.start(NODES, { extraArgs: ['--route-ttl', '3'] });
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await cluster?.dispose();
  });

  test('every node learns every node\'s routes', async () => {
    const subscribers = await Promise.all(NODES.map((n) => connect(cluster.node(n.name).mqttPort, { clientId: `routes-${n.name}` })));
    clients.push(...subscribers);
    await Promise.all(subscribers.map((c, i) => c.subscribeAsync(`routes/${NODES[i]?.name}/+`, { qos: 1 })));
    await cluster.waitForTables((_name, table) => NODES.every((n) => laneRoutes(table, n.name) >= 1));
    const replicant = (await cluster.node('repl-1').getJson<{ upstreamCore: string }>('/api/v1/cluster')).body;
    expect(replicant.upstreamCore).toMatch(/^core-/);
  });

  test('publish on any node reaches subscribers on every other node exactly once, at QoS 0, 1 and 2', async () => {
    const subscribers = await Promise.all(NODES.map((n) => connect(cluster.node(n.name).mqttPort, { clientId: `sub-${n.name}` })));
    const publishers = await Promise.all(NODES.map((n) => connect(cluster.node(n.name).mqttPort, { clientId: `pub-${n.name}` })));
    clients.push(...subscribers, ...publishers);
    await Promise.all(subscribers.map((c, i) => c.subscribeAsync(`pairs/${NODES[i]?.name}/#`, { qos: 2 })));
    await cluster.waitForTables((_name, table) => NODES.every((n) => laneRoutes(table, n.name) >= 2));

    const expected = NODES.map(() => [] as string[]);
    const arrivals = subscribers.map((c, i) => expectMessages(c, (NODES.length - 1) * 3 + 0 * i));
    const sends: Promise<unknown>[] = [];
    NODES.forEach((from, p) => NODES.forEach((to, s) => {
      if (p === s) return;
      for (const qos of [0, 1, 2] as const) {
        const topic = `pairs/${to.name}/${from.name}/q${qos}`;
        expected[s]?.push(`${topic}=${from.name}->${to.name}`);
        sends.push((publishers[p] as MqttClient).publishAsync(topic, `${from.name}->${to.name}`, { qos }));
      }
    }));
    await Promise.all(sends);
    const received = await Promise.all(arrivals);
    received.forEach((got, i) => expect(got.sort()).toEqual((expected[i] as string[]).sort()));
  });

  test('a message goes only to nodes with a matching route, never broadcast', async () => {
    const metricsBefore = await Promise.all(NODES.map((n) => forwardedReceived(cluster, n.name)));
    const sub = await connect(cluster.node('repl-2').mqttPort, { clientId: 'only-repl-2' });
    const pub = await connect(cluster.node('core-2').mqttPort, { clientId: 'pub-unicast' });
    clients.push(sub, pub);
    await sub.subscribeAsync('unicast/topic', { qos: 1 });
    await cluster.waitForTables((_name, table) => laneRoutes(table, 'repl-2') >= 3);
    const got = expectMessages(sub, 10);
    for (let i = 0; i < 10; i++) await pub.publishAsync('unicast/topic', `m${i}`, { qos: 1 });
    expect(await got).toHaveLength(10);
    const metricsAfter = await Promise.all(NODES.map((n) => forwardedReceived(cluster, n.name)));
    const delta = NODES.map((n, i) => [n.name, (metricsAfter[i] as number) - (metricsBefore[i] as number)]);
    expect(Object.fromEntries(delta)).toEqual({ 'core-1': 0, 'core-2': 0, 'core-3': 0, 'repl-1': 0, 'repl-2': 10 });
  });

  test('retained messages are cluster-wide: a subscriber on any node gets what any node retained', async () => {
    const pub = await connect(cluster.node('repl-1').mqttPort, { clientId: 'retainer' });
    clients.push(pub);
    await pub.publishAsync('config/door-7/mode', 'locked', { qos: 1, retain: true });
    for (const n of NODES) {
      const sub = await connect(cluster.node(n.name).mqttPort, { clientId: `retained-reader-${n.name}` });
      clients.push(sub);
      const got = expectMessages(sub, 1);
      await sub.subscribeAsync('config/+/mode', { qos: 1 });
      expect(await got).toEqual(['config/door-7/mode=locked']);
    }
  });

  test('a node that was down when a message was retained copies it when it rejoins', async () => {
    await cluster.kill9('repl-2');
    const pub = await connect(cluster.node('core-2').mqttPort, { clientId: 'retainer-2' });
    clients.push(pub);
    await pub.publishAsync('config/door-9/mode', 'open', { qos: 1, retain: true });
    await cluster.startNode('repl-2');
    const deadline = Date.now() + 10000;
    for (;;) {
      const sub = await connect(cluster.node('repl-2').mqttPort, { clientId: 'late-retained-reader' });
      const got = expectMessages(sub, 1, 1500).catch(() => []);
      await sub.subscribeAsync('config/door-9/mode', { qos: 1 });
      const messages = await got;
      sub.end(true);
      if (messages.length === 1) {
        expect(messages).toEqual(['config/door-9/mode=open']);
        break;
      }
      if (Date.now() > deadline) throw new Error('retained message never reached the restarted node');
    }
  });

  test('kill -9 of a replicant: its routes disappear within the TTL, and after restart its persistent session is back', async () => {
    const sub = await connect(cluster.node('repl-2').mqttPort, { clientId: 'durable-on-repl-2', clean: false });
    await sub.subscribeAsync('durable/#', { qos: 1 });
    sub.end(true);
    await cluster.waitForTables((name, table) => name === 'repl-2' || laneRoutes(table, 'repl-2') >= 1);
    const before = (await cluster.node('core-1').getJson<{ nodes: { nodeId: string; incarnation: number }[] }>('/api/v1/cluster')).body;
    const oldIncarnation = before.nodes.find((n) => n.nodeId === 'repl-2')?.incarnation as number;

    await cluster.kill9('repl-2');
    await cluster.waitForTables((_name, table) => laneRoutes(table, 'repl-2') === 0, 10000);

    await cluster.startNode('repl-2');
    await cluster.waitForTables((_name, table) => {
      const lane = table.lanes.find((l) => l.actor === 'repl-2');
      return lane !== undefined && lane.incarnation > oldIncarnation && lane.routes >= 1;
    });
    const resumed = mqtt.connect(`mqtt://127.0.0.1:${cluster.node('repl-2').mqttPort}`, { clientId: 'durable-on-repl-2', clean: false, reconnectPeriod: 0 });
    clients.push(resumed);
    const sessionPresent = await new Promise<boolean>((resolve) => resumed.once('connect', (ack) => resolve(ack.sessionPresent)));
    expect(sessionPresent).toBe(true);
    const got = expectMessages(resumed, 1);
    const pub = await connect(cluster.node('core-3').mqttPort, { clientId: 'pub-durable' });
    clients.push(pub);
    await pub.publishAsync('durable/after-restart', 'welcome back', { qos: 1 });
    expect(await got).toEqual(['durable/after-restart=welcome back']);
  });

  test('kill -9 of a core: replicants that followed it switch to another core, and the core comes back', async () => {
    await cluster.kill9('core-1');
    await cluster.waitForTables((name, table) => !name.startsWith('repl') || (table.upstreamCore !== undefined && table.upstreamCore !== 'core-1'), 10000);
    await cluster.waitForTables((_name, table) => laneRoutes(table, 'core-1') === 0, 10000);
    const sub = await connect(cluster.node('repl-1').mqttPort, { clientId: 'after-core-loss' });
    const pub = await connect(cluster.node('repl-2').mqttPort, { clientId: 'pub-after-core-loss' });
    clients.push(sub, pub);
    const routesBefore = laneRoutes((await cluster.node('repl-2').getJson<ClusterTable>('/api/v1/cluster')).body, 'repl-1');
    await sub.subscribeAsync('coreloss/x', { qos: 1 });
    await cluster.waitForTables((name, table) => name !== 'repl-2' || laneRoutes(table, 'repl-1') === routesBefore + 1);
    const got = expectMessages(sub, 1);
    await pub.publishAsync('coreloss/x', 'still flowing', { qos: 1 });
    expect(await got).toEqual(['coreloss/x=still flowing']);

    await cluster.startNode('core-1');
    await cluster.waitForTables((_name, table) => table.nodes.filter((n) => n.state !== 'disconnected').length === NODES.length);
  });
});

async function forwardedReceived(cluster: TestCluster, name: string): Promise<number> {
  const text = (await cluster.node(name).getJson<string>('/metrics')).body;
  let total = 0;
  for (const match of text.matchAll(/^meridian_cluster_forwarded_messages_received_total\{[^}]*\} (\d+)/gm)) total += Number(match[1]);
  return total;
}
