import { rmSync } from 'node:fs';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { TcpProxy } from '../../harness/tcp-proxy.js';
import { ClusterRegion } from './cluster-regions.js';
import { sleep, waitFor } from './regions.js';

/**
 * Regression (e2e drill `lost-volume`): the sidecar agent is killed and comes back with an empty data directory.
 * The copies the region's core held for the killed agent go to its new incarnation, which knows no remote route
 * yet (nothing restored): they used to be acknowledged without being queued. They must wait for the remote's
 * routes and be queued.
 */
describe('sidecar agent back with a wiped store', () => {
  let A: ClusterRegion;
  let B: ClusterRegion;
  const proxies: TcpProxy[] = [];
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    const toB = await TcpProxy.start(1);
    const toA = await TcpProxy.start(1);
    proxies.push(toA, toB);
    A = new ClusterRegion('wiped');
    B = new ClusterRegion('far');
    await A.start([{ name: 'far', servers: [toB.address], topics: ['#'] }], { replicant: false, sidecar: true });
    await B.start([{ name: 'wiped', servers: [toA.address], topics: ['#'] }], { replicant: false });
    toB.setTarget(B.core.mqttPort);
    toA.setTarget(A.core.mqttPort);
    await waitFor(async () => (await A.link('far')).state === 'connected' && (await B.link('wiped')).state === 'connected', 'both links connected', 30000);
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await A?.dispose();
    await B?.dispose();
    for (const p of proxies) await p.close();
  });

  test('the copies held for the killed agent are queued by its new incarnation once the remote bootstrapped it', async () => {
    const sub = await B.client({ clientId: 'far-audit', clean: false });
    clients.push(sub);
    const seen: string[] = [];
    sub.on('message', (_topic, payload) => seen.push(payload.toString()));
    await sub.subscribeAsync('events/#', { qos: 1 });
    await waitFor(async () => (await A.link('far')).routesReceived === 1, 'the audit route visible at the sidecar');
    const pub = await A.client({ clientId: 'wiped-door' });
    clients.push(pub);
    for (let i = 0; i < 10; i++) await pub.publishAsync('events/door', `warm-${i}`, { qos: 1 });
    await waitFor(() => seen.length >= 10, 'warm-up events across');

    await A.killSidecar();
    rmSync(path.join(A.dir, 'agent'), { recursive: true, force: true });
    // Published while the agent is dead: the core holds the copies for it (its routes are still in the table).
    const held = 40;
    const acks = Array.from({ length: held }, (_, i) => pub.publishAsync('events/door', `held-${i}`, { qos: 1 }));
    await sleep(500);
    await A.restartSidecar();
    await Promise.all(acks);
    const missing = (): string[] => Array.from({ length: held }, (_, i) => `held-${i}`).filter((p) => !seen.includes(p));
    await waitFor(() => missing().length === 0, `all ${held} held events at the remote`, 30000).catch((err: Error) => {
      throw new Error(`${err.message}; missing: [${missing().join(',')}]; agent logs:\n${(A.sidecar?.logs ?? []).slice(-25).join('\n')}`);
    });
    const logs = A.sidecar?.logs ?? [];
    expect(logs.some((l) => l.includes('copies wait for the remote routes'))).toBe(true);
    const info = await A.sidecar?.getJson<{ heldForRoutes: number }>('/api/v1/links');
    expect(info?.heldForRoutes).toBeGreaterThan(0);
  });
});
