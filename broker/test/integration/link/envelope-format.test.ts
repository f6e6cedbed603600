import { TcpProxy } from '../../harness/tcp-proxy.js';
import { ClusterRegion } from './cluster-regions.js';
import { waitFor } from './regions.js';

interface FormatInfo { state: string; envelopes: string | null }

/**
 * The capabilities handshake also runs where the receiver is a sidecar: its announcement travels as a regional
 * publish to the node holding the remote agent's subscription. A silent fallback to single envelopes would still
 * deliver, but without store epochs, so it is checked here.
 */
describe('envelope format agreed between a sidecar region and an embedded agent', () => {
  let A: ClusterRegion;
  let B: ClusterRegion;
  const proxies: TcpProxy[] = [];

  beforeAll(async () => {
    const toB = await TcpProxy.start(1);
    const toA = await TcpProxy.start(1);
    proxies.push(toA, toB);
    A = new ClusterRegion('us');
    B = new ClusterRegion('eu');
    await A.start([{ name: 'eu', servers: [toB.address], topics: ['#'] }], { replicant: true, sidecar: true });
    await B.start([{ name: 'us', servers: [toA.address], topics: ['#'] }], { replicant: true });
    toB.setTarget(B.core.mqttPort);
    toA.setTarget((A.replicant ?? A.core).mqttPort);
    await waitFor(async () => (await A.link('eu')).state === 'connected' && (await B.link('us')).state === 'connected', 'both links connected', 30000);
  });
  afterAll(async () => {
    await A?.dispose();
    await B?.dispose();
    for (const p of proxies) await p.close();
  });

  test('both directions use envelope batches (the sidecar both announces and receives capabilities)', async () => {
    await waitFor(async () => {
      const a = (await A.link('eu')) as unknown as FormatInfo;
      const b = (await B.link('us')) as unknown as FormatInfo;
      return a.envelopes !== null && b.envelopes !== null;
    }, 'the envelope format known on both links', 10000);
    expect(((await A.link('eu')) as unknown as FormatInfo).envelopes).toBe('batch');
    expect(((await B.link('us')) as unknown as FormatInfo).envelopes).toBe('batch');
  });
});
