import type { MqttClient } from 'mqtt';
import { type ClusterRegion, linkedSidecarRegions, linkedRegionsFixture } from './cluster-regions.js';
import { sleep, waitFor } from './regions.js';

interface Seen { topic: string; payload: string }

function record(client: MqttClient): Seen[] {
  const seen: Seen[] = [];
  client.on('message', (topic, payload) => seen.push({ topic, payload: payload.toString() }));
  return seen;
}

describe('the link agent as a sidecar (meridian link-agent) beside a regional cluster', () => {
  let A: ClusterRegion;
  let B: ClusterRegion;
  const { track } = linkedRegionsFixture(() => linkedSidecarRegions('us', 'eu', { bReplicant: true }), (r) => ({ A, B } = r));

  test('B → A: a subscriber on A\'s replicant receives what B\'s replicant publishes, exactly once, in order per QoS', async () => {
    const sub = track(await A.client({ clientId: 'a-sub' }));
    const seen = record(sub);
    await sub.subscribeAsync('orders/#', { qos: 2 });
    await waitFor(async () => (await B.link('us')).routesReceived === 1, 'route of A (via the sidecar) visible in B');
    expect((await A.link('eu')).routesSent).toBe(1);
    const pub = track(await B.client({ clientId: 'b-pub' }));
    const total = 40;
    for (let i = 0; i < total; i++) await pub.publishAsync(`orders/${i % 3}`, String(i), { qos: i % 2 === 0 ? 1 : 2 });
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
    const atA = await A.link('eu');
    expect(atA.received).toBe(total);
    expect(atA.deduplicated).toBe(0);
    expect(atA.forwarded).toBe(0); // nothing went back
    expect((await B.link('us')).forwarded).toBe(total);
  });

  test('A → B: what A\'s replicant publishes reaches the sidecar as cluster-forwarded copies and crosses once', async () => {
    const sub = track(await B.client({ clientId: 'b-sub' }));
    const seen = record(sub);
    await sub.subscribeAsync('alerts/+', { qos: 1 });
    await waitFor(async () => (await A.link('eu')).routesReceived === 1, 'route of B visible at A\'s sidecar');
    const pub = track(await A.client({ clientId: 'a-pub' }));
    const total = 30;
    for (let i = 0; i < total; i++) await pub.publishAsync(`alerts/${i}`, String(i), { qos: 1 });
    await pub.publishAsync('unwanted/x', 'no', { qos: 1 });
    await waitFor(() => seen.length >= total, `${total} messages on B's replicant`);
    await sleep(700);
    expect(seen.map((m) => m.payload)).toEqual(Array.from({ length: total }, (_, i) => String(i)));
    const atA = await A.link('eu');
    expect(atA.forwarded).toBe(total);
    expect(atA.queue.depth).toBe(0);
    expect((await B.link('us')).received).toBe(total);
  });

  test('the sidecar logged no warning or error (no unhandled cluster message, no refused copy)', () => {
    expect((A.sidecar?.logs ?? []).filter((line) => /"level":(40|50|60)/.test(line))).toEqual([]);
  });

  test('kill -9 of the sidecar during QoS 1 streams both ways: none lost, in order, at most the one in the crash window twice', async () => {
    const subB = track(await B.client({ clientId: 'b-kstream', clean: false }));
    const subA = track(await A.client({ clientId: 'a-kstream', clean: false }));
    const seenB = record(subB);
    const seenA = record(subA);
    const routesAtA = (await A.link('eu')).routesReceived;
    const routesAtB = (await B.link('us')).routesReceived;
    await subB.subscribeAsync('kstream/a/#', { qos: 1 });
    await subA.subscribeAsync('kstream/b/#', { qos: 1 });
    await waitFor(async () => (await A.link('eu')).routesReceived === routesAtA + 1 && (await B.link('us')).routesReceived === routesAtB + 1, 'both stream routes across');
    const pubA = track(await A.client({ clientId: 'a-kpub' }));
    const pubB = track(await B.client({ clientId: 'b-kpub' }));
    const total = 150;
    const stream = async (pub: MqttClient, topic: string): Promise<void> => {
      for (let i = 0; i < total; i++) {
        await pub.publishAsync(topic, String(i), { qos: 1 });
        await sleep(10);
      }
    };
    const publishing = Promise.all([stream(pubA, 'kstream/a/x'), stream(pubB, 'kstream/b/x')]);
    await waitFor(() => seenA.length >= 40 && seenB.length >= 40, 'streams under way');
    await A.killSidecar();
    await sleep(1000);
    await A.restartSidecar();
    await publishing;
    const missing = (seen: Seen[]): string[] => Array.from({ length: total }, (_, n) => String(n)).filter((p) => !seen.some((m) => m.payload === p));
    await waitFor(() => seenA.length >= total && seenB.length >= total, `all ${total} messages both ways`, 30000).catch((err: Error) => {
      throw new Error(`${err.message}; missing in B: [${missing(seenB).join(',')}], missing in A: [${missing(seenA).join(',')}]`);
    });
    await sleep(1500);
    const expected = Array.from({ length: total }, (_, i) => String(i));
    // A → B: the copy in flight to the killed sidecar is handed to its restart (the forwarder resends to a restarted
    // link agent), its queue is durable, B de-duplicates the resent entries.
    // B → A: the sidecar publishes into the region, then stores the dedup mark: a kill between the two makes B
    // resend one message that A's subscriber already has (at-least-once for that one window, see README).
    for (const seen of [seenB, seenA]) {
      const payloads = seen.map((m) => m.payload);
      const repeats = payloads.filter((p, i) => i > 0 && payloads[i - 1] === p).length;
      expect(payloads.filter((p, i) => i === 0 || payloads[i - 1] !== p)).toEqual(expected);
      expect(repeats).toBeLessThanOrEqual(1);
    }
  });

  test('unsubscribe in A withdraws the route from B', async () => {
    const sub = track(await A.client({ clientId: 'a-sub-2' }));
    const before = (await B.link('us')).routesReceived;
    await sub.subscribeAsync('temporary/#', { qos: 1 });
    await waitFor(async () => (await B.link('us')).routesReceived === before + 1, 'route visible in B');
    await sub.unsubscribeAsync('temporary/#');
    await waitFor(async () => (await B.link('us')).routesReceived === before, 'route gone from B');
  });
});
