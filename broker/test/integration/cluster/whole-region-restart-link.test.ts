import type { BrokerProcess } from '../../harness/broker-process.js';
import { collectMessages } from '../../harness/mqtt-client.js';
import { TcpProxy } from '../../harness/tcp-proxy.js';
import { ClusterRegion, linkedClusterRegions, linkedRegionsFixture, linkedSidecarRegions } from '../link/cluster-regions.js';
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

// A generous readiness bound (default 10 s) for the nodes of this file: a loaded machine starts a sidecar slowly.
beforeAll(() => { process.env.MERIDIAN_TABLE_WAIT = '30'; });
afterAll(() => { delete process.env.MERIDIAN_TABLE_WAIT; });

describe('whole-region restart with an embedded link agent', () => {
  let A: ClusterRegion;
  let B: ClusterRegion;
  let toA: TcpProxy;
  const { track } = linkedRegionsFixture(() => linkedClusterRegions('wa', 'wb', false, 30000), (regions) => ({ A, B, toA } = regions));

  test('messages published on the first node back reach the remote region once the agent\'s routes are in its table', async () => {
    const subscriber = await connectClient(B.core.mqttPort, { clientId: 'wb-sub' });
    track(subscriber);
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
    track(publisher);
    for (let i = 0; i < MESSAGES; i++) await publisher.publishAsync(`events/m${i}`, `m${i}`, { qos: 1 });
    toA.setTarget((await core).mqttPort);

    const got = await received;
    expect([...new Set(got)].sort()).toEqual(Array.from({ length: MESSAGES }, (_, i) => `events/m${i}=m${i}`).sort());
    expect(acceptedAfterMs).toBeGreaterThanOrEqual(STAGGER_MS);
    process.stdout.write(`whole-region restart (link): the replicant accepted clients ${acceptedAfterMs} ms after its start (the agent's node ${STAGGER_MS} ms later); ${got.length} received for ${MESSAGES}\n`);
  }, 120000);
});

/**
 * The same with a sidecar agent (`meridian link-agent`) in region `sa`: core, replicant and sidecar stopped, the
 * replicant back first, core and sidecar 2 s later. The replicant remembers both and waits for the sidecar's lane
 * (its `$link/sb` routes) before it accepts the publisher.
 */
describe('whole-region restart with a sidecar link agent', () => {
  let A: ClusterRegion;
  let B: ClusterRegion;
  let toA: TcpProxy;
  const { track } = linkedRegionsFixture(() => linkedSidecarRegions('sa', 'sb', { bReplicant: false }), (regions) => ({ A, B, toA } = regions));

  test('messages published on the first node back reach the remote region through the restarted sidecar', async () => {
    const subscriber = await connectClient(B.core.mqttPort, { clientId: 'sb-sub' });
    track(subscriber);
    await subscriber.subscribeAsync('events/#', { qos: 1 });
    await waitFor(async () => (await A.link('sb')).routesReceived >= 1, 'sa knows what sb wants', 15000);

    await A.sidecar?.stop('SIGTERM');
    await Promise.all([A.replicant?.stop('SIGTERM'), A.core.stop('SIGTERM')]);
    const replicantStarted = Date.now();
    const replicant = A.restartNode('replicant');
    await new Promise((resolve) => setTimeout(resolve, STAGGER_MS));
    const rest = Promise.all([A.restartNode('core'), A.restartSidecar()]);
    const publisherNode: BrokerProcess = await replicant;
    const acceptedAfterMs = Date.now() - replicantStarted;
    toA.setTarget(publisherNode.mqttPort);

    const received = collectMessages(subscriber, MESSAGES, 30000);
    const publisher = await connectClient(publisherNode.mqttPort, { clientId: 'sa-pub' });
    track(publisher);
    for (let i = 0; i < MESSAGES; i++) await publisher.publishAsync(`events/m${i}`, `m${i}`, { qos: 1 });
    await rest;

    const got = await received;
    expect([...new Set(got)].sort()).toEqual(Array.from({ length: MESSAGES }, (_, i) => `events/m${i}=m${i}`).sort());
    expect(acceptedAfterMs).toBeGreaterThanOrEqual(STAGGER_MS);
    expect((await publisherNode.getJson<{ table: { complete: boolean } }>('/api/v1/cluster')).body.table.complete).toBe(true);
    process.stdout.write(`whole-region restart (sidecar): the replicant accepted clients ${acceptedAfterMs} ms after its start (core and sidecar ${STAGGER_MS} ms later); ${got.length} received for ${MESSAGES}\n`);
  }, 120000);
});
