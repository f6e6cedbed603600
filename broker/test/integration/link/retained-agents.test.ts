import type { MqttClient } from 'mqtt';
import { TcpProxy } from '../../harness/tcp-proxy.js';
import { activeAgentFor } from '../../../src/link/region.js';
import { ClusterRegion } from './cluster-regions.js';
import { sleep, waitFor } from './regions.js';

interface RetainedSyncInfo { sent: number; skippedLinked: number; linkedTopics: number }

const key = (topic: string, payload: Buffer): string => `${topic}=${payload.toString()}`;

/**
 * Region `mz` has two sidecar agents, one active per link (`nb`, `nc`: the names of multi-agent.test.ts, which
 * rendezvous hashing splits). A retained message that came over `nb` is stored on mz's nodes by one agent; the
 * other agent, active for `nc`, must never send it onwards to `nc` — also after a restart, when its copy of the
 * region's retained messages (refilled from a core) holds it. It knows because the first agent told it the origin.
 */
describe('retained messages with several sidecar agents: a linked one is never sent onwards', () => {
  let M: ClusterRegion;
  let B: ClusterRegion;
  let C: ClusterRegion;
  const proxies: TcpProxy[] = [];
  const clients: MqttClient[] = [];
  const track = <T extends MqttClient>(c: T): T => { clients.push(c); return c; };
  const agents = ['mz-agent', 'mz-agent-1'];
  const retainedOn = async (i: number): Promise<RetainedSyncInfo> =>
    ((await M.sidecars[i].getJson<{ retainedSync: RetainedSyncInfo }>('/api/v1/links')).retainedSync);

  beforeAll(async () => {
    const [toB, toC, toMfromB, toMfromC] = await Promise.all([TcpProxy.start(1), TcpProxy.start(1), TcpProxy.start(1), TcpProxy.start(1)]);
    proxies.push(toB, toC, toMfromB, toMfromC);
    M = new ClusterRegion('mz');
    B = new ClusterRegion('nb');
    C = new ClusterRegion('nc');
    await M.start([{ name: 'nb', servers: [toB.address], topics: ['#'] }, { name: 'nc', servers: [toC.address], topics: ['#'] }],
      { replicant: true, sidecars: 2, routeTtl: 9 });
    await B.start([{ name: 'mz', servers: [toMfromB.address], topics: ['#'] }], { replicant: false });
    await C.start([{ name: 'mz', servers: [toMfromC.address], topics: ['#'] }], { replicant: false });
    toB.setTarget(B.core.mqttPort);
    toC.setTarget(C.core.mqttPort);
    toMfromB.setTarget((M.replicant ?? M.core).mqttPort);
    toMfromC.setTarget(M.core.mqttPort);
    await waitFor(async () => (await M.link('nb')).state === 'connected' && (await M.link('nc')).state === 'connected'
      && (await B.link('mz')).state === 'connected' && (await C.link('mz')).state === 'connected', 'all links connected', 40000);
  }, 90000);
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await Promise.all([M?.dispose(), B?.dispose(), C?.dispose()]);
    for (const p of proxies) await p.close();
  });

  test('nb\'s retained message in mz is not synced to nc, before and after a kill -9 of nc\'s agent', async () => {
    const forNb = agents.indexOf(activeAgentFor('nb', agents) as string);
    const forNc = agents.indexOf(activeAgentFor('nc', agents) as string);
    expect(forNb).not.toBe(forNc);
    await track(await B.client({ clientId: 'nb-ret' })).publishAsync('r/nb', 'from nb', { qos: 1, retain: true });
    await track(await M.client({ clientId: 'mz-ret' })).publishAsync('r/mz', 'from mz', { qos: 1, retain: true });
    const mzSub = track(await M.client({ clientId: 'mz-sub' }));
    const seenMz: string[] = [];
    mzSub.on('message', (topic, payload) => seenMz.push(key(topic, payload)));
    await mzSub.subscribeAsync('r/#', { qos: 1 });
    await waitFor(() => seenMz.includes('r/nb=from nb'), 'nb\'s retained message in mz');
    // nb's agent recorded it and told the other agent.
    await waitFor(async () => (await retainedOn(forNc)).linkedTopics === 1, 'the origin at nc\'s agent');

    await M.killSidecar(forNc);
    await M.restartSidecar(forNc);
    await waitFor(async () => (await M.linkOnAgents('nc'))[forNc]?.state === 'connected', 'nc\'s agent back and connected', 30000);
    expect((await retainedOn(forNc)).linkedTopics).toBe(1);

    const ncSub = track(await C.client({ clientId: 'nc-sub' }));
    const seenNc: string[] = [];
    ncSub.on('message', (topic, payload) => seenNc.push(key(topic, payload)));
    await ncSub.subscribeAsync('r/#', { qos: 1 });
    await waitFor(() => seenNc.includes('r/mz=from mz'), 'mz\'s own retained message in nc', 20000);
    await sleep(1500);
    expect(seenNc).toEqual(['r/mz=from mz']);
    const sync = await retainedOn(forNc);
    expect(sync.skippedLinked).toBe(1);
    expect(sync.sent).toBe(1);
  }, 120000);
});
