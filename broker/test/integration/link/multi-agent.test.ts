import type { MqttClient } from 'mqtt';
import type { TcpProxy } from '../../harness/tcp-proxy.js';
import { activeAgentFor } from '../../../src/link/region.js';
import { sharedAgentRegions, type AgentLinkInfo, type ClusterRegion } from './cluster-regions.js';
import { sleep, waitFor } from './regions.js';

interface Seen { topic: string; payload: string }

function record(client: MqttClient): Seen[] {
  const seen: Seen[] = [];
  client.on('message', (topic, payload) => seen.push({ topic, payload: payload.toString() }));
  return seen;
}

/** The agents' grace before a link moves: 2/3 of the region's 9 s route TTL (the `--move-grace` default). */
const GRACE_MS = 6000;

const payloadsOn = (seen: Seen[], topic: string): number[] => seen.filter((m) => m.topic === topic).map((m) => Number(m.payload));
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** What a subscriber got on one topic of a stream of `total`: missing numbers, repeats, and whether first deliveries were in order. */
function audit(seen: Seen[], topic: string, total: number): { missing: number[]; duplicates: number; inOrder: boolean } {
  const got = payloadsOn(seen, topic);
  const first = got.filter((p, i) => got.indexOf(p) === i);
  return {
    missing: range(total).filter((n) => !got.includes(n)),
    duplicates: got.length - first.length,
    inOrder: first.every((p, i) => i === 0 || first[i - 1] < p),
  };
}

/**
 * Region `mz` is a cluster of one core, one replicant and TWO sidecar link agents sharing one links file with two
 * links (`nb`, `nc`); regions `nb` and `nc` are single-core clusters with the agent embedded. The names are chosen
 * so that rendezvous hashing gives each of mz's agents one link (checked below).
 */
describe('several link agents in one region: one active agent per link', () => {
  let M: ClusterRegion;
  let B: ClusterRegion;
  let C: ClusterRegion;
  const proxies: TcpProxy[] = [];
  const clients: MqttClient[] = [];
  const track = <T extends MqttClient>(c: T): T => { clients.push(c); return c; };
  const agents = ['mz-agent', 'mz-agent-1'];
  const activeFor = (link: string): number => agents.indexOf(activeAgentFor(link, agents) as string);
  const diagnose = async (): Promise<string> => JSON.stringify({
    nb: await M.linkOnAgents('nb'), nc: await M.linkOnAgents('nc'), B: await B.link('mz'), C: await C.link('mz'),
    logs: M.sidecars.map((s) => s.logs.filter((l) => /link|route/.test(l)).slice(-25)),
    cLogs: C.core.logs.filter((l) => /"component":"link"/.test(l)).slice(-25),
    mCore: M.core.logs.filter((l) => /warn|error|LINK/.test(l)).slice(-15),
  }, null, 1);

  beforeAll(async () => {
    ({ M, B, C } = await sharedAgentRegions(proxies));
  }, 90000);
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await Promise.all([M?.dispose(), B?.dispose(), C?.dispose()]);
    for (const p of proxies) await p.close();
  });

  test('each link is served by exactly one agent (the rendezvous winner); the standby one has no connection for it', async () => {
    expect(activeFor('nb')).not.toBe(activeFor('nc'));
    for (const link of ['nb', 'nc']) {
      const statuses = await M.linkOnAgents(link);
      expect(statuses.map((s) => s?.role)).toEqual(agents.map((_, i) => (i === activeFor(link) ? 'active' : 'standby')));
      const standby = statuses[1 - activeFor(link)] as AgentLinkInfo;
      expect(standby.server).toBeNull();
      expect(standby.state).not.toBe('connected');
    }
    const described = await M.sidecars[0].getJson<{ agents: string[] }>('/api/v1/links');
    expect(described.agents).toEqual(agents);
  });

  test('traffic both ways on both links: exactly once, in per-publisher order, nothing crosses twice', async () => {
    const subM = track(await M.client({ clientId: 'm-sub' }));
    const subB = track(await B.client({ clientId: 'b-sub' }));
    const subC = track(await C.client({ clientId: 'c-sub' }));
    const [seenM, seenB, seenC] = [record(subM), record(subB), record(subC)];
    await subM.subscribeAsync(['from/nb/#', 'from/nc/#'], { qos: 2 });
    await subB.subscribeAsync('to/nb/#', { qos: 2 });
    await subC.subscribeAsync('to/nc/#', { qos: 2 });
    await waitFor(async () => (await B.link('mz')).routesReceived >= 2 && (await C.link('mz')).routesReceived >= 2
      && (await M.link('nb')).routesReceived >= 1 && (await M.link('nc')).routesReceived >= 1, 'routes across every link').catch(async (err: Error) => {
      throw new Error(`${err.message}: ${await diagnose()}`);
    });
    const before = { nb: await M.linkOnAgents('nb'), nc: await M.linkOnAgents('nc'), B: await B.link('mz'), C: await C.link('mz') };
    const total = 60;
    const stream = async (client: MqttClient, topic: string, qos: 1 | 2): Promise<void> => {
      for (let i = 0; i < total; i++) await client.publishAsync(topic, String(i), { qos });
    };
    const pubM1 = track(await M.client({ clientId: 'm-pub-1' }));
    const pubM2 = track(await M.client({ clientId: 'm-pub-2' }));
    const pubB = track(await B.client({ clientId: 'b-pub' }));
    const pubC = track(await C.client({ clientId: 'c-pub' }));
    await Promise.all([
      stream(pubM1, 'to/nb/q1', 1), stream(pubM2, 'to/nb/q2', 2), stream(pubM1, 'to/nc/q1', 1), stream(pubM2, 'to/nc/q2', 2),
      stream(pubB, 'from/nb/q1', 1), stream(pubC, 'from/nc/q2', 2),
    ]);
    await waitFor(() => seenM.length >= 2 * total && seenB.length >= 2 * total && seenC.length >= 2 * total, 'every stream delivered', 30000);
    await sleep(1000);
    for (const [seen, topic] of [[seenB, 'to/nb/q1'], [seenB, 'to/nb/q2'], [seenC, 'to/nc/q1'], [seenC, 'to/nc/q2'], [seenM, 'from/nb/q1'], [seenM, 'from/nc/q2']] as const) {
      expect({ topic, got: payloadsOn(seen, topic) }).toEqual({ topic, got: range(total) });
    }
    // Forwarded counts: each link's messages went out through its active agent only, once.
    for (const link of ['nb', 'nc'] as const) {
      const now = await M.linkOnAgents(link);
      const active = activeFor(link);
      expect((now[active] as AgentLinkInfo).forwarded - (before[link][active] as AgentLinkInfo).forwarded).toBe(2 * total);
      expect((now[active] as AgentLinkInfo).received - (before[link][active] as AgentLinkInfo).received).toBe(total);
      expect((now[1 - active] as AgentLinkInfo).forwarded).toBe((before[link][1 - active] as AgentLinkInfo).forwarded);
      expect((now[1 - active] as AgentLinkInfo).received).toBe((before[link][1 - active] as AgentLinkInfo).received);
    }
    expect((await B.link('mz')).received - before.B.received).toBe(2 * total);
    expect((await C.link('mz')).received - before.C.received).toBe(2 * total);
    expect((await B.link('mz')).forwarded - before.B.forwarded).toBe(total);
    // Twin marks on the common path (README "Several agents per region", rule (2)): printed, with the remote's drops.
    const marks = Object.fromEntries(await Promise.all((['nb', 'nc'] as const).map(async (link) => {
      const now = (await M.linkOnAgents(link))[activeFor(link)] as AgentLinkInfo;
      return [link, { marked: now.twinsMarked - (before[link][activeFor(link)] as AgentLinkInfo).twinsMarked, of: 2 * total }] as const;
    })));
    process.stdout.write(`multi-agent steady state twin marks: ${JSON.stringify({ ...marks, droppedAtB: (await B.link('mz')).twinsDropped - before.B.twinsDropped })}\n`);
    expect((await B.link('mz')).twinsDropped).toBe(before.B.twinsDropped);
  }, 60000);

  test('kill -9 of the agent serving nb during QoS 2 and QoS 1 streams both ways, restarted within the grace: nb never moves; every message once, in per-publisher order', async () => {
    const victim = activeFor('nb');
    const other = 1 - victim;
    const subM = track(await M.client({ clientId: 'm-gsub', clean: false }));
    const subB = track(await B.client({ clientId: 'b-gsub', clean: false }));
    const [seenM, seenB] = [record(subM), record(subB)];
    const routesAtB = (await B.link('mz')).routesReceived;
    const routesAtM = (await M.link('nb')).routesReceived;
    await subM.subscribeAsync('grace/nb/#', { qos: 2 });
    await subB.subscribeAsync('grace/mz/#', { qos: 2 });
    await waitFor(async () => (await B.link('mz')).routesReceived > routesAtB && (await M.link('nb')).routesReceived > routesAtM, 'stream routes across');
    const total = 200;
    const stream = async (client: MqttClient, topic: string, qos: 1 | 2): Promise<void> => {
      for (let i = 0; i < total; i++) {
        await client.publishAsync(topic, String(i), { qos });
        await sleep(10);
      }
    };
    const pubs = await Promise.all(['m-gpub-1', 'm-gpub-2'].map((id) => M.client({ clientId: id }).then(track)));
    const pubsB = await Promise.all(['b-gpub-1', 'b-gpub-2'].map((id) => B.client({ clientId: id }).then(track)));
    const topicsToB = ['grace/mz/q2', 'grace/mz/q1'];
    const topicsToM = ['grace/nb/q2', 'grace/nb/q1'];
    const publishing = Promise.all([stream(pubs[0], topicsToB[0], 2), stream(pubs[1], topicsToB[1], 1), stream(pubsB[0], topicsToM[0], 2), stream(pubsB[1], topicsToM[1], 1)]);
    await waitFor(() => seenM.length >= 40 && seenB.length >= 40, 'streams under way');
    const killedAt = Date.now();
    await M.killSidecar(victim);
    await M.restartSidecar(victim);
    const restartedAt = Date.now();
    await publishing;
    const done = (): boolean => topicsToB.every((t) => audit(seenB, t, total).missing.length === 0) && topicsToM.every((t) => audit(seenM, t, total).missing.length === 0);
    await waitFor(done, 'every message delivered', 30000).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify([...topicsToB.map((t) => audit(seenB, t, total)), ...topicsToM.map((t) => audit(seenM, t, total))])}\n${M.sidecars.map((sc) => sc.logs.filter((l) => /"level":(40|50)|link agent|holder|grace/.test(l)).slice(-20).join('\n')).join('\n---\n')}`);
    });
    await sleep(1500);
    const results: Record<string, ReturnType<typeof audit>> = Object.fromEntries([...topicsToB.map((t) => [t, audit(seenB, t, total)] as const), ...topicsToM.map((t) => [t, audit(seenM, t, total)] as const)]);
    process.stdout.write(`multi-agent restart within the grace: ${JSON.stringify({ results, msFromKillToRestarted: restartedAt - killedAt })}\n`);
    for (const [topic, result] of Object.entries(results)) expect({ topic, ...result }).toEqual({ topic, missing: [], duplicates: 0, inOrder: true });
    // The other agent never took nb (whether it saw the holder away depends on how fast the restart was: 0.4 s
    // can fall between two of its checks); the restarted agent resumed it.
    const otherLogs = M.sidecars[other].logs.filter((l) => l.includes('"link":"nb"') && Date.parse((JSON.parse(l) as { time: string }).time) >= killedAt);
    expect(otherLogs.filter((l) => l.includes('link agent active for the link'))).toEqual([]);
    expect(M.sidecars[victim].logs.some((l) => l.includes('back within the grace'))).toBe(true);
    expect((await M.linkOnAgents('nb')).map((s) => s?.role)).toEqual(agents.map((_, i) => (i === victim ? 'active' : 'standby')));
    await waitFor(async () => (await M.linkOnAgents('nb')).every((s) => s !== null && s.queue.depth === 0), 'queues for nb drained', 15000);
  }, 60000);

  test('kill -9 of the agent serving nb mid-stream (QoS 1 and 2, both ways), away beyond the grace: nb moves to the other agent after the grace and stays there after the restart; nothing lost, region → remote exactly once, repeats remote → region only of what was in flight at the kill', async () => {
    const victim = activeFor('nb');
    let killedAt = 0;
    let movedAt = 0;
    let restartedAt = 0;
    const other = 1 - victim;
    const subM = track(await M.client({ clientId: 'm-ksub', clean: false }));
    const subB = track(await B.client({ clientId: 'b-ksub', clean: false }));
    const [seenM, seenB] = [record(subM), record(subB)];
    const routesAtB = (await B.link('mz')).routesReceived;
    const routesAtM = (await M.link('nb')).routesReceived;
    await subM.subscribeAsync('kill/nb/#', { qos: 2 });
    await subB.subscribeAsync('kill/mz/#', { qos: 2 });
    await waitFor(async () => (await B.link('mz')).routesReceived > routesAtB && (await M.link('nb')).routesReceived > routesAtM, 'stream routes across');
    const total = 250;
    let stop = false;
    const publishedAt = new Map<string, number[]>();
    const stream = async (client: MqttClient, topic: string, qos: 1 | 2): Promise<void> => {
      const times: number[] = [];
      publishedAt.set(topic, times);
      for (let i = 0; i < total && !stop; i++) {
        times.push(Date.now());
        await client.publishAsync(topic, String(i), { qos });
        await sleep(15);
      }
    };
    const pubs = await Promise.all(['m-kpub-1', 'm-kpub-2'].map((id) => M.client({ clientId: id }).then(track)));
    const pubsB = await Promise.all(['b-kpub-1', 'b-kpub-2'].map((id) => B.client({ clientId: id }).then(track)));
    const publishing = Promise.all([
      stream(pubs[0], 'kill/mz/q1', 1), stream(pubs[1], 'kill/mz/q2', 2), stream(pubsB[0], 'kill/nb/q1', 1), stream(pubsB[1], 'kill/nb/q2', 2),
    ]);
    try {
      await waitFor(() => seenM.length >= 40 && seenB.length >= 40, 'streams under way');
      killedAt = Date.now();
      await M.killSidecar(victim);
      await waitFor(async () => (await M.linkOnAgents('nb'))[other]?.role === 'active', 'nb active on the other agent', 15000);
      movedAt = Date.now();
      // The link works through the other agent: both directions make progress while the victim is down.
      const [m0, b0] = [seenM.length, seenB.length];
      // (A direction whose publishers already finished — the remote's publish to its own agent, not waiting for mz — is done.)
      const progressed = (seen: Seen[], before: number): boolean => seen.length >= before + 30 || new Set(seen.map((m) => `${m.topic} ${m.payload}`)).size >= 2 * total;
      await waitFor(() => progressed(seenM, m0) && progressed(seenB, b0), 'streams continue through the other agent', 30000).catch(async (err: Error) => {
        throw new Error(`${err.message}: seenM ${seenM.length - m0}, seenB ${seenB.length - b0}\n${await diagnose()}\n${JSON.stringify({
          replicant: M.replicant?.logs.filter((l) => /"level":(40|50)|handed|link agent/.test(l)).slice(-20), core: M.core.logs.filter((l) => /"level":(40|50)|handed|link agent/.test(l)).slice(-20),
        }, null, 1)}`);
      });
      restartedAt = Date.now();
      // Away beyond the grace: it comes back as standby for nb and joins only once its previous lane expired.
      await M.restartSidecar(victim);
      await waitFor(async () => (await M.linkOnAgents('nb'))[victim]?.role === 'standby', 'restarted agent standby for nb', 15000);
      await publishing;
    } finally {
      stop = true;
    }
    await waitFor(() => ['kill/mz/q1', 'kill/mz/q2'].every((t) => audit(seenB, t, total).missing.length === 0)
      && ['kill/nb/q1', 'kill/nb/q2'].every((t) => audit(seenM, t, total).missing.length === 0), 'every message delivered at least once', 60000)
      .catch((err: Error) => {
        const report = [...['kill/mz/q1', 'kill/mz/q2'].map((t) => [t, audit(seenB, t, total)]), ...['kill/nb/q1', 'kill/nb/q2'].map((t) => [t, audit(seenM, t, total)])];
        const interesting = (logs: string[]): string[] => logs.filter((l) => /"level":(40|50)|handed|link agent (active|standby)|released|drain|not taken/.test(l)).slice(-40);
        throw new Error(`${err.message}: ${JSON.stringify(report)}\n${JSON.stringify({
          sidecars: M.sidecars.map((sc) => interesting(sc.logs)), replicant: interesting(M.replicant?.logs ?? []), core: interesting(M.core.logs),
        }, null, 1)}`);
      });
    await sleep(2000);
    /** Numbers delivered more than once on `topic`, with when each was published relative to the kill and the settle. */
    const repeated = (seen: Seen[], topic: string): Array<{ n: number; at: number }> => {
      const got = payloadsOn(seen, topic);
      const times = publishedAt.get(topic) ?? [];
      return [...new Set(got.filter((p, i) => got.indexOf(p) !== i))].map((n) => ({ n, at: times[n] }));
    };
    const results = {
      toB: ['kill/mz/q1', 'kill/mz/q2'].map((t) => ({ t, ...audit(seenB, t, total), repeated: repeated(seenB, t).map((r) => ({ n: r.n, msBeforeKill: killedAt - r.at })) })),
      toM: ['kill/nb/q1', 'kill/nb/q2'].map((t) => ({ t, ...audit(seenM, t, total), repeated: repeated(seenM, t).map((r) => r.n) })),
      msFromKillToMove: movedAt - killedAt, msFromKillToRestart: restartedAt - killedAt,
      // Carriers at nb in which twins (handed-over copy / drained entry of one message) were recognised.
      twinCarriersAtB: B.core.logs.filter((l) => l.includes('also sent by another agent')).length,
      twinsMarked: (await M.linkOnAgents('nb')).map((l) => l?.twinsMarked), twinsDroppedAtB: (await B.link('mz')).twinsDropped,
    };
    process.stdout.write(`multi-agent kill beyond the grace: ${JSON.stringify(results)}\n`);
    // The link stayed where it was for the grace (6 s: 2/3 of the 9 s route TTL), then moved.
    expect(movedAt - killedAt).toBeGreaterThanOrEqual(GRACE_MS - 500);
    // The victim knew it had been away beyond the grace: standby, joined only after its previous lane had expired.
    expect(M.sidecars[victim].logs.some((l) => l.includes('away beyond the grace'))).toBe(true);
    // It held the dead agent's remote routes at once (adopted from the regional table), not only after nb's bootstrap.
    expect(M.sidecars[other].logs.some((l) => l.includes('previous holder taken over') && l.includes('"link":"nb"'))).toBe(true);
    // The guarantee across a move (README "Several agents per region"): nothing lost. Region → remote: every message
    // once — a copy in flight at the kill, handed over to the new holder and drained by the returning agent, is a twin
    // the remote delivers once (multi-agent-twins.test.ts makes that kill deterministic). Remote → region: a message
    // may be delivered twice only if it was in flight at the kill (published up to 1 s before it). No hand-back.
    for (const [seen, topic] of [[seenB, 'kill/mz/q1'], [seenB, 'kill/mz/q2'], [seenM, 'kill/nb/q1'], [seenM, 'kill/nb/q2']] as const) {
      expect(audit(seen, topic, total).missing).toEqual([]);
      const outside = repeated(seen, topic).filter((r) => !(r.at >= killedAt - 1000 && r.at <= killedAt + 500));
      expect({ topic, outside }).toEqual({ topic, outside: [] });
    }
    for (const topic of ['kill/mz/q1', 'kill/mz/q2']) expect({ topic, repeated: repeated(seenB, topic) }).toEqual({ topic, repeated: [] });
    expect((await M.linkOnAgents('nb')).map((s) => s?.role)).toEqual(agents.map((_, i) => (i === other ? 'active' : 'standby')));
    // Both agents drained: nothing left queued for nb anywhere.
    await waitFor(async () => (await M.linkOnAgents('nb')).every((s) => s !== null && s.queue.depth === 0), 'queues for nb drained on both agents', 30000);
    // nc was not disturbed: still on its agent.
    expect((await M.linkOnAgents('nc'))[activeFor('nc')]?.role).toBe('active');
  }, 180000);
});
