import type { MqttClient } from 'mqtt';
import type { BrokerProcess } from '../../harness/broker-process.js';
import { scrapeMetric } from '../../harness/metrics.js';
import { TcpProxy } from '../../harness/tcp-proxy.js';
import { ClusterRegion, type AgentLinkInfo } from './cluster-regions.js';
import { connectClient, sleep, waitFor } from './regions.js';

/**
 * Two embedded agents in one region: region `ea` is a core and a replicant, both started with `--links` and the same
 * links file (link to `eb`); the core starts first. Only one node may serve the link (link README, "Several agents
 * per region"): the replicant must yield it (never dial, report `misconfigured`), every message of `ea` must cross
 * once; when the core is killed the replicant takes the link over after the core's lane expired (route TTL), and the
 * core, started again, yields to it and drains what it had queued.
 */
interface Seen { topic: string; payload: string; at: number }

const ROUTE_TTL_S = 6;
const WINDOW = 5; // publishes outstanding at once per publisher
const PACE_MS = 20;

function record(client: MqttClient): Seen[] {
  const seen: Seen[] = [];
  client.on('message', (topic, payload) => seen.push({ topic, payload: payload.toString(), at: Date.now() }));
  return seen;
}

/** What a subscriber got of one stream of `total`: lost numbers, repeated deliveries, first deliveries out of publish order. */
function audit(seen: Seen[], topic: string, total: number): { lost: number[]; duplicates: number[]; outOfOrder: number } {
  const got = seen.filter((m) => m.topic === topic).map((m) => Number(m.payload));
  const firsts = got.filter((p, i) => got.indexOf(p) === i);
  return {
    lost: Array.from({ length: total }, (_, i) => i).filter((n) => !firsts.includes(n)),
    duplicates: got.filter((p, i) => got.indexOf(p) !== i),
    outOfOrder: firsts.filter((p, i) => i > 0 && p < firsts[i - 1]).length,
  };
}

/** Publishes 0..total-1 on `topic`, WINDOW at a time, each slot pausing PACE_MS after its acknowledgement. */
function stream(publisher: MqttClient, topic: string, qos: 1 | 2, total: number): Promise<void> {
  let next = 0;
  return Promise.all(Array.from({ length: WINDOW }, async () => {
    while (next < total) {
      await publisher.publishAsync(topic, String(next++), { qos });
      await sleep(PACE_MS);
    }
  })).then(() => undefined);
}

async function linkOn(node: BrokerProcess, name: string): Promise<AgentLinkInfo & { connectedSince: string | null }> {
  const { body } = await node.getJson<{ links: Array<AgentLinkInfo & { connectedSince: string | null }> }>('/api/v1/links');
  const found = body.links.find((l) => l.name === name);
  if (!found) throw new Error(`${name} not listed`);
  return found;
}

const conflictMessage = (other: string): string =>
  `link 'eb' is also served by ${other} in region ea: run the embedded agent on one node only, or use link-agent sidecars`;
const conflictLogs = (node: BrokerProcess): string[] => node.logs.filter((l) => l.includes('"level":50') && l.includes('is also served by'));

describe('two nodes of a region run the embedded link agent for the same link', () => {
  let A: ClusterRegion;
  let B: ClusterRegion;
  let toB: TcpProxy;
  const clients: MqttClient[] = [];
  const track = <T extends MqttClient>(c: T): T => { clients.push(c); return c; };
  let subB: MqttClient;
  let seenB: Seen[];
  let publisher: MqttClient;

  beforeAll(async () => {
    toB = await TcpProxy.start(1);
    A = new ClusterRegion('ea');
    B = new ClusterRegion('eb');
    await A.start([{ name: 'eb', servers: [toB.address], topics: ['#'] }], { replicant: true, replicantLinks: true, routeTtl: ROUTE_TTL_S });
    const replicant = A.replicant as BrokerProcess;
    // eb's agent tries ea's replicant first: the node that yields must send it on to the core.
    await B.start([{ name: 'ea', servers: [`127.0.0.1:${replicant.mqttPort}`, `127.0.0.1:${A.core.mqttPort}`], topics: ['#'] }], { replicant: false, routeTtl: ROUTE_TTL_S });
    toB.setTarget(B.core.mqttPort);
    await waitFor(async () => (await linkOn(A.core, 'eb')).state === 'connected' && (await B.link('ea')).state === 'connected', 'ea-core ↔ eb connected', 40000);
    const session = (clientId: string) => ({ clientId, clean: false, reconnectPeriod: 250 });
    subB = track(await connectClient(B.core.mqttPort, session('eb-sub')));
    seenB = record(subB);
    await subB.subscribeAsync('s/#', { qos: 2 });
    await waitFor(async () => (await linkOn(A.core, 'eb')).routesReceived >= 1, 'eb\'s route at ea\'s core');
    publisher = track(await connectClient(replicant.mqttPort, session('ea-pub')));
  }, 90000);
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await A?.dispose();
    await B?.dispose();
    await toB?.close();
  });

  test('the node started later yields: never dials, reports misconfigured naming the keeper; QoS 1/2 streams cross exactly once, in order', async () => {
    const replicant = A.replicant as BrokerProcess;
    const yielded = await linkOn(replicant, 'eb');
    expect({ state: yielded.state, lastError: yielded.lastError, role: yielded.role })
      .toEqual({ state: 'misconfigured', lastError: conflictMessage('ea-core'), role: 'standby' });
    expect(await scrapeMetric(replicant, 'meridian_link_state', { link: 'eb', state: 'misconfigured' })).toBe(1);
    expect((await linkOn(A.core, 'eb')).state).toBe('connected');

    const total = 200;
    await Promise.all([stream(publisher, 's/steady/q2', 2, total), stream(publisher, 's/steady/q1', 1, total)]);
    const allThere = (): boolean => ['s/steady/q2', 's/steady/q1'].every((t) => audit(seenB, t, total).lost.length === 0);
    await waitFor(allThere, 'both steady streams at eb', 30000);
    await sleep(1000); // a late duplicate would show now
    for (const topic of ['s/steady/q2', 's/steady/q1']) {
      const r = audit(seenB, topic, total);
      expect({ topic, lost: r.lost, duplicates: r.duplicates, outOfOrder: r.outOfOrder }).toEqual({ topic, lost: [], duplicates: [], outOfOrder: 0 });
    }
    // The replicant never dialed eb nor queued anything; the error was logged once; eb's agent, sent away by the
    // replicant, talks to the core.
    const after = await linkOn(replicant, 'eb');
    expect({ forwarded: after.forwarded, depth: after.queue.depth, connectedSince: after.connectedSince }).toEqual({ forwarded: 0, depth: 0, connectedSince: null });
    expect(replicant.logs.filter((l) => l.includes('link connected; route sync handshake'))).toEqual([]);
    expect(conflictLogs(replicant)).toHaveLength(1);
    expect(conflictLogs(A.core)).toHaveLength(0);
    expect((await linkOn(A.core, 'eb')).forwarded).toBeGreaterThanOrEqual(2 * total);
  }, 90000);

  test('kill -9 of the keeper: the other node takes the link over within the route TTL; the killed node, back, yields and drains', async () => {
    const replicant = A.replicant as BrokerProcess;
    const total = 400;
    const topics = ['s/move/q2', 's/move/q1'];
    const publishing = Promise.all([stream(publisher, topics[0], 2, total), stream(publisher, topics[1], 1, total)]);
    await waitFor(() => seenB.filter((m) => m.topic.startsWith('s/move/')).length >= 100, 'streams under way', 30000);
    const killedAt = Date.now();
    const deliveredAtKill = seenB.filter((m) => m.topic.startsWith('s/move/')).length;
    await A.core.kill9();
    await waitFor(async () => {
      const l = await linkOn(replicant, 'eb');
      return l.role === 'active' && l.state === 'connected';
    }, 'the replicant serves eb', (ROUTE_TTL_S + 20) * 1000);
    const takenOverAt = Date.now();
    await publishing;
    const publishedAt = Date.now();
    // Messages published after the takeover arrive; whatever the killed core had queued waits on its disk.
    await waitFor(() => topics.every((t) => audit(seenB, t, total).lost.every((n) => n < total - 50)), 'the streams\' tails at eb', 30000);
    await sleep(1000);
    const beforeReturn = Object.fromEntries(topics.map((t) => {
      const r = audit(seenB, t, total);
      return [t, { lost: r.lost.length, duplicates: r.duplicates.length, outOfOrder: r.outOfOrder, lostNumbers: r.lost }];
    }));

    // The old keeper comes back: its lane had expired, the replicant holds a higher term → it yields and drains its queue.
    const core = await A.restartNode('core');
    await waitFor(async () => (await linkOn(core, 'eb')).state === 'misconfigured', 'the returning core yields', 20000);
    const returned = await linkOn(core, 'eb');
    // What the killed core had queued and not sent (its copies were handed over to the replicant too: QoS 1 twins).
    const queuedAtReturn = returned.queue.depth;
    await waitFor(async () => (await linkOn(core, 'eb')).queue.depth === 0, 'the returning core drained its queue', 30000);
    await sleep(1500);
    const final = Object.fromEntries(topics.map((t) => {
      const r = audit(seenB, t, total);
      return [t, { lost: r.lost.length, duplicates: r.duplicates.length, outOfOrder: r.outOfOrder, lostNumbers: r.lost, repeated: r.duplicates }];
    }));
    const summary = {
      deliveredAtKill, msKillToTakeover: takenOverAt - killedAt, msKillToPublishersDone: publishedAt - killedAt,
      routeTtlMs: ROUTE_TTL_S * 1000, beforeReturn, final, queuedAtReturn,
      adopted: replicant.logs.some((l) => l.includes('remote routes of the other agent of the region taken over')),
    };
    process.stdout.write(`embedded conflict takeover: ${JSON.stringify(summary)}\n`);

    expect(takenOverAt - killedAt).toBeLessThan((ROUTE_TTL_S + 15) * 1000);
    expect({ state: returned.state, lastError: returned.lastError, role: returned.role })
      .toEqual({ state: 'misconfigured', lastError: conflictMessage('ea-replicant'), role: 'standby' });
    expect((await linkOn(replicant, 'eb')).state).toBe('connected');
    expect(conflictLogs(core)).toHaveLength(1);
    for (const t of topics) expect({ topic: t, lost: final[t].lostNumbers }).toEqual({ topic: t, lost: [] });
  }, 150000);

  test('a clean stop (SIGTERM) of the keeper withdraws its marker: the other node takes the link over at once', async () => {
    // Now the replicant serves eb and the core yields. Publish on the core, stop the replicant cleanly mid-stream.
    const replicant = A.replicant as BrokerProcess;
    const total = 300;
    const topics = ['s/stop/q2', 's/stop/q1'];
    const pub = track(await connectClient(A.core.mqttPort, { clientId: 'ea-pub-core', clean: false, reconnectPeriod: 250 }));
    const publishing = Promise.all([stream(pub, topics[0], 2, total), stream(pub, topics[1], 1, total)]);
    await waitFor(() => seenB.filter((m) => m.topic.startsWith('s/stop/')).length >= 100, 'streams under way', 30000);
    const stoppedAt = Date.now();
    await replicant.stop('SIGTERM');
    const exitedAt = Date.now();
    await waitFor(async () => {
      const l = await linkOn(A.core, 'eb');
      return l.role === 'active' && l.state === 'connected';
    }, 'the core serves eb again', 20000);
    const takenOverAt = Date.now();
    await publishing;
    await waitFor(() => topics.every((t) => audit(seenB, t, total).lost.every((n) => n < total - 50)), 'the streams\' tails at eb', 30000);
    await sleep(1000);
    const beforeReturn = Object.fromEntries(topics.map((t) => {
      const r = audit(seenB, t, total);
      return [t, { lost: r.lost.length, duplicates: r.duplicates.length, outOfOrder: r.outOfOrder, lostNumbers: r.lost }];
    }));
    // The replicant comes back after its clean stop: it starts standby, sees the core's marker, yields, drains.
    const back = await A.restartNode('replicant');
    await waitFor(async () => (await linkOn(back, 'eb')).state === 'misconfigured', 'the returning replicant yields', 20000);
    const queuedAtReturn = (await linkOn(back, 'eb')).queue.depth;
    await waitFor(async () => (await linkOn(back, 'eb')).queue.depth === 0, 'the returning replicant drained its queue', 30000);
    await sleep(1500);
    const final = Object.fromEntries(topics.map((t) => {
      const r = audit(seenB, t, total);
      return [t, { lost: r.lost.length, duplicates: r.duplicates.length, outOfOrder: r.outOfOrder, lostNumbers: r.lost, repeated: r.duplicates }];
    }));
    process.stdout.write(`embedded conflict clean stop: ${JSON.stringify({
      msStopToExit: exitedAt - stoppedAt, msStopToTakeover: takenOverAt - stoppedAt, beforeReturn, final, queuedAtReturn,
    })}\n`);
    // Well below the route TTL: the stopping node waited for the core's marker before it withdrew its routes.
    expect(takenOverAt - stoppedAt).toBeLessThan(ROUTE_TTL_S * 1000 / 2);
    expect(replicant.logs.some((l) => l.includes('links handed to the standby node of the region before stopping') && l.includes('"takenOver":true'))).toBe(true);
    expect((await linkOn(back, 'eb')).lastError).toBe(conflictMessage('ea-core'));
    expect((await linkOn(A.core, 'eb')).state).toBe('connected');
    for (const t of topics) expect({ topic: t, lost: final[t].lostNumbers }).toEqual({ topic: t, lost: [] });
  }, 150000);

  test('kill -9 of the keeper and a restart within the route TTL: the link does not move, every message once and in order', async () => {
    // The core serves eb, the replicant yields. The core's lane never leaves the region: its first lane holds its marker.
    const replicant = A.replicant as BrokerProcess;
    const total = 300;
    const topics = ['s/restart/q2', 's/restart/q1'];
    const pub = track(await connectClient(replicant.mqttPort, { clientId: 'ea-pub-restart', clean: false, reconnectPeriod: 250 }));
    const publishing = Promise.all([stream(pub, topics[0], 2, total), stream(pub, topics[1], 1, total)]);
    await waitFor(() => seenB.filter((m) => m.topic.startsWith('s/restart/')).length >= 100, 'streams under way', 30000);
    const takenBefore = replicant.logs.filter((l) => l.includes('link served by this node (embedded agent)')).length;
    const killedAt = Date.now();
    await A.core.kill9();
    await sleep(500);
    const core = await A.restartNode('core');
    const readyAt = Date.now();
    await publishing;
    await waitFor(() => topics.every((t) => audit(seenB, t, total).lost.length === 0), 'every message at eb', 40000).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(topics.map((t) => ({ t, ...audit(seenB, t, total) })))}`);
    });
    await sleep(1500);
    const results = Object.fromEntries(topics.map((t) => {
      const r = audit(seenB, t, total);
      return [t, { lost: r.lost.length, duplicates: r.duplicates.length, outOfOrder: r.outOfOrder, repeated: r.duplicates }];
    }));
    process.stdout.write(`embedded conflict keeper restart within the TTL: ${JSON.stringify({ msKillToReady: readyAt - killedAt, results })}\n`);
    const served = await linkOn(core, 'eb');
    expect({ role: served.role, state: served.state }).toEqual({ role: 'active', state: 'connected' });
    expect((await linkOn(replicant, 'eb')).lastError).toBe(conflictMessage('ea-core'));
    expect(replicant.logs.filter((l) => l.includes('link served by this node (embedded agent)')).length).toBe(takenBefore);
    for (const t of topics) {
      const r = audit(seenB, t, total);
      expect({ topic: t, lost: r.lost, duplicates: r.duplicates, outOfOrder: r.outOfOrder }).toEqual({ topic: t, lost: [], duplicates: [], outOfOrder: 0 });
    }
  }, 150000);
});

describe('an embedded agent beside a sidecar serving the same link', () => {
  let A: ClusterRegion;
  let B: ClusterRegion;
  let toB: TcpProxy;
  const clients: MqttClient[] = [];
  const track = <T extends MqttClient>(c: T): T => { clients.push(c); return c; };

  beforeAll(async () => {
    // Region `sa`: a core without an agent, a replicant with `--links` and a sidecar with the same links file.
    toB = await TcpProxy.start(1);
    A = new ClusterRegion('sa');
    B = new ClusterRegion('sb');
    await A.start([{ name: 'sb', servers: [toB.address], topics: ['#'] }], { replicant: true, replicantLinks: true, sidecar: true, routeTtl: ROUTE_TTL_S });
    // sb's agent reaches sa only through the replicant: its control publishes must be passed on to the sidecar.
    await B.start([{ name: 'sa', servers: [`127.0.0.1:${(A.replicant as BrokerProcess).mqttPort}`], topics: ['#'] }], { replicant: false, routeTtl: ROUTE_TTL_S });
    toB.setTarget(B.core.mqttPort);
    await waitFor(async () => (await A.link('sb')).state === 'connected' && (await B.link('sa')).state === 'connected', 'sa\'s sidecar ↔ sb connected', 40000);
  }, 90000);
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await A?.dispose();
    await B?.dispose();
    await toB?.close();
  });

  test('the embedded agent yields to the sidecar (misconfigured naming it); both directions cross exactly once, in order', async () => {
    const replicant = A.replicant as BrokerProcess;
    await waitFor(async () => (await linkOn(replicant, 'sb')).state === 'misconfigured', 'the replicant yields', 20000);
    expect((await linkOn(replicant, 'sb')).lastError)
      .toBe(`link 'sb' is also served by sa-agent in region sa: run the embedded agent on one node only, or use link-agent sidecars`);
    const session = (clientId: string) => ({ clientId, clean: false, reconnectPeriod: 250 });
    const subA = track(await connectClient(A.core.mqttPort, session('sa-sub')));
    const subB = track(await connectClient(B.core.mqttPort, session('sb-sub')));
    const [seenA, seenB] = [record(subA), record(subB)];
    await subA.subscribeAsync('m/#', { qos: 2 });
    await subB.subscribeAsync('m/#', { qos: 2 });
    await waitFor(async () => (await A.link('sb')).routesReceived >= 1 && (await B.link('sa')).routesReceived >= 1, 'routes both ways');
    const pubA = track(await connectClient(A.core.mqttPort, session('sa-pub')));
    const pubB = track(await connectClient(B.core.mqttPort, session('sb-pub')));
    const total = 150;
    await Promise.all([stream(pubA, 'm/ab/q2', 2, total), stream(pubA, 'm/ab/q1', 1, total), stream(pubB, 'm/ba/q2', 2, total), stream(pubB, 'm/ba/q1', 1, total)]);
    const streams: Array<[Seen[], string]> = [[seenB, 'm/ab/q2'], [seenB, 'm/ab/q1'], [seenA, 'm/ba/q2'], [seenA, 'm/ba/q1']];
    await waitFor(() => streams.every(([seen, t]) => audit(seen, t, total).lost.length === 0), 'every stream delivered', 30000).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(streams.map(([seen, t]) => ({ t, ...audit(seen, t, total) })))}\n${replicant.logs.filter((l) => /link/.test(l)).slice(-20).join('\n')}`);
    });
    await sleep(1000);
    for (const [seen, topic] of streams) {
      const r = audit(seen, topic, total);
      expect({ topic, lost: r.lost, duplicates: r.duplicates, outOfOrder: r.outOfOrder }).toEqual({ topic, lost: [], duplicates: [], outOfOrder: 0 });
    }
    // The replicant queued nothing for the link since it yielded, and sb stays connected to it (not sent away).
    expect((await linkOn(replicant, 'sb')).forwarded).toBe(0);
    expect((await B.link('sa')).state).toBe('connected');
  }, 90000);
});
