import mqtt, { type MqttClient } from 'mqtt';
import { TestCluster } from '../../harness/cluster.js';
import { eventually, scrapeMetric } from '../../harness/metrics.js';
import { RawMqttClient, acknowledge, subscribe } from '../../harness/mqtt-raw.js';

// Two cores and a replicant: sessions move between cores and between a core and a replicant.
const NODES = [
  { name: 'core-1', role: 'core' as const },
  { name: 'core-2', role: 'core' as const },
  { name: 'repl-1', role: 'replicant' as const },
];

interface SessionView {
  holder?: string;
  claims: { node: string; time: number }[];
  local: { connections: number; stored: boolean; queued: number };
}

function connect(port: number, options: mqtt.IClientOptions): Promise<{ client: MqttClient; sessionPresent: boolean }> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 20000, ...options });
    client.once('connect', (ack) => resolve({ client, sessionPresent: ack.sessionPresent }));
    client.once('error', reject);
  });
}

/** Collects payloads until `expected` arrived plus a quiet grace period (a duplicate would arrive within it). */
function collect(client: MqttClient, expected: number, timeoutMs = 15000): Promise<string[]> {
  const received: string[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`received ${received.length}/${expected}: ${received.join(' ')}`)), timeoutMs);
    client.on('message', (_topic, payload) => {
      if (payload.toString() === PROBE) return;
      received.push(payload.toString());
      if (received.length === expected) {
        clearTimeout(timer);
        setTimeout(() => resolve(received), 500);
      }
    });
  });
}

const PROBE = 'probe';

/**
 * Publishes QoS 0 probes on `topic` until `arrived` says one got through: the publisher's node then routes the
 * subscriber's filter (a node's own route count lags its SUBACK, so the cluster table cannot tell).
 */
async function probeRoute(publisher: MqttClient, topic: string, arrived: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    await publisher.publishAsync(topic, PROBE, { qos: 0 });
    if (await arrived()) return;
  }
  throw new Error(`no route for ${topic} reached the publisher's node within 10 s`);
}

/** A probe reaches this mqtt.js client within 200 ms. */
function probeArrives(client: MqttClient): () => Promise<boolean> {
  return () => new Promise((resolve) => {
    const onMessage = (_topic: string, payload: Buffer): void => {
      if (payload.toString() !== PROBE) return;
      clearTimeout(timer);
      client.off('message', onMessage);
      resolve(true);
    };
    const timer = setTimeout(() => { client.off('message', onMessage); resolve(false); }, 200);
    client.on('message', onMessage);
  });
}

function end(client: MqttClient): Promise<void> {
  return new Promise((resolve) => client.end(false, {}, () => resolve()));
}

describe('client identity across the cluster: takeover and session handover', () => {
  let cluster: TestCluster;
  const clients: MqttClient[] = [];
  const raws: RawMqttClient[] = [];

  const port = (name: string): number => cluster.node(name).mqttPort;
  const session = async (name: string, clientId: string): Promise<SessionView> =>
    (await cluster.node(name).getJson<SessionView>(`/api/v1/cluster/sessions?clientId=${encodeURIComponent(clientId)}`)).body;
  const takeovers = (name: string, role: string): Promise<number> => scrapeMetric(cluster.node(name), 'meridian_cluster_takeovers_total', { role });

  beforeAll(async () => {
    cluster = await TestCluster.start(NODES, { clusterName: 'takeover', extraArgs: ['--route-ttl', '3'] });
    await cluster.waitForTables((_name, table) => table.nodes.filter((n) => n.state !== 'disconnected').length === NODES.length);
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.end(true);
    await Promise.all(raws.splice(0).map((r) => r.destroy()));
  });
  afterAll(async () => {
    await cluster?.dispose();
  });

  test('takeover between nodes with a persistent session holding queued messages', async () => {
    const clientId = 'tk-offline';
    const { client: first } = await connect(port('core-1'), { clientId, clean: false });
    await first.subscribeAsync({ 'tk/offline/+': { qos: 2 }, 'tk/offline-extra/#': { qos: 1 } });
    const { client: publisher } = await connect(port('core-2'), { clientId: 'tk-offline-pub' });
    clients.push(publisher);
    await probeRoute(publisher, 'tk/offline/probe', probeArrives(first));
    await end(first);
    for (let i = 0; i < 50; i++) await publisher.publishAsync(`tk/offline/${i % 5}`, `m${i}`, { qos: i % 2 === 0 ? 1 : 2 });
    expect((await session('core-1', clientId)).local).toMatchObject({ stored: true, queued: 50 });

    const { client: resumed, sessionPresent } = await connect(port('repl-1'), { clientId, clean: false });
    clients.push(resumed);
    expect(sessionPresent).toBe(true);
    const received = await collect(resumed, 50);
    // mqtt.js hands a QoS 2 message to the application at PUBREL, so QoS 1 and 2 interleave: compare as sets.
    expect([...received].sort()).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}`).sort());

    expect((await session('core-1', clientId)).local).toMatchObject({ stored: false, queued: 0, connections: 0 });
    expect(await takeovers('core-1', 'handed')).toBe(1);
    expect(await takeovers('repl-1', 'taken')).toBe(1);
    expect(await eventually(async () => (await Promise.all(NODES.map((n) => session(n.name, clientId)))).every((v) => v.holder === 'repl-1'), 5000)).toBe(true);

    // The subscriptions moved with the session: routes follow, and a new message reaches the client on repl-1 once.
    await probeRoute(publisher, 'tk/offline-extra/probe', probeArrives(resumed));
    const next = collect(resumed, 1);
    await publisher.publishAsync('tk/offline-extra/x', 'after', { qos: 1 });
    expect(await next).toEqual(['after']);
  });

  test('live takeover: the old connection is closed and its in-flight messages are re-sent on the new node', async () => {
    const clientId = 'tk-live';
    const old = await RawMqttClient.connected(port('repl-1'), { clientId, clean: false });
    raws.push(old);
    await subscribe(old, { 'tk/live/#': 1 });
    const { client: publisher } = await connect(port('core-1'), { clientId: 'tk-live-pub' });
    clients.push(publisher);
    await probeRoute(publisher, 'tk/live/probe', async () => (await old.poll(200))?.cmd === 'publish');
    old.takeAll();
    for (let i = 0; i < 5; i++) await publisher.publishAsync('tk/live/a', `live${i}`, { qos: 1 });
    const inFlight = [];
    for (let i = 0; i < 5; i++) inFlight.push(await old.next('publish'));
    expect(inFlight.map((p) => p.payload.toString())).toEqual(['live0', 'live1', 'live2', 'live3', 'live4']);

    const { client: fresh, connack } = await RawMqttClient.connect(port('core-2'), { clientId, clean: false });
    raws.push(fresh);
    expect(connack).toMatchObject({ returnCode: 0, sessionPresent: true });
    await old.closedByServer(5000);
    const resent = [];
    for (let i = 0; i < 5; i++) {
      const packet = await fresh.next('publish', 5000);
      resent.push(`${packet.payload.toString()}${packet.dup ? ' (dup)' : ''}`);
      await acknowledge(fresh, packet);
    }
    expect(resent).toEqual(['live0 (dup)', 'live1 (dup)', 'live2 (dup)', 'live3 (dup)', 'live4 (dup)']);
    expect(await fresh.poll(500)).toBeUndefined();
    expect((await session('repl-1', clientId)).local).toMatchObject({ stored: false, connections: 0 });
  });

  test('concurrent connects of one client id on two nodes: exactly one stays connected, the same one every node names', async () => {
    for (let round = 0; round < 3; round++) {
      const clientId = `tk-race-${round}`;
      const sockets = await Promise.all([RawMqttClient.open(port('core-1')), RawMqttClient.open(port('repl-1'))]);
      raws.push(...sockets);
      for (const socket of sockets) socket.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: false, clientId, keepalive: 30 });
      expect(await eventually(() => sockets.filter((s) => !s.closed).length === 1, 10000)).toBe(true);
      const survivor = sockets.findIndex((s) => !s.closed);
      const winner = survivor === 0 ? 'core-1' : 'repl-1';
      expect(await (sockets[survivor] as RawMqttClient).next('connack', 10000)).toMatchObject({ returnCode: 0 });
      const agreed = await eventually(async () => (await Promise.all(NODES.map((n) => session(n.name, clientId)))).every((v) => v.holder === winner), 5000);
      expect(agreed).toBe(true);
      expect((await session(winner, clientId)).local.connections).toBe(1);
      expect((await session(winner === 'core-1' ? 'repl-1' : 'core-1', clientId)).local).toMatchObject({ connections: 0, stored: false });
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(sockets.filter((s) => !s.closed)).toHaveLength(1);
    }
  });

  test('the holder is unreachable: the connect proceeds after a bounded wait; the session is merged when the holder returns', async () => {
    const clientId = 'tk-down';
    const { client: first } = await connect(port('core-2'), { clientId, clean: false });
    await first.subscribeAsync('tk/down/#', { qos: 1 });
    const { client: publisher } = await connect(port('core-1'), { clientId: 'tk-down-pub' });
    clients.push(publisher);
    await probeRoute(publisher, 'tk/down/probe', probeArrives(first));
    await end(first);
    for (let i = 0; i < 10; i++) await publisher.publishAsync('tk/down/x', `d${i}`, { qos: 1 });
    expect((await session('core-2', clientId)).local.queued).toBe(10);

    await cluster.kill9('core-2');
    const started = Date.now();
    const { client: onCore1, sessionPresent } = await connect(port('core-1'), { clientId, clean: false });
    const waitedMs = Date.now() - started;
    expect(sessionPresent).toBe(false);
    expect(waitedMs).toBeGreaterThan(2000);
    expect(waitedMs).toBeLessThan(15000);
    expect(cluster.node('core-1').logs.some((line) => line.includes('unreachable; continuing without its session') && line.includes(clientId))).toBe(true);
    expect(await takeovers('core-1', 'unreachable')).toBe(1);

    await cluster.startNode('core-2');
    expect(await eventually(async () => (await session('core-1', clientId)).local.queued === 10, 15000)).toBe(true);
    // The handover commits once every node routes the session to core-1 (core-2 has just restarted): then core-2 lets go.
    expect(await eventually(async () => {
      const local = (await session('core-2', clientId)).local;
      return !local.stored && local.queued === 0;
    }, 10000)).toBe(true);
    // A session merged into a connected one reaches the client at its next CONNECT.
    await end(onCore1);
    const { client: again, sessionPresent: present } = await connect(port('core-1'), { clientId, clean: false });
    clients.push(again);
    expect(present).toBe(true);
    expect((await collect(again, 10)).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `d${i}`).sort());
  });
});
