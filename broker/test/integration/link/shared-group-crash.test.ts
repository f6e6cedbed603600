/**
 * `kill -9` of the receiving region's link agent while linked messages stream into a `$share/g/...` group whose
 * members are persistent sessions. The agent publishes a carrier's messages into the region, then commits the
 * de-dup mark: a kill in between makes the remote resend the carrier and the agent publish its messages again.
 * Each group copy carries the message's publish identity (`linkedPublishId`), goes to the same owner node on every
 * resend (chosen by that identity) and the node records the group in the same commit as the member's queue entry,
 * so a republished copy reaches no member a second time (see broker/src/link/README.md, "The sidecar").
 *
 * Two set-ups: A's agent a sidecar (`meridian link-agent`, killed), members on A's core and replicant; A's agent
 * embedded in its core (the core killed), members on A's replicant (the group copies cross between nodes).
 */
import type { MqttClient } from 'mqtt';
import { TcpProxy } from '../../harness/tcp-proxy.js';
import { scrapeMetric } from '../../harness/metrics.js';
import type { BrokerProcess } from '../../harness/broker-process.js';
import { ClusterRegion, linkedSidecarRegions } from './cluster-regions.js';
import { connectClient, sleep, waitFor } from './regions.js';

const SHARED_FILTER = '$share/g/stream/#';

interface Stream {
  counts: Map<number, number>;
  perMember: Map<string, number>;
}

/**
 * Members subscribe `$share/g/stream/#` at QoS 2, with persistent sessions unless `clean`; every delivery is counted
 * per message id.
 */
async function groupMembers(clients: MqttClient[], members: { id: string; port: number; clean?: boolean }[]): Promise<Stream> {
  const stream: Stream = { counts: new Map(), perMember: new Map() };
  for (const { id, port, clean } of members) {
    const client = await connectClient(port, { clientId: id, clean: clean ?? false, reconnectPeriod: 200 });
    clients.push(client);
    stream.perMember.set(id, 0);
    client.on('message', (_topic, payload) => {
      const n = Number(payload.toString());
      stream.counts.set(n, (stream.counts.get(n) ?? 0) + 1);
      stream.perMember.set(id, (stream.perMember.get(id) ?? 0) + 1);
    });
    await client.subscribeAsync(SHARED_FILTER, { qos: 2 });
  }
  return stream;
}

/** QoS 1 (even) and QoS 2 (odd) messages from a persistent publisher, one at a time with a short pause every 25. */
function publishStream(pub: MqttClient, total: number): Promise<void> {
  return (async () => {
    for (let i = 0; i < total; i++) {
      await pub.publishAsync(`stream/${i % 5}`, String(i), { qos: i % 2 === 0 ? 1 : 2 });
      if (i % 25 === 0) await sleep(5);
    }
  })();
}

/** Kills the agent `kills` times while the stream crosses, each once a further share of it was delivered. */
async function killDuringStream(stream: Stream, total: number, kills: number, killAndRestart: () => Promise<void>): Promise<void> {
  for (let k = 0; k < kills; k++) {
    await waitFor(() => stream.counts.size >= ((k + 1) * total) / (kills + 2), `deliveries before kill ${k + 1}`, 60000);
    await killAndRestart();
  }
}

async function expectOnceEach(stream: Stream, total: number, label: string, nodes: BrokerProcess[], diagnose: () => Promise<string>): Promise<void> {
  await waitFor(() => stream.counts.size === total, `all ${total} delivered to the group`, 90000).catch(async (err: Error) => {
    const missing = [...Array(total).keys()].filter((i) => !stream.counts.has(i));
    throw new Error(`${err.message}: ${missing.length} missing (${missing.slice(0, 20).join(',')})\n${await diagnose().catch((e: Error) => e.message)}`);
  });
  await sleep(1500);
  const duplicated = [...stream.counts].filter(([, n]) => n > 1).map(([i]) => i);
  let repeats = 0;
  for (const node of nodes) repeats += await scrapeMetric(node, 'meridian_shared_subscription_messages_total', { outcome: 'repeat' });
  process.stdout.write(`shared group, ${label}: ${total} messages, delivered twice ${duplicated.length}${duplicated.length > 0 ? ` (${duplicated.slice(0, 10).join(',')})` : ''}, `
    + `republished copies recognised by the group's node ${repeats}, per member ${JSON.stringify(Object.fromEntries(stream.perMember))}\n`);
  expect(duplicated).toEqual([]);
  expect(stream.counts.size).toBe(total);
}

/** The links' state on both sides and the receiving agent's warnings, for a failure message. */
async function linkState(A: ClusterRegion, B: ClusterRegion, logs: () => string[]): Promise<string> {
  const a = await A.link(B.name).catch((e: Error) => e.message);
  const b = await B.link(A.name).catch((e: Error) => e.message);
  const warnings = logs().filter((line) => /"level":(40|50)/.test(line) || line.startsWith('--- killed')).slice(-40);
  const nodes = [A.core, A.replicant].flatMap((node) => node?.logs.filter((line) => /"level":(40|50)/.test(line)).slice(-10) ?? []);
  const outcomes = await Promise.all([A.core, A.replicant].map(async (node) => node === undefined ? '' : (await node.getJson<string>('/metrics')).body
    .split('\n').filter((line) => line.startsWith('meridian_shared_subscription_messages_total')).join(' ')));
  nodes.push(`shared outcomes (core, replicant): ${outcomes.join(' | ')}`);
  return `${A.name}: ${JSON.stringify(a)}\n${B.name}: ${JSON.stringify(b)}\nwarnings of ${A.name}'s agent:\n${warnings.join('\n')}\nof its nodes:\n${nodes.join('\n')}`;
}

describe('a shared group behind a link: the receiving agent killed mid-stream', () => {
  const clients: MqttClient[] = [];
  const disposers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.end(true);
    for (const dispose of disposers.splice(0)) await dispose();
  });

  test('sidecar agent: 3 kills while 1 200 QoS 1/2 messages reach a group on core and replicant → each once, none lost', async () => {
    const total = 1200;
    const { A, B, dispose } = await linkedSidecarRegions('sg', 'sp', { bReplicant: false });
    disposers.push(dispose);
    const replicant = A.replicant as BrokerProcess;
    const stream = await groupMembers(clients, [
      { id: 'sg-core-1', port: A.core.mqttPort }, { id: 'sg-core-2', port: A.core.mqttPort },
      { id: 'sg-rep-1', port: replicant.mqttPort }, { id: 'sg-rep-2', port: replicant.mqttPort },
    ]);
    await waitFor(async () => (await B.link('sg')).routesReceived >= 1, 'the group\'s filter visible in sp');
    const pub = await connectClient(B.core.mqttPort, { clientId: 'sp-pub', clean: false });
    clients.push(pub);
    const publishing = publishStream(pub, total);
    const earlierLogs: string[] = [];
    await killDuringStream(stream, total, 3, async () => {
      await A.killSidecar();
      earlierLogs.push('--- killed', ...(A.sidecar?.logs ?? []));
      await sleep(300);
      await A.restartSidecar();
    });
    await publishing;
    await expectOnceEach(stream, total, 'sidecar killed 3 times', [A.core, replicant], () => linkState(A, B, () => [...earlierLogs, ...(A.sidecar?.logs ?? [])]));
  }, 300_000);

  // Clean-session members get nothing stored: their node remembers the group's delivery in memory, which is enough
  // while that node runs on (the sidecar crashed, not it).
  test('sidecar agent: 2 kills while 800 QoS 1/2 messages reach a group of clean and persistent members → each once', async () => {
    const total = 800;
    const { A, B, dispose } = await linkedSidecarRegions('sm', 'sq', { bReplicant: false });
    disposers.push(dispose);
    const replicant = A.replicant as BrokerProcess;
    const stream = await groupMembers(clients, [
      { id: 'sm-core-clean', port: A.core.mqttPort, clean: true }, { id: 'sm-core-kept', port: A.core.mqttPort },
      { id: 'sm-rep-clean', port: replicant.mqttPort, clean: true }, { id: 'sm-rep-kept', port: replicant.mqttPort },
    ]);
    await waitFor(async () => (await B.link('sm')).routesReceived >= 1, 'the group\'s filter visible in sq');
    const pub = await connectClient(B.core.mqttPort, { clientId: 'sq-pub', clean: false });
    clients.push(pub);
    const publishing = publishStream(pub, total);
    await killDuringStream(stream, total, 2, async () => {
      await A.killSidecar();
      await sleep(300);
      await A.restartSidecar();
    });
    await publishing;
    await expectOnceEach(stream, total, 'sidecar killed 2 times, clean and persistent members', [A.core, replicant], () => linkState(A, B, () => A.sidecar?.logs ?? []));
  }, 300_000);

  /** Region `a` (core with the embedded agent + replicant) linked with `b` (one core); `toA` follows A's core. */
  async function embeddedRegions(a: string, b: string): Promise<{ A: ClusterRegion; B: ClusterRegion; toA: TcpProxy }> {
    const toA = await TcpProxy.start(1);
    const toB = await TcpProxy.start(1);
    const A = new ClusterRegion(a);
    const B = new ClusterRegion(b);
    disposers.push(async () => {
      await A.dispose();
      await B.dispose();
      await toA.close();
      await toB.close();
    });
    await A.start([{ name: b, servers: [toB.address], topics: ['#'] }], { replicant: true });
    await B.start([{ name: a, servers: [toA.address], topics: ['#'] }], { replicant: false });
    toB.setTarget(B.core.mqttPort);
    toA.setTarget(A.core.mqttPort);
    await waitFor(async () => (await A.link(b)).state === 'connected' && (await B.link(a)).state === 'connected', 'both links connected', 20000);
    return { A, B, toA };
  }

  test('embedded agent: 2 kills of its core while 900 QoS 1/2 messages reach a group on the replicant → each once, none lost', async () => {
    const total = 900;
    const { A, B, toA } = await embeddedRegions('eg', 'ep');
    const replicant = A.replicant as BrokerProcess;
    const stream = await groupMembers(clients, [{ id: 'eg-rep-1', port: replicant.mqttPort }, { id: 'eg-rep-2', port: replicant.mqttPort }]);
    await waitFor(async () => (await B.link('eg')).routesReceived >= 1, 'the group\'s filter visible in ep');
    const pub = await connectClient(B.core.mqttPort, { clientId: 'ep-pub', clean: false });
    clients.push(pub);
    const publishing = publishStream(pub, total);
    await killDuringStream(stream, total, 2, async () => {
      await A.restartNode('core');
      toA.setTarget(A.core.mqttPort);
    });
    await publishing;
    await expectOnceEach(stream, total, 'embedded agent\'s core killed 2 times', [A.core, replicant], () => linkState(A, B, () => A.core.logs));
  }, 300_000);

  // A member on the agent's own node too: it is offline after each kill while the carriers are republished. QoS 2
  // only: a QoS 1 copy in flight to it at the kill may come again after its reconnect (QoS 1 allows it), and MQTT.js
  // keeps a PUBRECed QoS 2 message until the PUBREL, so one client instance follows the core through a proxy.
  test('embedded agent: 2 kills of its core while 600 QoS 2 messages reach a group on the core and the replicant → each once', async () => {
    const total = 600;
    const { A, B, toA } = await embeddedRegions('ek', 'eq');
    const replicant = A.replicant as BrokerProcess;
    const coreProxy = await TcpProxy.start(A.core.mqttPort);
    disposers.push(() => coreProxy.close());
    const stream = await groupMembers(clients, [{ id: 'ek-core', port: coreProxy.port }, { id: 'ek-rep', port: replicant.mqttPort }]);
    await waitFor(async () => (await B.link('ek')).routesReceived >= 1, 'the group\'s filter visible in eq');
    const pub = await connectClient(B.core.mqttPort, { clientId: 'eq-pub', clean: false });
    clients.push(pub);
    const publishing = (async () => {
      for (let i = 0; i < total; i++) {
        await pub.publishAsync(`stream/${i % 5}`, String(i), { qos: 2 });
        if (i % 25 === 0) await sleep(5);
      }
    })();
    await killDuringStream(stream, total, 2, async () => {
      await A.restartNode('core');
      toA.setTarget(A.core.mqttPort);
      coreProxy.setTarget(A.core.mqttPort);
    });
    await publishing;
    await expectOnceEach(stream, total, 'embedded agent\'s core killed 2 times, a member on it', [A.core, replicant], () => linkState(A, B, () => A.core.logs));
  }, 300_000);
});
