import { rmSync } from 'node:fs';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { TestCluster, laneRoutes, type ClusterTable } from '../../harness/cluster.js';
import { collectMessages, connectClient } from '../../harness/mqtt-client.js';

/**
 * A replicant whose store is wiped (an emptyDir volume) comes back at once. Its store incarnation starts at 1
 * again while the cores saw a higher one for its name; before the cluster incarnation got a clock base
 * (cluster/incarnation.ts) the cores refused its lane as stale until the old one was forgotten (route TTL), and the
 * replicant opened its listener only when its readiness wait timed out, with an incomplete table.
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
/** The wiped replicant must be back in the cores' tables and deliver within this (far below the route TTL). */
const REJOIN_BUDGET_MS = 8000;

describe('a replicant with a wiped store rejoins its cluster at once', () => {
  let cluster: TestCluster;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    cluster = await TestCluster.start(NODES, { extraArgs: ['--route-ttl', String(ROUTE_TTL_SECONDS), '--table-wait', String(TABLE_WAIT_SECONDS)] });
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await cluster?.dispose();
  });

  test('restarted several times, then killed with its data dir deleted: back in the cores\' tables and delivering within seconds', async () => {
    await cluster.waitForTables((name, table) => name === 'repl-1' || coresSee(table, 'repl-1') !== undefined);
    let incarnation = await coreIncarnationOf('repl-1');
    for (let i = 0; i < RESTARTS; i++) {
      await cluster.restart('repl-1');
      const before = incarnation;
      await cluster.waitForTables((name, table) => name === 'repl-1' || (coresSee(table, 'repl-1') ?? 0) > before);
      incarnation = await coreIncarnationOf('repl-1');
    }
    const old = incarnation;

    await cluster.kill9('repl-1');
    rmSync(path.join(cluster.dir, 'repl-1'), { recursive: true, force: true });
    const started = Date.now();
    const replicant = await cluster.startNode('repl-1');
    const acceptedAfterMs = Date.now() - started;

    const subscriber = await connectClient(replicant.mqttPort, { clientId: 'wiped-sub' });
    clients.push(subscriber);
    await subscriber.subscribeAsync('wiped/#', { qos: 1 });
    await cluster.waitForTables((name, table) => name === 'repl-1' || ((coresSee(table, 'repl-1') ?? 0) > old && laneRoutes(table, 'repl-1') >= 1), REJOIN_BUDGET_MS);
    const inTablesAfterMs = Date.now() - started;

    const publisher = await connectClient(cluster.node('core-1').mqttPort, { clientId: 'wiped-pub' });
    clients.push(publisher);
    const received = collectMessages(subscriber, 1, REJOIN_BUDGET_MS);
    await publisher.publishAsync('wiped/hello', 'hello', { qos: 1 });
    expect(await received).toEqual(['wiped/hello=hello']);
    const deliveredAfterMs = Date.now() - started;

    const table = (await replicant.getJson<{ table: { ready: boolean; complete: boolean } }>('/api/v1/cluster')).body.table;
    expect(table).toEqual({ ready: true, complete: true });
    expect(replicant.logs.some((line) => line.includes('regional route table complete'))).toBe(true);
    expect(acceptedAfterMs).toBeLessThan(TABLE_WAIT_SECONDS * 1000);
    expect(deliveredAfterMs).toBeLessThan(ROUTE_TTL_SECONDS * 1000 / 4);
    const fresh = await coreIncarnationOf('repl-1');
    expect(fresh).toBeGreaterThan(old);
    process.stdout.write(`wiped replicant (incarnation ${old} -> ${fresh}): accepted clients after ${acceptedAfterMs} ms, `
      + `in both cores' tables after ${inTablesAfterMs} ms, delivered after ${deliveredAfterMs} ms (route TTL ${ROUTE_TTL_SECONDS} s)\n`);
  }, 120000);

  /** The incarnation of `actor`'s lane in core-1's table (the cores agree once `waitForTables` passed). */
  async function coreIncarnationOf(actor: string): Promise<number> {
    const table = (await cluster.node('core-1').getJson<ClusterTable>('/api/v1/cluster')).body;
    const seen = coresSee(table, actor);
    if (seen === undefined) throw new Error(`core-1 has no lane of ${actor}: ${JSON.stringify(table.lanes)}`);
    return seen;
  }
});

/** The incarnation of `actor`'s lane in a node's table, if it has one. */
function coresSee(table: ClusterTable, actor: string): number | undefined {
  return table.lanes.find((lane) => lane.actor === actor)?.incarnation;
}
