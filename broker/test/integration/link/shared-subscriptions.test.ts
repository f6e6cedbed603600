import type { MqttClient } from 'mqtt';
import { linkedClusterRegions, linkedSidecarRegions, type ClusterRegion, type LinkedClusterRegions, linkedRegionsFixture } from './cluster-regions.js';
import { connectClient, sleep, waitFor } from './regions.js';

/** Region A (core + replicant, the group's members) linked with B (the publisher's region). */
interface SharedSetup { title: string; a: string; b: string; start: () => Promise<LinkedClusterRegions> }

const SHARED_SETUPS: SharedSetup[] = [
  { title: 'agent embedded in each region\'s core', a: 'us', b: 'eu', start: () => linkedClusterRegions('us', 'eu', false) },
  { title: 'A\'s agent a sidecar', a: 'su', b: 'se', start: () => linkedSidecarRegions('su', 'se', { bReplicant: false }) },
];

describe.each(SHARED_SETUPS)('shared subscriptions across regions ($title)', ({ a, b, start }) => {
  let A: ClusterRegion;
  let B: ClusterRegion;
  const { track } = linkedRegionsFixture(start, (r) => ({ A, B } = r));

  test('a $share group with members on A\'s core and replicant receives each message from B exactly once in total', async () => {
    const members = [
      { node: 'core', client: track(await connectClient(A.core.mqttPort, { clientId: `${a}-share-core` })) },
      { node: 'replicant', client: track(await A.client({ clientId: `${a}-share-replicant` })) },
    ];
    const received: { node: string; payload: string }[] = [];
    for (const { node, client } of members) {
      client.on('message', (_topic, payload) => received.push({ node, payload: payload.toString() }));
      await client.subscribeAsync('$share/g/jobs/#', { qos: 1 });
    }
    await waitFor(async () => (await B.link(a)).routesReceived >= 1, 'the group\'s filter visible in B');
    await sleep(300);
    expect((await B.link(a)).routesReceived).toBe(1); // two members, one filter: one route on the link

    const pub = track(await B.client({ clientId: `${b}-share-pub` }));
    const total = 60;
    for (let i = 0; i < total; i++) await pub.publishAsync(`jobs/${i % 5}`, String(i), { qos: 1 });
    await waitFor(() => received.length >= total, `${total} messages in the group`);
    await sleep(700);

    expect(received.map((r) => Number(r.payload)).sort((x, y) => x - y)).toEqual([...Array(total).keys()]);
    expect((await B.link(a)).forwarded).toBeGreaterThanOrEqual(total);
    expect((await A.link(b)).received).toBe(total);
    const perNode = members.map(({ node }) => `${node}: ${received.filter((r) => r.node === node).length}`);
    process.stdout.write(`shared group across regions (${a}): ${perNode.join(', ')}\n`);
    // The owners are taken in turn: both nodes' members get a share (not all on one node).
    for (const { node } of members) expect(received.filter((r) => r.node === node).length).toBeGreaterThan(0);
  });

  test('an ordinary subscriber beside the group gets every message, the group each once in total', async () => {
    const ordinary = track(await connectClient(A.core.mqttPort, { clientId: `${a}-plain` }));
    const plain: string[] = [];
    ordinary.on('message', (_topic, payload) => plain.push(payload.toString()));
    await ordinary.subscribeAsync('tasks/#', { qos: 1 });
    const member = track(await A.client({ clientId: `${a}-tasks-member` }));
    const shared: string[] = [];
    member.on('message', (_topic, payload) => shared.push(payload.toString()));
    await member.subscribeAsync('$share/w/tasks/#', { qos: 1 });
    await waitFor(async () => (await B.link(a)).routesReceived >= 2, 'tasks/# visible in B (one route for the ordinary and the shared subscription)');

    const pub: MqttClient = track(await B.client({ clientId: `${b}-tasks-pub` }));
    const total = 30;
    for (let i = 0; i < total; i++) await pub.publishAsync(`tasks/${i % 3}`, String(i), { qos: 1 });
    await waitFor(() => plain.length >= total && shared.length >= total, 'every message at both');
    await sleep(700);
    expect(plain.map(Number)).toEqual([...Array(total).keys()]);
    expect(shared.map(Number)).toEqual([...Array(total).keys()]);
  });
});
