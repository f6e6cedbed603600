import type { MqttClient } from 'mqtt';
import { TcpProxy } from '../../harness/tcp-proxy.js';
import { ClusterRegion, linkedClusterRegions, linkedSidecarRegions, linkedRegionsFixture, type LinkedClusterRegions } from './cluster-regions.js';
import { connectClient, linkedStandaloneFixture, sleep, waitFor, type Region } from './regions.js';

interface Seen { topic: string; payload: string; retain: boolean }

interface RetainedSyncInfo { sent: number; skippedLinked: number; tombstones: number; suppressed: number; twins: number; kept: number; superseded: number; linkedTopics: number }

function record(client: MqttClient): Seen[] {
  const seen: Seen[] = [];
  client.on('message', (topic, payload, packet) => seen.push({ topic, payload: payload.toString(), retain: packet.retain }));
  return seen;
}

const key = (m: Seen): string => `${m.topic}=${m.payload}`;

type StatusSource = { getJson<T>(p: string): Promise<{ body: T }> };

/** Where a region's link agent answers `/api/v1/links`: its sidecar, else its core (embedded agent). */
function agentOf(region: ClusterRegion): StatusSource {
  const sidecar = region.sidecar;
  if (!sidecar) return region.core;
  return { getJson: async <T>(p: string) => ({ body: await sidecar.getJson<T>(p) }) };
}

async function retainedSync(broker: StatusSource): Promise<RetainedSyncInfo> {
  const { body } = await broker.getJson<{ retainedSync: RetainedSyncInfo | null }>('/api/v1/links');
  if (!body.retainedSync) throw new Error('no retainedSync in /api/v1/links');
  return body.retainedSync;
}

/** The two clustered regions of a retained-sync suite: the names of A and B, and how they are linked. */
interface RetainedSetup { title: string; a: string; b: string; start: () => Promise<LinkedClusterRegions> }

const RETAINED_SETUPS: RetainedSetup[] = [
  { title: 'agents embedded in the cores', a: 'ra', b: 'rb', start: () => linkedClusterRegions('ra', 'rb', true) },
  { title: 'A\'s agent a sidecar (receives and suppresses through it)', a: 'ya', b: 'yb', start: () => linkedSidecarRegions('ya', 'yb', { bReplicant: true }) },
  {
    title: 'B\'s agent a sidecar (syncs through it)', a: 'za', b: 'zb',
    start: async () => {
      const r = await linkedSidecarRegions('zb', 'za', { bReplicant: true });
      return { A: r.B, B: r.A, toA: r.toB, toB: r.toA, dispose: r.dispose };
    },
  },
];

describe.each(RETAINED_SETUPS)('retained messages across two regional clusters ($title)', ({ a, b, start }) => {
  let A: ClusterRegion;
  let B: ClusterRegion;
  const { track, clients } = linkedRegionsFixture(start, (r) => ({ A, B } = r));

  test('retained messages of B published before A subscribes reach A\'s subscriber once; a second subscriber in A gets A\'s copy once', async () => {
    const pub = track(await B.client({ clientId: `${b}-retained-pub` }));
    await pub.publishAsync('ret/1', 'one', { qos: 1, retain: true });
    await pub.publishAsync('ret/2', 'two', { qos: 0, retain: true });
    await pub.publishAsync('other/1', 'not wanted', { qos: 1, retain: true });

    const first = track(await A.client({ clientId: `${a}-sub-1` }));
    const seenFirst = record(first);
    const arrivals: number[] = [];
    first.on('message', () => arrivals.push(Date.now()));
    await first.subscribeAsync('ret/#', { qos: 1 });
    const subackAt = Date.now();
    await waitFor(() => seenFirst.length >= 2, 'both retained messages of B at A\'s first subscriber');
    // Figure for the README: the route crosses to B, B queues its retained messages, they come back over the link.
    console.log(`retained sync: SUBACK → B's retained messages at A's subscriber ${arrivals[0] - subackAt}–${arrivals[1] - subackAt} ms`);
    await sleep(1000);
    expect(seenFirst.map(key).sort()).toEqual(['ret/1=one', 'ret/2=two']);
    // They arrive after the SUBACK, as live publishes (MQTT 3.1.1: retain=1 only for the SUBSCRIBE's own copies).
    expect(seenFirst.every((m) => !m.retain)).toBe(true);
    expect((await B.link(a)).forwarded).toBe(2);
    expect((await retainedSync(agentOf(B))).sent).toBe(2);

    // A now holds B's retained messages: a second subscriber (same filter, the agent's node) gets them from A's store.
    const second = track(await A.client({ clientId: `${a}-sub-2` }));
    const seenSecond = record(second);
    await second.subscribeAsync('ret/#', { qos: 1 });
    await waitFor(() => seenSecond.length >= 2, 'A\'s retained copies at the second subscriber');
    await sleep(1000);
    expect(seenSecond.map(key).sort()).toEqual(['ret/1=one', 'ret/2=two']);
    expect(seenSecond.every((m) => m.retain)).toBe(true);
    expect(seenFirst).toHaveLength(2);
    expect((await B.link(a)).forwarded).toBe(2);
    expect((await retainedSync(agentOf(A))).linkedTopics).toBe(2);

    // Every node of A stores them, also one without a matching route until now (a sidecar stores them everywhere).
    const onCore = track(await connectClient(A.core.mqttPort, { clientId: `${a}-sub-core` }));
    const seenOnCore = record(onCore);
    await onCore.subscribeAsync('ret/#', { qos: 1 });
    await waitFor(() => seenOnCore.length >= 2, 'A\'s retained copies on A\'s core');
    await sleep(500);
    expect(seenOnCore.map(key).sort()).toEqual(['ret/1=one', 'ret/2=two']);
    expect(seenOnCore.every((m) => m.retain)).toBe(true);
    await onCore.unsubscribeAsync('ret/#');
  });

  test('an update and a deletion in B reach A\'s subscribers and A\'s retained store', async () => {
    const sub = track(await A.client({ clientId: `${a}-sub-upd` }));
    const seen = record(sub);
    await sub.subscribeAsync('ret/#', { qos: 1 });
    await waitFor(() => seen.length >= 2, 'A\'s retained copies');
    const pub = track(await B.client({ clientId: `${b}-retained-upd` }));
    await pub.publishAsync('ret/1', 'one v2', { qos: 1, retain: true });
    await pub.publishAsync('ret/2', '', { qos: 1, retain: true });
    await waitFor(() => seen.length >= 4, 'update and deletion at A\'s subscriber');
    expect(seen.slice(2).map(key)).toEqual(['ret/1=one v2', 'ret/2=']);

    const late = track(await A.client({ clientId: `${a}-sub-late` }));
    const seenLate = record(late);
    await late.subscribeAsync('ret/#', { qos: 1 });
    await waitFor(() => seenLate.length >= 1, 'A\'s retained copy at a late subscriber');
    await sleep(1000);
    expect(seenLate.map(key)).toEqual(['ret/1=one v2']);
    expect(seenLate[0].retain).toBe(true);
    expect((await retainedSync(agentOf(A))).linkedTopics).toBe(1);
  });

  test('a route from B does not send B\'s own retained messages back (A\'s linked copies stay in A); A\'s own retained messages go', async () => {
    const aPub = track(await A.client({ clientId: `${a}-retained-pub` }));
    await aPub.publishAsync('ret/a', 'from a', { qos: 1, retain: true });
    const forwardedBefore = (await A.link(b)).forwarded;
    const skippedBefore = (await retainedSync(agentOf(A))).skippedLinked;

    const bSub = track(await B.client({ clientId: `${b}-sub` }));
    const seen = record(bSub);
    await bSub.subscribeAsync('ret/#', { qos: 1 });
    await waitFor(() => seen.some((m) => m.topic === 'ret/a'), 'A\'s retained message at B\'s subscriber');
    await sleep(1200);
    // B's own ret/1 from B's store (retain=1), A's ret/a over the link (live); the copy of ret/1 held in A never came back.
    expect(seen.map(key).sort()).toEqual(['ret/1=one v2', 'ret/a=from a']);
    expect((await A.link(b)).forwarded).toBe(forwardedBefore + 1);
    const sync = await retainedSync(agentOf(A));
    expect(sync.skippedLinked).toBe(skippedBefore + 1);
    expect(sync.sent).toBe(1);
    // B's retained ret/1 is still its own: a fresh subscriber in B gets it once, unchanged.
    const check = track(await B.client({ clientId: `${b}-check` }));
    const seenCheck = record(check);
    await check.subscribeAsync('ret/1', { qos: 1 });
    await waitFor(() => seenCheck.length >= 1, 'B\'s retained ret/1');
    await sleep(500);
    expect(seenCheck.map(key)).toEqual(['ret/1=one v2']);
    expect((await retainedSync(agentOf(B))).linkedTopics).toBe(1);
  });

  test('a retained message deleted in B while A had no route is deleted in A at A\'s next subscription', async () => {
    for (const c of clients.filter((c) => (c.options.clientId ?? '').startsWith(`${a}-sub`))) await c.unsubscribeAsync('ret/#');
    await waitFor(async () => (await B.link(a)).routesReceived === 0, 'A\'s ret/# route gone from B');
    const pub = track(await B.client({ clientId: `${b}-retained-del` }));
    await pub.publishAsync('ret/1', '', { qos: 1, retain: true });
    await pub.publishAsync('ret/3', 'three', { qos: 1, retain: true });
    const forwardedBefore = (await B.link(a)).forwarded;

    const sub = track(await A.client({ clientId: `${a}-resub` }));
    const seen = record(sub);
    await sub.subscribeAsync('ret/#', { qos: 1 });
    await waitFor(() => seen.length >= 4, 'A\'s retained copies, then the deletion and the new message from B');
    await sleep(1000);
    // On SUBSCRIBE, A's copies (retain=1): the stale ret/1 of B and A's own ret/a; then B's sync (live, retain=0):
    // ret/3 and the deletion of ret/1.
    expect(seen.filter((m) => m.retain).map(key).sort()).toEqual(['ret/1=one v2', 'ret/a=from a']);
    expect(seen.filter((m) => !m.retain).map(key).sort()).toEqual(['ret/1=', 'ret/3=three']);
    expect(seen).toHaveLength(4);
    expect((await B.link(a)).forwarded).toBe(forwardedBefore + 2);
    expect((await retainedSync(agentOf(B))).tombstones).toBe(1);

    const late = track(await A.client({ clientId: `${a}-after-del` }));
    const seenLate = record(late);
    await late.subscribeAsync('ret/#', { qos: 1 });
    await waitFor(() => seenLate.length >= 2, 'A\'s retained copies after the deletion');
    await sleep(700);
    expect(seenLate.map(key).sort()).toEqual(['ret/3=three', 'ret/a=from a']);
    expect(seenLate.every((m) => m.retain)).toBe(true);
  });

  test('a subscription in A while B keeps publishing retained topics: every value at most once, in order per topic', async () => {
    // On the agent's node, pipelined: many values are in the store (their durable write running) but not yet through
    // the `published` hook when the sync reads the store.
    const pub = track(await connectClient(B.core.mqttPort, { clientId: `${b}-hot` }));
    const topics = 20;
    let publishing = true;
    let published = 0;
    const loop = (async () => {
      while (publishing) {
        await Promise.all(Array.from({ length: topics }, (_, k) => pub.publishAsync(`hot/${k}`, String(published++), { qos: 1, retain: true })));
      }
    })();
    await sleep(300);
    const sub = track(await A.client({ clientId: `${a}-hot` }));
    const seen = record(sub);
    await sub.subscribeAsync('hot/#', { qos: 1 });
    await sleep(1500);
    publishing = false;
    await loop;
    const last = published - 1;
    // Generous: on the shared machine the link drains the pipelined stream behind the sync (seen 15 s under load).
    await waitFor(() => seen.some((m) => m.payload === String(last)), `the last value (${last}) in A`, 45_000).catch((err: Error) => {
      throw new Error(`${err.message}: ${seen.length} values at A, the highest ${Math.max(...seen.map((m) => Number(m.payload)))}`);
    });
    await sleep(500);
    for (let k = 0; k < topics; k++) {
      const values = seen.filter((m) => m.topic === `hot/${k}`).map((m) => Number(m.payload));
      // The synced copy first, then the live ones: no value twice (a live publish the sync had already read is its
      // twin and not sent again), increasing, ending with the last one published.
      expect(new Set(values).size).toBe(values.length);
      expect(values).toEqual([...values].sort((x, y) => x - y));
      expect(values[values.length - 1]).toBe(last - (topics - 1 - k));
    }
    const sync = await retainedSync(agentOf(B));
    console.log(`retained sync under live streams: ${published} published on ${topics} topics, ${seen.length} at A, twins ${sync.twins}, superseded ${sync.superseded}`);
  });
});

describe('retained messages in a three-region full mesh: no loops', () => {
  const names = ['m1', 'm2', 'm3'];
  const regions = new Map<string, ClusterRegion>();
  const proxies = new Map<string, TcpProxy>();
  const clients: MqttClient[] = [];
  const region = (name: string): ClusterRegion => regions.get(name) as ClusterRegion;

  beforeAll(async () => {
    for (const from of names) for (const to of names) if (from !== to) proxies.set(`${from}>${to}`, await TcpProxy.start(1));
    for (const name of names) {
      const r = new ClusterRegion(name);
      regions.set(name, r);
      const links = names.filter((n) => n !== name).map((n) => ({ name: n, servers: [(proxies.get(`${name}>${n}`) as TcpProxy).address], topics: ['#'] }));
      await r.start(links, { replicant: false });
    }
    for (const [k, proxy] of proxies) proxy.setTarget(region(k.split('>')[1]).core.mqttPort);
    await waitFor(async () => {
      for (const name of names) for (const other of names) if (name !== other && (await region(name).link(other)).state !== 'connected') return false;
      return true;
    }, 'all six links connected', 30000);
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await Promise.all([...regions.values()].map((r) => r.dispose()));
    for (const p of proxies.values()) await p.close();
  });

  test('every subscriber gets each region\'s retained message once; each link carries only its own region\'s', async () => {
    for (const name of names) {
      const pub = await region(name).client({ clientId: `${name}-pub` });
      clients.push(pub);
      await pub.publishAsync(`mesh/${name}`, `retained of ${name}`, { qos: 1, retain: true });
    }
    const seen = new Map<string, Seen[]>();
    // One after the other: each later subscription finds the earlier regions holding linked copies (not resent).
    for (const name of names) {
      const sub = await region(name).client({ clientId: `${name}-sub` });
      clients.push(sub);
      seen.set(name, record(sub));
      await sub.subscribeAsync('mesh/#', { qos: 1 });
      await waitFor(() => (seen.get(name) as Seen[]).length >= 3, `three retained messages in ${name}`);
    }
    await sleep(2000);
    const expected = names.map((n) => `mesh/${n}=retained of ${n}`).sort();
    for (const name of names) {
      expect((seen.get(name) as Seen[]).map(key).sort()).toEqual(expected);
      for (const other of names) {
        if (other === name) continue;
        const link = await region(name).link(other);
        expect(link.forwarded).toBe(1);
        expect(link.received).toBe(1);
        expect(link.queue.depth).toBe(0);
      }
    }
    // m2 and m3 held linked copies when the later routes came: skipped, never sent onwards.
    expect((await retainedSync(region('m1').core)).skippedLinked).toBeGreaterThanOrEqual(1);
    expect((await retainedSync(region('m2').core)).skippedLinked).toBeGreaterThanOrEqual(1);
  });
});

describe('retained messages across a restart of the sending agent', () => {
  let A: Region;
  let B: Region;
  let toB: TcpProxy;
  let toA: TcpProxy;
  const { clients } = linkedStandaloneFixture('sa', 'sb', (regions) => ({ A, B, toB, toA } = regions));

  test('kill -9 of B\'s node: its restored remote route resends the retained messages, A publishes none of them again', async () => {
    const pub = await B.client({ clientId: 'sb-pub' });
    for (let i = 0; i < 5; i++) await pub.publishAsync(`keep/${i}`, `v${i}`, { qos: 1, retain: true });
    pub.end(true);
    const sub = await A.client({ clientId: 'sa-sub', clean: false });
    clients.push(sub);
    const seen = record(sub);
    await sub.subscribeAsync('keep/#', { qos: 1 });
    await waitFor(() => seen.length >= 5, 'five retained messages of B at A');
    expect((await B.link('sa')).forwarded).toBe(5);

    await B.broker.kill9();
    await B.boot();
    toB.setTarget(B.mqttPort);
    await waitFor(async () => (await B.link('sa')).forwarded >= 5, 'B resends its retained messages after the restart', 20000);
    await waitFor(async () => (await retainedSync(A.broker)).suppressed >= 5, 'A recognises the resent copies', 10000);
    await sleep(1000);
    expect(seen.map(key).sort()).toEqual([0, 1, 2, 3, 4].map((i) => `keep/${i}=v${i}`));
    expect((await B.link('sa')).forwarded).toBe(5);
    expect((await retainedSync(A.broker)).suppressed).toBe(5);

    // Live updates still cross after the restart and are delivered.
    const pub2 = await B.client({ clientId: 'sb-pub-2' });
    clients.push(pub2);
    await pub2.publishAsync('keep/0', 'v0 new', { qos: 1, retain: true });
    await waitFor(() => seen.length >= 6, 'the update after the restart');
    expect(key(seen[5])).toBe('keep/0=v0 new');
  });

  test('kill -9 of A\'s node: the origin records survive, a route from B afterwards sends none of B\'s copies back', async () => {
    await A.broker.kill9();
    await A.boot();
    toA.setTarget(A.mqttPort);
    await waitFor(async () => (await A.link('sb')).state === 'connected' && (await B.link('sa')).state === 'connected', 'both links connected after the restart', 20000);
    expect((await retainedSync(A.broker)).linkedTopics).toBe(5);
    const bSub = await B.client({ clientId: 'sb-sub' });
    clients.push(bSub);
    const seen = record(bSub);
    await bSub.subscribeAsync('keep/#', { qos: 1 });
    await waitFor(async () => (await A.link('sb')).routesReceived === 1, 'B\'s route at A');
    await sleep(1500);
    // B's own five from its store, once each (retain=1); A sent none of its copies back.
    expect(seen.map(key).sort()).toEqual(['keep/0=v0 new', 'keep/1=v1', 'keep/2=v2', 'keep/3=v3', 'keep/4=v4']);
    expect(seen.every((m) => m.retain)).toBe(true);
    expect((await A.link('sb')).forwarded).toBe(0);
    expect((await retainedSync(A.broker)).skippedLinked).toBe(5);
  });
});

describe('retained messages across a kill -9 of a sidecar agent', () => {
  test('the sending sidecar: after the restart it refills its copy of the region\'s retained messages, resends them for the restored route, A publishes none again', async () => {
    // B's agent is the sidecar (kb), A's is embedded (ka).
    const r = await linkedSidecarRegions('kb', 'ka', { bReplicant: false });
    const clients: MqttClient[] = [];
    try {
      const A = r.B;
      const B = r.A;
      const pub = await B.client({ clientId: 'kb-pub' });
      clients.push(pub);
      for (let i = 0; i < 5; i++) await pub.publishAsync(`keep/${i}`, `v${i}`, { qos: 1, retain: true });
      const sub = await A.client({ clientId: 'ka-sub', clean: false });
      clients.push(sub);
      const seen = record(sub);
      await sub.subscribeAsync('keep/#', { qos: 1 });
      await waitFor(() => seen.length >= 5, 'five retained messages of B at A');

      await B.killSidecar();
      await B.restartSidecar();
      await waitFor(async () => (await B.link('ka')).forwarded >= 5, 'the restarted sidecar resends its region\'s retained messages', 30000);
      await waitFor(async () => (await retainedSync(agentOf(A))).suppressed >= 5, 'A recognises the resent copies', 15000);
      await sleep(1000);
      expect(seen.map(key).sort()).toEqual([0, 1, 2, 3, 4].map((i) => `keep/${i}=v${i}`));
      expect((await retainedSync(agentOf(B))).sent).toBe(5);

      await pub.publishAsync('keep/0', 'v0 new', { qos: 1, retain: true });
      await waitFor(() => seen.length >= 6, 'the update after the restart');
      expect(key(seen[5])).toBe('keep/0=v0 new');
    } finally {
      for (const c of clients) c.end(true);
      await r.dispose();
    }
  });

  test('the receiving sidecar: its origin records survive and its copy is refilled, a route from B afterwards sends none of B\'s copies back', async () => {
    const { A, B, dispose } = await linkedSidecarRegions('kc', 'kd', { bReplicant: false });
    const clients: MqttClient[] = [];
    try {
      const pub = await B.client({ clientId: 'kd-pub' });
      clients.push(pub);
      for (let i = 0; i < 5; i++) await pub.publishAsync(`keep/${i}`, `v${i}`, { qos: 1, retain: true });
      const sub = await A.client({ clientId: 'kc-sub' });
      clients.push(sub);
      const seen = record(sub);
      await sub.subscribeAsync('keep/#', { qos: 1 });
      await waitFor(() => seen.length >= 5, 'five retained messages of B in the sidecar region');

      await A.killSidecar();
      await A.restartSidecar();
      await waitFor(async () => (await A.link('kd')).state === 'connected' && (await B.link('kc')).state === 'connected', 'both links connected after the restart', 30000);
      expect((await retainedSync(agentOf(A))).linkedTopics).toBe(5);
      const bSub = await B.client({ clientId: 'kd-sub' });
      clients.push(bSub);
      const seenB = record(bSub);
      await bSub.subscribeAsync('keep/#', { qos: 1 });
      await waitFor(async () => (await A.link('kd')).routesReceived >= 1, 'B\'s route at A\'s sidecar', 20000);
      await sleep(1500);
      // B's own five from its store (retain = 1); the sidecar held A's copies of them (refilled from A's core) and
      // skipped them as linked.
      expect(seenB.map(key).sort()).toEqual([0, 1, 2, 3, 4].map((i) => `keep/${i}=v${i}`));
      expect(seenB.every((m) => m.retain)).toBe(true);
      expect((await A.link('kd')).forwarded).toBe(0);
      expect((await retainedSync(agentOf(A))).skippedLinked).toBe(5);
    } finally {
      for (const c of clients) c.end(true);
      await dispose();
    }
  });
});
