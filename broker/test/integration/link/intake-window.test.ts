import type { MqttClient } from 'mqtt';
import { TcpProxy } from '../../harness/tcp-proxy.js';
import { ClusterRegion } from './cluster-regions.js';
import { sleep, waitFor } from './regions.js';

/**
 * The agent-intake window: a copy the sidecar queued durably but had not yet acknowledged to the sending node when
 * it was killed is resent by that node to the restarted sidecar. The copy carries its identity (sending node,
 * incarnation, sequence); the queue entry records it in the same write, so the restarted sidecar recognises the
 * resend and does not queue it again (which would give it a new link sequence and deliver it twice).
 */
describe('kill -9 of a sidecar agent while copies are in flight to it: no message queued twice', () => {
  let A: ClusterRegion;
  let B: ClusterRegion;
  const proxies: TcpProxy[] = [];
  const clients: MqttClient[] = [];
  const track = <T extends MqttClient>(c: T): T => { clients.push(c); return c; };

  beforeAll(async () => {
    const toB = await TcpProxy.start(1);
    const toA = await TcpProxy.start(1);
    proxies.push(toA, toB);
    A = new ClusterRegion('iw');
    B = new ClusterRegion('jw');
    await A.start([{ name: 'jw', servers: [toB.address], topics: ['#'] }], { replicant: true, sidecar: true });
    await B.start([{ name: 'iw', servers: [toA.address], topics: ['#'] }], { replicant: false });
    toB.setTarget(B.core.mqttPort);
    toA.setTarget((A.replicant ?? A.core).mqttPort);
    await waitFor(async () => (await A.link('jw')).state === 'connected' && (await B.link('iw')).state === 'connected', 'both links connected', 30000);
  }, 60000);
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await A?.dispose();
    await B?.dispose();
    for (const p of proxies) await p.close();
  });

  test('8 publishers on the replicant (QoS 1 and 2), three kills of the sidecar: every message once at B, in per-publisher order', async () => {
    const sub = track(await B.client({ clientId: 'jw-sub', clean: false }));
    const seen: Array<{ topic: string; n: number }> = [];
    sub.on('message', (topic, payload) => seen.push({ topic, n: Number(payload.toString()) }));
    await sub.subscribeAsync('iw/#', { qos: 2 });
    await waitFor(async () => (await A.link('jw')).routesReceived >= 1, 'route of B at the sidecar');
    const publishers = 8;
    const perPublisher = 150;
    const pubs = await Promise.all(Array.from({ length: publishers }, (_, p) => A.client({ clientId: `iw-pub-${p}` }).then(track)));
    const publishing = Promise.all(pubs.map(async (pub, p) => {
      for (let i = 0; i < perPublisher; i++) {
        await pub.publishAsync(`iw/p${p}`, String(i), { qos: p % 2 === 0 ? 1 : 2 });
        if (i % 10 === 0) await sleep(5);
      }
    }));
    let skippedResends = 0;
    const countSkips = (): number => (A.sidecar?.logs ?? []).filter((l) => l.includes('resent copy already queued before the restart')).length;
    for (let kill = 1; kill <= 3; kill++) {
      await waitFor(() => seen.length >= kill * 250, `${kill * 250} messages at B`, 30000);
      skippedResends += countSkips();
      await A.killSidecar();
      await sleep(700);
      await A.restartSidecar();
    }
    await publishing;
    await waitFor(() => seen.length >= publishers * perPublisher, 'every message at B', 30000).catch((err: Error) => {
      throw new Error(`${err.message} (${seen.length} of ${publishers * perPublisher})`);
    });
    await sleep(1500);
    skippedResends += countSkips();
    const resentToRestarted = [A.core, A.replicant].flatMap((node) => node?.logs ?? []).filter((l) => l.includes('link agent restarted: forwarded message handed over again')).length;
    process.stdout.write(`intake window: ${seen.length} delivered for ${publishers * perPublisher}; copies resent to a restarted sidecar: ${resentToRestarted}, of which recognised as already queued: ${skippedResends}\n`);
    for (let p = 0; p < publishers; p++) {
      expect({ p, got: seen.filter((m) => m.topic === `iw/p${p}`).map((m) => m.n) }).toEqual({ p, got: Array.from({ length: perPublisher }, (_, i) => i) });
    }
    expect(seen).toHaveLength(publishers * perPublisher);
  }, 150000);

  test('a copy queued for one link while another link\'s full queue holds its acknowledgement, then a kill: not queued twice, not lost', async () => {
    // Region kw gets a second link from iw with a tiny queue (whenFull: block) and its direction cut: a copy wanted
    // by both links commits in jw's queue and waits for room in kw's, so it is not acknowledged to the replicant
    // when the sidecar is killed: the resent copy must be skipped for jw and queued for kw.
    const toC = await TcpProxy.start(1);
    const toAfromC = await TcpProxy.start((A.replicant ?? A.core).mqttPort);
    proxies.push(toC, toAfromC);
    const C = new ClusterRegion('kw');
    try {
      await C.start([{ name: 'iw', servers: [toAfromC.address], topics: ['#'] }], { replicant: false });
      toC.setTarget(C.core.mqttPort);
      A.writeLinks([
        { name: 'jw', servers: [proxies[1].address], topics: ['#'] },
        { name: 'kw', servers: [toC.address], topics: ['#'], extra: '    queue: { maxBytes: 4096, whenFull: block }' },
      ]);
      await waitFor(async () => (await A.link('kw')).state === 'connected' && (await C.link('iw')).state === 'connected', 'link iw ↔ kw connected', 30000);
      const subB = track(await B.client({ clientId: 'jw-sub-2', clean: false }));
      const subC = track(await C.client({ clientId: 'kw-sub', clean: false }));
      const seenB: number[] = [];
      const seenC: number[] = [];
      subB.on('message', (_t, payload) => seenB.push(Number(payload.toString().split(' ')[0])));
      subC.on('message', (_t, payload) => seenC.push(Number(payload.toString().split(' ')[0])));
      const jwRoutes = (await A.link('jw')).routesReceived;
      await subB.subscribeAsync('both/#', { qos: 1 });
      await subC.subscribeAsync('both/#', { qos: 1 });
      await waitFor(async () => (await A.link('jw')).routesReceived > jwRoutes && (await A.link('kw')).routesReceived >= 1, 'both routes at the sidecar');
      toC.refuse();
      toC.cut();
      const pub = track(await A.client({ clientId: 'both-pub' }));
      const total = 40;
      // Pipelined: the PUBACKs stop once kw's queue is full; the copies behind it are committed in jw's queue only.
      const publishing = Promise.all(Array.from({ length: total }, (_, i) => pub.publishAsync('both/x', `${i} ${'x'.repeat(400)}`, { qos: 1 })));
      await waitFor(async () => (await A.link('kw')).queue.depth > 0 && (await A.link('jw')).forwarded > 0, 'kw queue filling, jw forwarding');
      await sleep(500);
      await A.killSidecar();
      await sleep(700);
      await A.restartSidecar();
      await waitFor(() => seenB.length >= total, `all ${total} at jw`, 30000).catch((err: Error) => {
        throw new Error(`${err.message}: got ${JSON.stringify(seenB)}`);
      });
      toC.restore();
      await publishing;
      await waitFor(() => seenC.length >= total, `all ${total} at kw`, 30000).catch((err: Error) => {
        throw new Error(`${err.message}: got ${JSON.stringify(seenC)}`);
      });
      await sleep(1500);
      const skipped = (A.sidecar?.logs ?? []).filter((l) => l.includes('resent copy already queued before the restart')).length;
      process.stdout.write(`intake window (two links, one full): resent copies recognised as already queued for jw: ${skipped}\n`);
      expect(skipped).toBeGreaterThan(0);
      expect(seenB).toEqual(Array.from({ length: total }, (_, i) => i));
      expect(seenC).toEqual(Array.from({ length: total }, (_, i) => i));
    } finally {
      toC.restore();
      await C.dispose();
    }
  }, 120000);
});
