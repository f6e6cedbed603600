import type { MqttClient } from 'mqtt';
import { TcpProxy } from '../../harness/tcp-proxy.js';
import { ClusterRegion, linkedClusterRegions, linkedRegionsFixture } from './cluster-regions.js';
import { connectClient, sleep, waitFor } from './regions.js';

interface Seen { topic: string; payload: string }

function record(client: MqttClient): Seen[] {
  const seen: Seen[] = [];
  client.on('message', (topic, payload) => seen.push({ topic, payload: payload.toString() }));
  return seen;
}

/** How often each (topic, payload) was seen. */
function counts(seen: Seen[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of seen) out.set(`${m.topic} ${m.payload}`, (out.get(`${m.topic} ${m.payload}`) ?? 0) + 1);
  return out;
}

describe('cluster links between regional clusters (agent embedded in each region\'s core)', () => {
  let A: ClusterRegion;
  let B: ClusterRegion;
  const { track } = linkedRegionsFixture(() => linkedClusterRegions('us', 'eu', true), (r) => ({ A, B } = r));

  test('a subscriber on A\'s replicant receives what a publisher on B\'s replicant publishes, exactly once, in order per QoS', async () => {
    const sub = track(await A.client({ clientId: 'a-replicant-sub' }));
    const seen = record(sub);
    await sub.subscribeAsync('orders/+/created', { qos: 1 });
    // The replicant's route reaches A's core through route sync, then B's core through the link.
    await waitFor(async () => (await B.link('us')).routesReceived === 1, 'route of A\'s replicant visible in B');
    expect((await A.link('eu')).routesSent).toBe(1);

    const pub = track(await B.client({ clientId: 'b-replicant-pub' }));
    const total = 40;
    for (let i = 0; i < total; i++) await pub.publishAsync(`orders/${i}/created`, String(i), { qos: i % 2 === 0 ? 1 : 2 });
    await pub.publishAsync('orders/x/deleted', 'unwanted', { qos: 1 });
    await waitFor(() => seen.length >= total, `${total} messages on A's replicant`);
    await sleep(700);
    // Exactly once, and in order per QoS level: aedes delivers a QoS 1 and a QoS 2 message published one after
    // the other to a subscriber through separate store writes, which may complete in either order.
    const payloads = seen.map((m) => Number(m.payload));
    expect([...payloads].sort((x, y) => x - y)).toEqual(Array.from({ length: total }, (_, i) => i));
    for (const parity of [0, 1]) {
      const ofQos = payloads.filter((p) => p % 2 === parity);
      expect(ofQos).toEqual([...ofQos].sort((x, y) => x - y));
    }
    const toUs = await B.link('us');
    expect(toUs.forwarded).toBe(total);
    expect(toUs.queue.depth).toBe(0);
    const fromEu = await A.link('eu');
    expect(fromEu.received).toBe(total);
    expect(fromEu.deduplicated).toBe(0);
    // Nothing went back: A's agent holds no route of B for these topics, and linked messages are never queued.
    expect(fromEu.forwarded).toBe(0);
    expect(fromEu.queue.depth).toBe(0);
  });

  test('a subscriber on the agent\'s own node and one on the replicant both get a message once; unsubscribe withdraws the route', async () => {
    const onCore = track(await connectClient(A.core.mqttPort, { clientId: 'a-core-sub' }));
    const onReplicant = track(await A.client({ clientId: 'a-replicant-sub-2' }));
    const seenCore = record(onCore);
    const seenReplicant = record(onReplicant);
    const before = (await B.link('us')).routesReceived;
    await onCore.subscribeAsync('both/#', { qos: 1 });
    await onReplicant.subscribeAsync('both/#', { qos: 1 });
    await waitFor(async () => (await B.link('us')).routesReceived === before + 1, 'one route for both subscribers in B');
    const pub = track(await B.client({ clientId: 'b-pub-both' }));
    await pub.publishAsync('both/1', 'one', { qos: 1 });
    await waitFor(() => seenCore.length === 1 && seenReplicant.length === 1, 'delivery to both');
    await sleep(500);
    expect(seenCore).toHaveLength(1);
    expect(seenReplicant).toHaveLength(1);

    await onCore.unsubscribeAsync('both/#');
    await sleep(300);
    expect((await B.link('us')).routesReceived).toBe(before + 1);
    await onReplicant.unsubscribeAsync('both/#');
    await waitFor(async () => (await B.link('us')).routesReceived === before, 'route gone from B after the last unsubscribe');
  });
});

describe('three regions in a full mesh: no loops', () => {
  const names = ['r1', 'r2', 'r3'];
  const regions = new Map<string, ClusterRegion>();
  const proxies = new Map<string, TcpProxy>();
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    for (const from of names) for (const to of names) if (from !== to) proxies.set(`${from}>${to}`, await TcpProxy.start(1));
    for (const name of names) {
      const region = new ClusterRegion(name);
      regions.set(name, region);
      const links = names.filter((n) => n !== name).map((n) => ({ name: n, servers: [(proxies.get(`${name}>${n}`) as TcpProxy).address], topics: ['#'] }));
      await region.start(links, { replicant: false });
    }
    for (const [key, proxy] of proxies) proxy.setTarget((regions.get(key.split('>')[1]) as ClusterRegion).core.mqttPort);
    await waitFor(async () => {
      for (const name of names) for (const other of names) if (name !== other && (await (regions.get(name) as ClusterRegion).link(other)).state !== 'connected') return false;
      return true;
    }, 'all six links connected', 30000);
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await Promise.all([...regions.values()].map((r) => r.dispose()));
    for (const p of proxies.values()) await p.close();
  });

  test('each subscriber gets every message of every region exactly once; no message is forwarded twice', async () => {
    const seen = new Map<string, Seen[]>();
    for (const name of names) {
      const sub = await (regions.get(name) as ClusterRegion).client({ clientId: `${name}-sub` });
      clients.push(sub);
      seen.set(name, record(sub));
      await sub.subscribeAsync('mesh/#', { qos: 1 });
    }
    await waitFor(async () => {
      for (const name of names) for (const other of names) if (name !== other && (await (regions.get(name) as ClusterRegion).link(other)).routesReceived !== 1) return false;
      return true;
    }, 'every region holds the mesh/# route of both others');
    const perRegion = 15;
    for (const name of names) {
      const pub = await (regions.get(name) as ClusterRegion).client({ clientId: `${name}-pub` });
      clients.push(pub);
      for (let i = 0; i < perRegion; i++) await pub.publishAsync(`mesh/${name}`, String(i), { qos: 1 });
    }
    const total = perRegion * names.length;
    await waitFor(() => names.every((n) => (seen.get(n) as Seen[]).length >= total), `${total} messages in every region`);
    await sleep(1500);
    for (const name of names) {
      const got = seen.get(name) as Seen[];
      expect(got).toHaveLength(total);
      expect([...counts(got).values()].every((n) => n === 1)).toBe(true);
      for (const other of names) {
        if (other === name) continue;
        const link = await (regions.get(name) as ClusterRegion).link(other);
        // Only this region's own messages cross each link, once; what came from a third region never goes on.
        expect(link.forwarded).toBe(perRegion);
        expect(link.received).toBe(perRegion);
        expect(link.deduplicated).toBe(0);
        expect(link.queue.depth).toBe(0);
      }
    }
  });
});
