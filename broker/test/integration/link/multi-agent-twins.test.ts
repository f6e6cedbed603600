import type { MqttClient } from 'mqtt';
import type { TcpProxy } from '../../harness/tcp-proxy.js';
import { activeAgentFor } from '../../../src/link/region.js';
import { sharedAgentRegions, type ClusterRegion } from './cluster-regions.js';
import { sleep, waitFor } from './regions.js';

/** The sidecar that first queues a copy on this topic (internal: the default tenant's `default/...`) SIGKILLs itself right after. */
const CRASH_TOPIC = 'twin/crash';

/**
 * A link moves while a copy is committed in the dead agent's queue but not acknowledged to the sending node (README
 * "Several agents per region", "An agent dies and stays away beyond the grace"): the node hands the copy over to the
 * new holder, which sends it to the remote; the dead agent, back after the grace, drains the same message as standby.
 * Both copies are twin-marked with the publish's origin identity: the remote delivers it once. The kill lands exactly
 * there through the test hook `MERIDIAN_TEST_AGENT_CRASH_AFTER_QUEUED`. Without the twin marks the remote's clean
 * subscriber gets it twice (different origin agents, different sequences).
 */
describe('a link moves with a copy committed but unacknowledged at the kill: the remote delivers it once', () => {
  let M: ClusterRegion;
  let B: ClusterRegion;
  let C: ClusterRegion;
  const proxies: TcpProxy[] = [];
  const clients: MqttClient[] = [];
  const track = <T extends MqttClient>(c: T): T => { clients.push(c); return c; };
  const agents = ['mz-agent', 'mz-agent-1'];

  beforeAll(async () => {
    ({ M, B, C } = await sharedAgentRegions(proxies));
  }, 90000);
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await Promise.all([M?.dispose(), B?.dispose(), C?.dispose()]);
    for (const p of proxies) await p.close();
  });

  test('the handed-over copy and the dead agent\'s drained entry are twins: one delivery at the remote\'s clean subscriber', async () => {
    const victim = agents.indexOf(activeAgentFor('nb', agents) as string);
    const other = 1 - victim;
    // The holder of nb restarted with the hook (SIGTERM, back within the grace: it keeps nb). The hook only fires on
    // a first copy; the other agent gets the message only handed over, and the victim's next start has no hook.
    await M.restartSidecar(victim, { MERIDIAN_TEST_AGENT_CRASH_AFTER_QUEUED: `default/${CRASH_TOPIC}` });
    await waitFor(async () => (await M.linkOnAgents('nb'))[victim]?.role === 'active' && (await M.linkOnAgents('nb'))[victim]?.state === 'connected', 'nb active and connected again on its holder', 30000);
    const subB = track(await B.client({ clientId: 'b-twin-sub', clean: true }));
    const seen: Array<{ topic: string; payload: string }> = [];
    subB.on('message', (topic, payload) => seen.push({ topic, payload: payload.toString() }));
    const routesAtM = (await M.link('nb')).routesReceived;
    await subB.subscribeAsync('twin/#', { qos: 1 });
    await waitFor(async () => (await M.link('nb')).routesReceived > routesAtM, 'the route for twin/# in mz');
    const pub = track(await M.client({ clientId: 'm-twin-pub' }));
    for (let i = 0; i < 5; i++) await pub.publishAsync('twin/before', String(i), { qos: 1 });
    await waitFor(() => seen.filter((m) => m.topic === 'twin/before').length === 5, 'messages before the kill across');

    const victimExited = new Promise<void>((resolve) => M.sidecars[victim].child.once('exit', () => resolve()));
    const killedAt = Date.now();
    // Acknowledged only once the copy is settled: after the victim's lane expired and the copy was handed over.
    const crashing = pub.publishAsync(CRASH_TOPIC, 'x', { qos: 1 });
    await Promise.race([victimExited, sleep(10000).then(() => {
      throw new Error(`the holder of nb did not crash on the hook: ${JSON.stringify({ seen, victim: M.sidecars[victim].logs.slice(-30) }, null, 1)}`);
    })]);
    const after = (async (): Promise<void> => {
      for (let i = 0; i < 5; i++) await pub.publishAsync('twin/after', String(i), { qos: 1 });
    })();
    await waitFor(async () => (await M.linkOnAgents('nb'))[other]?.role === 'active', 'nb active on the other agent', 20000);
    const movedAt = Date.now();
    await Promise.all([crashing, after]);
    await waitFor(() => seen.some((m) => m.topic === CRASH_TOPIC), 'the handed-over copy at the remote', 20000);
    // Back beyond the grace: standby for nb, drains the entry it had queued before the kill.
    await M.restartSidecar(victim);
    await waitFor(async () => (await M.linkOnAgents('nb'))[victim]?.role === 'standby', 'restarted agent standby for nb', 15000);
    await waitFor(async () => (await M.linkOnAgents('nb')).every((s) => s !== null && s.queue.depth === 0), 'queues for nb drained on both agents', 40000);
    await sleep(2000);

    const count = (topic: string): number => seen.filter((m) => m.topic === topic).length;
    const twinLog = B.core.logs.filter((l) => l.includes('also sent by another agent'));
    const drained = M.sidecars[victim].logs.some((l) => l.includes('standby link drains its queue'));
    process.stdout.write(`multi-agent twins: ${JSON.stringify({ crash: count(CRASH_TOPIC), before: count('twin/before'), after: count('twin/after'), drained, twinLog: twinLog.length, msFromKillToMove: movedAt - killedAt })}\n`);
    // The dead agent really had it queued and drained it after its return (the twin existed).
    expect(drained).toBe(true);
    // The node handed the copy over to the new holder (the other twin).
    expect(M.core.logs.concat(M.replicant?.logs ?? []).some((l) => l.includes('handed over to the agents now holding the link'))).toBe(true);
    expect(count(CRASH_TOPIC)).toBe(1);
    expect(twinLog.length).toBeGreaterThan(0);
    expect(count('twin/before')).toBe(5);
    expect(count('twin/after')).toBe(5);
  }, 120000);
});
