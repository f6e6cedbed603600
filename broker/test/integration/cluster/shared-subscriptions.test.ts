import mqtt, { type MqttClient } from 'mqtt';
import { TestCluster, laneRoutes } from '../../harness/cluster.js';
import { ShareTally, until } from '../node/shared-tally.js';

const NODES = [
  { name: 'core-1', role: 'core' as const },
  { name: 'core-2', role: 'core' as const },
  { name: 'core-3', role: 'core' as const },
  { name: 'repl-1', role: 'replicant' as const },
  { name: 'repl-2', role: 'replicant' as const },
];

const ids = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

describe('shared subscriptions across a regional cluster (3 cores + 2 replicants)', () => {
  let cluster: TestCluster;
  const clients: MqttClient[] = [];
  /** Routes each node's lane should hold by now (members subscribed minus those gone). */
  const lanes = new Map<string, number>(NODES.map((n) => [n.name, 0]));

  const connect = (node: string, options: mqtt.IClientOptions = {}): Promise<MqttClient> => new Promise((resolve, reject) => {
    const client = mqtt.connect(`mqtt://127.0.0.1:${cluster.node(node).mqttPort}`, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
    clients.push(client);
    client.once('connect', () => resolve(client));
    client.once('error', reject);
  });

  /** Subscribes and waits until every node's table holds the new route of the member's node. */
  async function join(node: string, filter: string, qos: 0 | 1 | 2, options: mqtt.IClientOptions = {}): Promise<MqttClient> {
    const client = await connect(node, options);
    expect((await client.subscribeAsync(filter, { qos }))[0]?.qos).toBe(qos);
    lanes.set(node, (lanes.get(node) ?? 0) + 1);
    await cluster.waitForTables((_name, table) => [...lanes].every(([owner, routes]) => laneRoutes(table, owner) >= routes));
    return client;
  }

  /** Every node publishes its share of `payloads` (round-robin), each publisher awaiting its acknowledgements. */
  async function publishFromAllNodes(topic: (i: number) => string, payloads: readonly string[], qos: 0 | 1 | 2, pauseMs = 0): Promise<void> {
    const publishers = await Promise.all(NODES.map((n) => connect(n.name)));
    await Promise.all(publishers.map(async (publisher, p) => {
      for (let i = p; i < payloads.length; i += publishers.length) {
        await publisher.publishAsync(topic(i), payloads[i] as string, { qos });
        if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
      }
    }));
  }

  /** The shared-subscription outcome counters of every node, for failure messages. */
  async function outcomes(): Promise<string> {
    const lines = await Promise.all(NODES.map(async (n) => {
      const metrics = (await cluster.node(n.name).getJson<string>('/metrics')).body;
      const counts = metrics.split('\n').filter((l) => l.startsWith('meridian_shared_subscription_messages_total'))
        .map((l) => l.replace(/^.*outcome="([a-z]+)"\} /, '$1='));
      return `${n.name}: ${counts.join(' ')}`;
    }));
    return lines.join('; ');
  }

  /** until(), with every node's shared-subscription outcomes in the error. */
  async function delivered(check: () => boolean, describe: () => string, graceMs = 800): Promise<void> {
    try {
      await until(check, 20000, describe, graceMs);
    } catch (err) {
      throw new Error(`${(err as Error).message}; outcomes per node: ${await outcomes()}`);
    }
  }

  beforeAll(async () => {
    cluster = await TestCluster.start(NODES, { clusterName: 'shared', extraArgs: ['--route-ttl', '3'] });
    await cluster.waitForTables((_name, table) => table.nodes.filter((n) => n.state !== 'disconnected').length === NODES.length);
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await cluster?.dispose();
  });

  test('members on 3 nodes, publishers on all 5: every message to exactly one member', async () => {
    const tally = new ShareTally();
    for (const node of ['core-1', 'core-3', 'repl-2']) tally.member(node, await join(node, '$share/workers/jobs/+', 1));
    const expected = ids('once', 600);
    await publishFromAllNodes((i) => `jobs/${i % 11}`, expected, 1);
    await delivered(() => tally.total >= expected.length, () => JSON.stringify(tally.counts()));
    expect(tally.check(expected)).toEqual({ duplicates: [], lost: [] });
    expect(tally.total).toBe(expected.length);
    // Each publishing node takes the group's nodes in turn: every member gets a fair share.
    for (const count of Object.values(tally.counts())) expect(count).toBeGreaterThan(expected.length / 6);
  });

  test('members leaving mid-stream (unsubscribing, or a persistent one disconnecting): no duplicates, no losses', async () => {
    const tally = new ShareTally();
    const stays1 = await join('core-1', '$share/leave/work/+', 1);
    const unsubscribes = await join('core-2', '$share/leave/work/+', 1);
    const disconnects = await join('repl-1', '$share/leave/work/+', 1, { clientId: 'leaving-persistent', clean: false });
    const stays2 = await join('repl-2', '$share/leave/work/+', 1);
    tally.member('core-1', stays1);
    tally.member('core-2', unsubscribes);
    tally.member('repl-1 (first connection)', disconnects);
    tally.member('repl-2', stays2);
    const expected = ids('leave', 1000);
    const stream = publishFromAllNodes((i) => `work/${i % 5}`, expected, 1, 2);
    await until(() => tally.total >= 250, 20000, () => JSON.stringify(tally.counts()), 0);
    await unsubscribes.unsubscribeAsync('$share/leave/work/+');
    lanes.set('core-2', (lanes.get('core-2') ?? 1) - 1);
    await disconnects.endAsync(); // its stored session keeps the route and gets what was in flight queued
    const before = tally.counts();
    await stream;
    await until(() => tally.total >= expected.length - 20, 20000, () => JSON.stringify(tally.counts()), 500);
    // The persistent member comes back for what was queued for it when it left.
    const back = await connect('repl-1', { clientId: 'leaving-persistent', clean: false });
    tally.member('repl-1 (back)', back, () => true, 'repl-1 (first connection)');
    await delivered(() => tally.total >= expected.length, () => JSON.stringify({ counts: tally.counts(), ...tally.check(expected) }));
    expect(tally.check(expected)).toEqual({ duplicates: [], lost: [] });
    expect(tally.total).toBe(expected.length);
    const after = tally.counts();
    // The members that left got nothing more once they had left; the others kept receiving.
    expect(after['core-2']).toBe(before['core-2']);
    expect(after['repl-1 (first connection)']).toBe(before['repl-1 (first connection)']);
    expect(after['core-1'] ?? 0).toBeGreaterThan(before['core-1'] ?? 0);
    expect(after['repl-2'] ?? 0).toBeGreaterThan(before['repl-2'] ?? 0);
    await back.unsubscribeAsync('$share/leave/work/+');
    lanes.set('repl-1', (lanes.get('repl-1') ?? 1) - 1);
  });

  test('two groups on one filter each get every message exactly once, at QoS 2; an ordinary subscriber gets all', async () => {
    const g1 = new ShareTally();
    const g2 = new ShareTally();
    const ordinary = new ShareTally();
    for (const node of ['core-1', 'repl-1']) g1.member(node, await join(node, '$share/g1/multi/+', 2));
    for (const node of ['core-2', 'core-3', 'repl-2']) g2.member(node, await join(node, '$share/g2/multi/+', 2));
    ordinary.member('repl-1', await join('repl-1', 'multi/+', 2));
    const expected = ids('multi', 300);
    await publishFromAllNodes((i) => `multi/${i % 3}`, expected, 2);
    await delivered(() => g1.total >= 300 && g2.total >= 300 && ordinary.total >= 300,
      () => JSON.stringify({ g1: g1.counts(), g2: g2.counts(), ordinary: ordinary.total }));
    for (const tally of [g1, g2, ordinary]) {
      expect(tally.check(expected)).toEqual({ duplicates: [], lost: [] });
      expect(tally.total).toBe(300);
    }
    for (const count of [...Object.values(g1.counts()), ...Object.values(g2.counts())]) expect(count).toBeGreaterThan(30);
  });
});
