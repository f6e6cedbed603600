import type { MqttClient } from 'mqtt';
import type { TcpProxy } from '../../harness/tcp-proxy.js';
import { activeAgentFor } from '../../../src/link/region.js';
import { sharedAgentRegions, type ClusterRegion } from './cluster-regions.js';
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
    ({ M, B, C } = await sharedAgentRegions(proxies));
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
