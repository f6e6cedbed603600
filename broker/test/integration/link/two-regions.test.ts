import type { MqttClient } from 'mqtt';
import type { TcpProxy } from '../../harness/tcp-proxy.js';
import { linkedStandaloneFixture, sleep, waitFor, type Region } from './regions.js';

interface Seen { topic: string; payload: string }

function record(client: MqttClient): Seen[] {
  const seen: Seen[] = [];
  client.on('message', (topic, payload) => seen.push({ topic, payload: payload.toString() }));
  return seen;
}

/** Unsubscribes in A and waits until B holds one route of A's agent less. */
async function unsubscribeAcross(A: Region, B: Region, client: MqttClient, filter: string): Promise<void> {
  const before = (await B.link(A.name)).routesReceived;
  await client.unsubscribeAsync(filter);
  await waitFor(async () => (await B.link(A.name)).routesReceived === before - 1, `route ${filter} of ${A.name} gone from ${B.name}`);
}

/** Subscribes in A and waits until B holds one more route of A's agent. */
async function subscribeAcross(A: Region, B: Region, client: MqttClient, filter: string, qos: 0 | 1 | 2): Promise<void> {
  const before = (await B.link(A.name)).routesReceived;
  await client.subscribeAsync(filter, { qos });
  await waitFor(async () => (await B.link(A.name)).routesReceived === before + 1, `route ${filter} of ${A.name} visible in ${B.name}`);
}

describe('cluster link between two regions (embedded agents, standalone nodes)', () => {
  let A: Region;
  let B: Region;
  let toB: TcpProxy;
  let toA: TcpProxy;
  const { track } = linkedStandaloneFixture('us', 'eu', (regions) => ({ A, B, toB, toA } = regions));

  test('subscribe in A → route in B → a message published in B arrives in A exactly once; unsubscribe → route gone', async () => {
    const sub = track(await A.client({ clientId: 'a-sub' }));
    const seen = record(sub);
    await sub.subscribeAsync('sensors/+/temp', { qos: 1 });
    await waitFor(async () => (await B.link('us')).routesReceived === 1, 'route of A visible in B');
    expect((await A.link('eu')).routesSent).toBe(1);

    const pub = track(await B.client({ clientId: 'b-pub' }));
    await pub.publishAsync('sensors/1/temp', '21.5', { qos: 1 });
    await waitFor(() => seen.length === 1, 'delivery in A');
    await sleep(500);
    expect(seen).toEqual([{ topic: 'sensors/1/temp', payload: '21.5' }]);
    expect((await A.link('eu')).received).toBe(1);

    await sub.unsubscribeAsync('sensors/+/temp');
    await waitFor(async () => (await B.link('us')).routesReceived === 0, 'route gone from B');
    await pub.publishAsync('sensors/2/temp', 'after unsubscribe', { qos: 1 });
    await sleep(300);
    expect((await B.link('us')).queue.depth).toBe(0);
    expect(seen).toHaveLength(1);
  });

  test('traffic on topics nobody in the other region subscribes to puts zero message bytes on the link', async () => {
    const sub = track(await A.client({ clientId: 'a-sub-zero' }));
    await subscribeAcross(A, B, sub, 'wanted/#', 1);
    const before = await B.link('us');
    toA.resetCounters();
    const pub = track(await B.client({ clientId: 'b-pub-zero' }));
    const payload = 'x'.repeat(1000);
    for (let i = 0; i < 200; i++) await pub.publishAsync(`unwanted/${i}`, payload, { qos: 1 });
    const after = await B.link('us');
    expect(after.forwarded).toBe(before.forwarded);
    expect(after.bytesOut).toBe(before.bytesOut);
    // 200 kB were published; only route-sync heartbeats (tens of bytes) may cross in the meantime.
    expect(toA.bytesToTarget).toBeLessThan(2000);
    await unsubscribeAcross(A, B, sub, 'wanted/#');
  });

  test('$-topics never cross: a link topic of # does not carry them', async () => {
    const su = track(await A.superuser({ clientId: 'a-super' }));
    const seen = record(su);
    const routesBefore = (await B.link('us')).routesReceived;
    await su.subscribeAsync('$custom/#', { qos: 1 });
    await su.subscribeAsync('$SYS/#', { qos: 1 });
    await sleep(300);
    expect((await B.link('us')).routesReceived).toBe(routesBefore);
    const bsu = track(await B.superuser({ clientId: 'b-super' }));
    await bsu.publishAsync('$custom/x', 'secret', { qos: 1 });
    await bsu.subscribeAsync('anything/in/b', { qos: 1 }); // B publishes $SYS/<B's id>/new/subscribes
    await sleep(500);
    expect(seen.filter((m) => m.topic.startsWith('$custom') || m.topic.startsWith('$SYS/eu-1'))).toEqual([]);
    expect(seen.some((m) => m.topic.startsWith('$SYS/us-1'))).toBe(true); // A's own $SYS does reach it
  });

  test('a link cut for ~5 s during a QoS 2 stream: every message exactly once, in order', async () => {
    const sub = track(await A.client({ clientId: 'a-stream', clean: false }));
    const seen = record(sub);
    await subscribeAcross(A, B, sub, 'stream/#', 2);
    const pub = track(await B.client({ clientId: 'b-stream' }));
    const total = 300;
    const publishing = (async () => {
      for (let i = 0; i < total; i++) {
        await pub.publishAsync('stream/x', String(i), { qos: 2 });
        await sleep(10);
      }
    })();
    await waitFor(() => seen.length >= 50, 'stream under way');
    for (const proxy of [toA, toB]) { proxy.refuse(); proxy.cut(); }
    await sleep(5000);
    expect((await B.link('us')).state).not.toBe('connected');
    for (const proxy of [toA, toB]) proxy.restore();
    await publishing;
    await waitFor(() => seen.length >= total, `all ${total} messages in A`, 30000);
    await sleep(500);
    expect(seen.map((s) => Number(s.payload))).toEqual([...Array(total).keys()]);
    expect((await B.link('us')).queue.depth).toBe(0);
    await unsubscribeAcross(A, B, sub, 'stream/#');
  });

  test('kill -9 of the publishing region with forwarded messages not yet acknowledged: exactly once after restart', async () => {
    const sub = track(await A.client({ clientId: 'a-crash' }));
    const seen = record(sub);
    await subscribeAcross(A, B, sub, 'crash/#', 1);
    const dedupBefore = (await A.link('eu')).deduplicated;
    toA.holdReplies(); // A receives and publishes, B never sees the acknowledgements
    const pub = track(await B.client({ clientId: 'b-crash' }));
    const total = 50;
    for (let i = 0; i < total; i++) await pub.publishAsync(`crash/${i}`, String(i), { qos: 1 });
    await waitFor(() => seen.length === total, 'all delivered in A before the crash');
    expect((await B.link('us')).queue.depth).toBe(total);

    await B.broker.kill9();
    toA.releaseReplies();
    toA.cut();
    await B.boot();
    toB.setTarget(B.mqttPort);
    await waitFor(async () => (await B.link('us')).queue.depth === 0, 'queue of B drained after restart', 20000);
    await sleep(500);
    expect(seen.map((s) => Number(s.payload))).toEqual([...Array(total).keys()]);
    expect((await A.link('eu')).deduplicated - dedupBefore).toBe(total);
    // A's agent redials B with a back-off of up to 5 s; the next test counts B's routes from A, so wait for them.
    await waitFor(async () => (await A.link('eu')).state === 'connected' && (await B.link('us')).routesReceived === (await A.link('eu')).routesSent,
      'A\'s routes back in B after its restart', 20000);
  });

  test('kill -9 of the publishing region while its queue holds messages (link down): all delivered once after restart', async () => {
    const sub = track(await A.client({ clientId: 'a-queued' }));
    const seen = record(sub);
    await subscribeAcross(A, B, sub, 'queued/#', 1);
    toA.refuse();
    toA.cut();
    const pub = track(await B.client({ clientId: 'b-queued' }));
    const total = 100;
    for (let i = 0; i < total; i++) await pub.publishAsync(`queued/${i % 7}`, String(i), { qos: 1 });
    expect((await B.link('us')).queue.depth).toBe(total);
    await B.broker.kill9();
    await B.boot();
    toB.setTarget(B.mqttPort);
    toA.restore();
    await waitFor(() => seen.length >= total, 'all queued messages in A', 20000);
    await sleep(500);
    expect(seen.map((s) => Number(s.payload))).toEqual([...Array(total).keys()]);
    // A's agent redials B with a back-off: the next test starts from a connected link.
    await waitFor(async () => (await A.link('eu')).state === 'connected', 'A\'s link to B connected again', 20000);
  });

  test('a bad link entry is reported with its key path; hot reload adds and removes links without touching the others', async () => {
    const before = await A.link('eu');
    expect(before.state).toBe('connected');
    A.writeLinks([
      { name: 'eu', servers: [toB.address], topics: ['#'] },
      { name: 'ap', servers: ['ap.example:99999'], topics: ['#'] },
      { name: 'sa', servers: ['127.0.0.1:1'], topics: ['sa/#'] },
    ]);
    await waitFor(async () => (await A.links()).length === 3, 'three links listed');
    const links = await A.links();
    expect(links.find((l) => l.name === 'ap')).toMatchObject({ state: 'misconfigured', lastError: expect.stringContaining('links[1].servers[0]') });
    expect(['connecting', 'disconnected']).toContain(links.find((l) => l.name === 'sa')?.state);
    expect(await A.link('eu')).toMatchObject({ state: 'connected', incarnation: before.incarnation });
    expect(A.broker.logs.some((l) => l.includes('link entry rejected') && l.includes('links[1].servers[0]'))).toBe(true);

    // the running link still carries traffic
    const sub = track(await A.client({ clientId: 'a-reload' }));
    const seen = record(sub);
    await subscribeAcross(A, B, sub, 'reload/#', 1);
    const pub = track(await B.client({ clientId: 'b-reload' }));
    await pub.publishAsync('reload/1', 'still linked', { qos: 1 });
    await waitFor(() => seen.length === 1, 'delivery over the untouched link');

    A.writeLinks([{ name: 'eu', servers: [toB.address], topics: ['#'] }]);
    await waitFor(async () => (await A.links()).length === 1, 'extra links removed');
    expect(await A.link('eu')).toMatchObject({ state: 'connected', incarnation: before.incarnation });

    const metrics = await (await fetch(`${A.broker.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/meridian_link_state\{link="eu",state="connected"\} 1/);
    expect(metrics).toMatch(/meridian_link_messages_received_total\{link="eu"\} [1-9]/);
  });
});
