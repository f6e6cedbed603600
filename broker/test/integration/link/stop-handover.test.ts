import type { MqttClient } from 'mqtt';
import { TcpProxy } from '../../harness/tcp-proxy.js';
import { ClusterRegion } from './cluster-regions.js';
import { connectClient, sleep, waitFor } from './regions.js';

/**
 * Regression (e2e drill `us-west-down`, cause 1): the sidecar agent stops while its copies of linked messages to a
 * replicant are in flight (the replicant is frozen with SIGSTOP, so they stay unacknowledged). Those copies fail
 * with `link-closed` when the agent's transport closes; they used to count as delivered ("the node is gone"), the
 * carrier's dedup mark was stored and it was acknowledged — lost for the replicant's persistent session.
 */
describe('sidecar stop with copies in flight to a replicant', () => {
  let A: ClusterRegion;
  let B: ClusterRegion;
  const proxies: TcpProxy[] = [];
  const clients: MqttClient[] = [];
  let frozen = false;
  const thaw = (): void => {
    if (frozen && A.replicant) process.kill(A.replicant.pid, 'SIGCONT');
    frozen = false;
  };

  beforeAll(async () => {
    const toB = await TcpProxy.start(1);
    const toA = await TcpProxy.start(1);
    proxies.push(toA, toB);
    A = new ClusterRegion('west');
    B = new ClusterRegion('east');
    await A.start([{ name: 'east', servers: [toB.address], topics: ['#'] }], { replicant: true, sidecar: true });
    await B.start([{ name: 'west', servers: [toA.address], topics: ['#'] }], { replicant: false });
    toB.setTarget(B.core.mqttPort);
    // B's agent publishes its carriers on A's core (as on core-0 in the drill), which forwards them to the sidecar.
    toA.setTarget(A.core.mqttPort);
    await waitFor(async () => (await A.link('east')).state === 'connected' && (await B.link('west')).state === 'connected', 'both links connected', 30000);
  });
  afterAll(async () => {
    thaw();
    for (const c of clients) c.end(true);
    await A?.dispose();
    await B?.dispose();
    for (const p of proxies) await p.close();
  });

  test('nothing is lost for the persistent session: the carriers not handed over are resent by the remote', async () => {
    const replicant = A.replicant;
    if (!replicant) throw new Error('region west has no replicant');
    const sub = await connectClient(replicant.mqttPort, { clientId: 'west-audit', clean: false, keepalive: 120 });
    clients.push(sub);
    const seen: string[] = [];
    sub.on('message', (_topic, payload) => seen.push(payload.toString()));
    await sub.subscribeAsync('drill/#', { qos: 1 });
    await waitFor(async () => (await B.link('west')).routesReceived === 1, 'the audit route visible in east');
    const pub = await B.client({ clientId: 'east-door' });
    clients.push(pub);
    const total = 120;
    const publishing = (async (): Promise<void> => {
      for (let i = 0; i < total; i++) {
        await pub.publishAsync('drill/door', String(i), { qos: 1 });
        await sleep(15);
      }
    })();
    await waitFor(() => seen.length >= 20, 'stream under way');
    process.kill(replicant.pid, 'SIGSTOP');
    frozen = true;
    await sleep(800); // more carriers reach the sidecar, whose copies to the frozen replicant stay unacknowledged
    const stopped = A.sidecar;
    await A.restartSidecar(); // SIGTERM: the agent stops with those copies in flight, then starts again
    thaw();
    await publishing;
    const missing = (): number[] => Array.from({ length: total }, (_, i) => i).filter((i) => !seen.includes(String(i)));
    await waitFor(() => missing().length === 0, `all ${total} events at the persistent session`, 30000).catch((err: Error) => {
      throw new Error(`${err.message}; missing: [${missing().join(',')}]`);
    });
    const logs = stopped?.logs ?? [];
    // The scenario happened: the stopping agent left copies unacknowledged, it stopped gracefully, and it did not
    // treat any copy as delivered to a gone node.
    expect(logs.some((l) => l.includes('left unacknowledged'))).toBe(true);
    expect(logs.some((l) => l.includes('"link agent stopped"'))).toBe(true);
    expect(logs.filter((l) => l.includes('message not handed over: the node left'))).toEqual([]);
  });
});
