import { rmSync } from 'node:fs';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { TestCluster, laneRoutes, type ClusterTable } from '../../harness/cluster.js';
import { collectMessages, connectClient } from '../../harness/mqtt-client.js';

/**
 * A node whose store is wiped (a replicant on an emptyDir volume, a core whose volume was replaced) comes back at
 * once. Its store incarnation starts at 1 again while the other nodes saw a higher one for its name; before the
 * cluster incarnation got a clock base (cluster/incarnation.ts) they refused its lane as stale until the old one
 * was forgotten (route TTL), and the node could not receive what was published elsewhere.
 */
const NODES = [
  { name: 'core-1', role: 'core' as const },
  { name: 'core-2', role: 'core' as const },
  { name: 'repl-1', role: 'replicant' as const },
];
/** Long, so that waiting for the old lane to expire cannot pass for a rejoin. */
const ROUTE_TTL_SECONDS = 60;
const TABLE_WAIT_SECONDS = 10;
const RESTARTS = 3;
/** The wiped node must be back in the cores' tables and deliver within this (far below the route TTL). */
const REJOIN_BUDGET_MS = 8000;

describe('a node with a wiped store rejoins its cluster at once', () => {
  let cluster: TestCluster;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    cluster = await TestCluster.start(NODES, { extraArgs: ['--route-ttl', String(ROUTE_TTL_SECONDS), '--table-wait', String(TABLE_WAIT_SECONDS)] });
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await cluster?.dispose();
  });

  test('a replicant restarted several times, then killed with its data dir deleted: back in the cores\' tables and delivering within seconds', async () => {
    await wipeAndRejoin('repl-1');
  }, 120000);

  test('the same for a core (its volume replaced): back in the other core\'s and the replicant\'s tables', async () => {
    await wipeAndRejoin('core-2');
  }, 120000);

  /**
   * Restarts `name` RESTARTS times, kills it, deletes its data dir and starts it again; then a subscriber on it must
   * get a message published on core-1, its lane must be in every other node's table at a higher incarnation, and
   * its own table must be complete.
   */
  async function wipeAndRejoin(name: string): Promise<void> {
    const others = (node: string): boolean => node !== name;
    await cluster.waitForTables((node, table) => !others(node) || incarnationIn(table, name) !== undefined);
    let incarnation = await incarnationSeenBy('core-1', name);
    for (let i = 0; i < RESTARTS; i++) {
      await cluster.restart(name);
      const before = incarnation;
      await cluster.waitForTables((node, table) => !others(node) || (incarnationIn(table, name) ?? 0) > before);
      incarnation = await incarnationSeenBy(name === 'core-1' ? 'core-2' : 'core-1', name);
    }
    const old = incarnation;

    await cluster.kill9(name);
    rmSync(path.join(cluster.dir, name), { recursive: true, force: true });
    const started = Date.now();
    const wiped = await cluster.startNode(name);
    const acceptedAfterMs = Date.now() - started;

    const subscriber = await connectClient(wiped.mqttPort, { clientId: `${name}-sub` });
    clients.push(subscriber);
    await subscriber.subscribeAsync(`wiped/${name}/#`, { qos: 1 });
    await cluster.waitForTables((node, table) => !others(node) || ((incarnationIn(table, name) ?? 0) > old && laneRoutes(table, name) >= 1), REJOIN_BUDGET_MS);
    const inTablesAfterMs = Date.now() - started;

    const publisher = await connectClient(cluster.node('core-1').mqttPort, { clientId: `${name}-pub` });
    clients.push(publisher);
    const received = collectMessages(subscriber, 1, REJOIN_BUDGET_MS);
    await publisher.publishAsync(`wiped/${name}/hello`, 'hello', { qos: 1 });
    expect(await received).toEqual([`wiped/${name}/hello=hello`]);
    const deliveredAfterMs = Date.now() - started;

    const table = (await wiped.getJson<{ table: { ready: boolean; complete: boolean } }>('/api/v1/cluster')).body.table;
    expect(table).toEqual({ ready: true, complete: true });
    expect(wiped.logs.some((line) => line.includes('regional route table complete'))).toBe(true);
    expect(acceptedAfterMs).toBeLessThan(TABLE_WAIT_SECONDS * 1000);
    expect(deliveredAfterMs).toBeLessThan(ROUTE_TTL_SECONDS * 1000 / 4);
    const fresh = await incarnationSeenBy(name === 'core-1' ? 'core-2' : 'core-1', name);
    expect(fresh).toBeGreaterThan(old);
    process.stdout.write(`wiped ${name} (incarnation ${old} -> ${fresh}): accepted clients after ${acceptedAfterMs} ms, `
      + `in every other node's table after ${inTablesAfterMs} ms, delivered after ${deliveredAfterMs} ms (route TTL ${ROUTE_TTL_SECONDS} s)\n`);
  }

  /** The incarnation of `actor`'s lane in `node`'s table (the nodes agree once `waitForTables` passed). */
  async function incarnationSeenBy(node: string, actor: string): Promise<number> {
    const table = (await cluster.node(node).getJson<ClusterTable>('/api/v1/cluster')).body;
    const seen = incarnationIn(table, actor);
    if (seen === undefined) throw new Error(`${node} has no lane of ${actor}: ${JSON.stringify(table.lanes)}`);
    return seen;
  }
});

/** The incarnation of `actor`'s lane in a node's table, if it has one. */
function incarnationIn(table: ClusterTable, actor: string): number | undefined {
  return table.lanes.find((lane) => lane.actor === actor)?.incarnation;
}
