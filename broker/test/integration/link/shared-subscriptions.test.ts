import type { MqttClient } from 'mqtt';
import { linkedClusterRegions, type ClusterRegion, linkedRegionsFixture } from './cluster-regions.js';
import { connectClient, sleep, waitFor } from './regions.js';

describe('shared subscriptions across regions (agent embedded in each region\'s core)', () => {
  let A: ClusterRegion;
  let B: ClusterRegion;
  const { track } = linkedRegionsFixture(() => linkedClusterRegions('us', 'eu', false), (r) => ({ A, B } = r));

  test('a $share group with members on A\'s core and replicant receives each message from B exactly once in total', async () => {
    const members = [
      { node: 'core', client: track(await connectClient(A.core.mqttPort, { clientId: 'a-share-core' })) },
      { node: 'replicant', client: track(await A.client({ clientId: 'a-share-replicant' })) },
    ];
    const received: { node: string; payload: string }[] = [];
    for (const { node, client } of members) {
      client.on('message', (_topic, payload) => received.push({ node, payload: payload.toString() }));
      await client.subscribeAsync('$share/g/jobs/#', { qos: 1 });
    }
    await waitFor(async () => (await B.link('us')).routesReceived >= 1, 'the group\'s filter visible in B');
    await sleep(300);
    expect((await B.link('us')).routesReceived).toBe(1); // two members, one filter: one route on the link

    const pub = track(await B.client({ clientId: 'b-share-pub' }));
    const total = 60;
    for (let i = 0; i < total; i++) await pub.publishAsync(`jobs/${i % 5}`, String(i), { qos: 1 });
    await waitFor(() => received.length >= total, `${total} messages in the group`);
    await sleep(700);

    expect(received.map((r) => Number(r.payload)).sort((x, y) => x - y)).toEqual([...Array(total).keys()]);
    expect((await B.link('us')).forwarded).toBeGreaterThanOrEqual(total);
    expect((await A.link('eu')).received).toBe(total);
    const perNode = members.map(({ node }) => `${node}: ${received.filter((r) => r.node === node).length}`);
    process.stdout.write(`shared group across regions: ${perNode.join(', ')}\n`);
  });
});
