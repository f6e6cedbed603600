import type { MqttClient } from 'mqtt';
import { TestCluster, laneRoutes } from '../../harness/cluster.js';
import { collectMessages, connectClient } from '../../harness/mqtt-client.js';
import type { BrokerProcess } from '../../harness/broker-process.js';

/**
 * Every node of the cluster stopped, then started again: the publisher's node comes back first and the others
 * later (as pods of a region do after an outage). The publisher connects as soon as its node accepts clients and
 * publishes at once; the persistent subscriber on another node must get every message. Before the readiness wait
 * the first node accepted clients with an empty table and its publishes reached nobody.
 */
const NODES = [
  { name: 'core-1', role: 'core' as const },
  { name: 'core-2', role: 'core' as const },
  { name: 'repl-1', role: 'replicant' as const },
];
const MESSAGES = 30;
/** The other nodes start this long after the publisher's node. */
const STAGGER_MS = 2000;

describe('whole-cluster restart: a node accepts clients only with a complete regional table', () => {
  let cluster: TestCluster;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    cluster = await TestCluster.start(NODES, { extraArgs: ['--table-wait', '30'] });
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await cluster?.dispose();
  });

  test('the first node back waits for the others; every message published right after reaches the subscriber on another node', async () => {
    const subscriberOptions = { clientId: 'restart-sub', clean: false };
    const subscriber = await connectClient(cluster.node('repl-1').mqttPort, subscriberOptions);
    await subscriber.subscribeAsync('restart/#', { qos: 1 });
    await cluster.waitForTables((_name, table) => laneRoutes(table, 'repl-1') >= 1);
    subscriber.end(true);

    await Promise.all(NODES.map((n) => cluster.node(n.name).stop('SIGTERM')));
    const firstStarted = Date.now();
    const first = cluster.startNode('core-1');
    await new Promise((resolve) => setTimeout(resolve, STAGGER_MS));
    const others = Promise.all(NODES.slice(1).map((n) => cluster.startNode(n.name)));
    const core1: BrokerProcess = await first;
    const acceptedAfterMs = Date.now() - firstStarted;

    const publisher = await connectClient(core1.mqttPort, { clientId: 'restart-pub' });
    clients.push(publisher);
    for (let i = 0; i < MESSAGES; i++) await publisher.publishAsync(`restart/m${i}`, `m${i}`, { qos: 1 });
    await others;

    const back = await connectClient(cluster.node('repl-1').mqttPort, subscriberOptions);
    clients.push(back);
    const received = await collectMessages(back, MESSAGES, 20000);
    expect([...new Set(received)].sort()).toEqual(Array.from({ length: MESSAGES }, (_, i) => `restart/m${i}=m${i}`).sort());
    expect(core1.logs.some((line) => line.includes('regional route table complete'))).toBe(true);
    expect((await core1.getJson<{ table: { ready: boolean; complete: boolean } }>('/api/v1/cluster')).body.table).toEqual({ ready: true, complete: true });
    expect(acceptedAfterMs).toBeGreaterThanOrEqual(STAGGER_MS);
    process.stdout.write(`whole-cluster restart: core-1 accepted clients ${acceptedAfterMs} ms after its start (others ${STAGGER_MS} ms later)\n`);
  }, 90000);

  test('a single node restarted while the others run waits only for their lanes', async () => {
    await cluster.node('repl-1').stop('SIGTERM');
    const restarted = await cluster.startNode('repl-1');
    const complete = restarted.logs.map((line) => parseLine(line)).find((entry) => entry?.msg === 'regional route table complete');
    expect(complete).toBeDefined();
    expect((await restarted.getJson<{ table: { complete: boolean } }>('/api/v1/cluster')).body.table.complete).toBe(true);
    process.stdout.write(`single-node restart: repl-1's table complete after ${String(complete?.waitedMs)} ms (lanes ${String(complete?.lanes)})\n`);
  }, 60000);
});

function parseLine(line: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}
