import type { MqttClient } from 'mqtt';
import type { BrokerProcess } from '../../harness/broker-process.js';
import { collectMessages } from '../../harness/mqtt-client.js';
import { TcpProxy } from '../../harness/tcp-proxy.js';
import { ClusterRegion } from '../link/cluster-regions.js';
import { connectClient, waitFor } from '../link/regions.js';

/**
 * Region `wa` (core with the embedded link agent + replicant) linked to region `wb`. The whole of `wa` is stopped and
 * started again, the publisher's node (the replicant) first and the agent's node 2 s later. The publisher connects
 * as soon as the replicant accepts clients and publishes at once: every message must reach the subscriber in `wb`.
 * Before the readiness wait the replicant accepted clients with no lane of the core (no `$link/wb` route), and its
 * publishes went nowhere.
 */
const MESSAGES = 30;
const STAGGER_MS = 2000;

describe('whole-region restart with an embedded link agent', () => {
  let A: ClusterRegion;
  let B: ClusterRegion;
  let toA: TcpProxy;
  let toB: TcpProxy;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    toA = await TcpProxy.start(1);
    toB = await TcpProxy.start(1);
    A = new ClusterRegion('wa');
    B = new ClusterRegion('wb');
    await A.start([{ name: 'wb', servers: [toB.address], topics: ['#'] }], { replicant: true });
    await B.start([{ name: 'wa', servers: [toA.address], topics: ['#'] }], { replicant: false });
    toB.setTarget(B.core.mqttPort);
    toA.setTarget(A.core.mqttPort);
    await waitFor(async () => (await A.link('wb')).state === 'connected' && (await B.link('wa')).state === 'connected', 'both links connected', 30000);
  }, 60000);
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await A?.dispose();
    await B?.dispose();
    await toA?.close();
    await toB?.close();
  });

  test('messages published on the first node back reach the remote region once the agent\'s routes are in its table', async () => {
    const subscriber = await connectClient(B.core.mqttPort, { clientId: 'wb-sub' });
    clients.push(subscriber);
    await subscriber.subscribeAsync('events/#', { qos: 1 });
    await waitFor(async () => (await A.link('wb')).routesReceived >= 1, 'wa knows what wb wants', 15000);

    await Promise.all([A.replicant?.stop('SIGTERM'), A.core.stop('SIGTERM')]);
    const replicantStarted = Date.now();
    const replicant = A.restartNode('replicant');
    await new Promise((resolve) => setTimeout(resolve, STAGGER_MS));
    const core = A.restartNode('core');
    const publisherNode: BrokerProcess = await replicant;
    const acceptedAfterMs = Date.now() - replicantStarted;

    const received = collectMessages(subscriber, MESSAGES, 30000);
    const publisher = await connectClient(publisherNode.mqttPort, { clientId: 'wa-pub' });
    clients.push(publisher);
    for (let i = 0; i < MESSAGES; i++) await publisher.publishAsync(`events/m${i}`, `m${i}`, { qos: 1 });
    toA.setTarget((await core).mqttPort);

    const got = await received;
    expect([...new Set(got)].sort()).toEqual(Array.from({ length: MESSAGES }, (_, i) => `events/m${i}=m${i}`).sort());
    expect(acceptedAfterMs).toBeGreaterThanOrEqual(STAGGER_MS);
    process.stdout.write(`whole-region restart (link): the replicant accepted clients ${acceptedAfterMs} ms after its start (the agent's node ${STAGGER_MS} ms later); ${got.length} received for ${MESSAGES}\n`);
  }, 120000);
});
