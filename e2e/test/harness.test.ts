import type { MqttClient } from 'mqtt';
import { connectClient } from '../../broker/test/harness/mqtt-client.js';
import { DEFAULT_DELAYS, Mesh, pairKey, REGION_NAMES, type RegionName } from '../harness/mesh.js';

/** Received messages per subscriber region: topic → arrival times and latencies. */
interface Arrival { topic: string; latencyMs: number }

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitUntil(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('e2e harness: three regions from the rendered manifests, linked through latency proxies', () => {
  let mesh: Mesh;
  const subscribers = new Map<RegionName, MqttClient>();
  const publishers = new Map<RegionName, MqttClient>();
  const arrivals = new Map<RegionName, Arrival[]>();

  const publish = (from: RegionName, topic: string): Promise<void> =>
    new Promise((resolve, reject) => {
      publishers.get(from)!.publish(topic, JSON.stringify({ sentAt: Date.now() }), { qos: 2 }, (err) => (err ? reject(err) : resolve()));
    });
  const received = (at: RegionName, topic: string): Arrival[] => arrivals.get(at)!.filter((a) => a.topic === topic);

  /** Publishes probes from `from` until every other region's subscriber got one: the remote routes are in place. */
  async function routesReady(from: RegionName): Promise<void> {
    let n = 0;
    await waitUntil(async () => {
      const topic = `probe/${from}/${n++}`;
      await publish(from, topic);
      await new Promise((r) => setTimeout(r, 300));
      return REGION_NAMES.filter((r) => r !== from).every((r) => arrivals.get(r)!.some((a) => a.topic.startsWith(`probe/${from}/`)));
    }, `routes from ${from} to the other regions`);
  }

  beforeAll(async () => {
    mesh = await Mesh.start();
    const creds = mesh.credentials('acme');
    for (const name of REGION_NAMES) {
      const port = mesh.region(name).clientPort;
      const sub = await connectClient(port, { ...creds, clientId: `harness-sub-${name}` });
      arrivals.set(name, []);
      sub.on('message', (topic, payload) => {
        const { sentAt } = JSON.parse(payload.toString()) as { sentAt: number };
        arrivals.get(name)!.push({ topic, latencyMs: Date.now() - sentAt });
      });
      await sub.subscribeAsync('#', { qos: 2 });
      subscribers.set(name, sub);
      publishers.set(name, await connectClient(port, { ...creds, clientId: `harness-pub-${name}` }));
    }
    for (const name of REGION_NAMES) await routesReady(name);
  }, 90000);

  afterAll(async () => {
    for (const c of [...subscribers.values(), ...publishers.values()]) c.end(true);
    await mesh?.stop();
  }, 30000);

  it('a message published in each region reaches every other region exactly once, no sooner than the injected delay', async () => {
    for (const from of REGION_NAMES) for (let i = 0; i < 5; i++) await publish(from, `exact/${from}/${i}`);
    await waitUntil(() => REGION_NAMES.every((at) => arrivals.get(at)!.filter((a) => a.topic.startsWith('exact/')).length >= 15), 'every message everywhere');
    await new Promise((r) => setTimeout(r, 500)); // a duplicate would arrive within this
    for (const at of REGION_NAMES) {
      for (const from of REGION_NAMES) {
        for (let i = 0; i < 5; i++) {
          const got = received(at, `exact/${from}/${i}`);
          expect({ at, from, i, copies: got.length }).toEqual({ at, from, i, copies: 1 });
          // Date.now() has 1 ms resolution: allow 1 ms of rounding below the delay.
          if (from !== at) expect(got[0]!.latencyMs).toBeGreaterThanOrEqual(DEFAULT_DELAYS[pairKey(from, at)].delayMs - 1);
        }
      }
    }
  });

  it('a cut pair stops its traffic (counters still), restore resumes it and the queued message arrives', async () => {
    const pair = mesh.pair('us-east', 'emea');
    pair.cut();
    pair.resetCounters();
    await waitUntil(async () => (await mesh.region('us-east').links()).find((l) => l.name === 'emea')?.state !== 'connected', 'us-east→emea link down');
    await publish('us-east', 'cut/1');
    await waitUntil(() => received('us-west', 'cut/1').length === 1, 'us-west still gets us-east traffic');
    await new Promise((r) => setTimeout(r, 1500));
    expect(received('emea', 'cut/1')).toHaveLength(0);
    expect(pair.bytes().total).toBe(0);
    pair.restore();
    await waitUntil(() => received('emea', 'cut/1').length === 1, 'the queued message in emea after restore', 30000);
    const bytes = pair.bytes();
    expect(bytes.aToB).toBeGreaterThan(0);
    expect(bytes.bToA).toBeGreaterThan(0);
    expect(bytes.total).toBe(bytes.aToB + bytes.bToA);
    await mesh.region('us-east').linksConnected();
    await mesh.region('emea').linksConnected();
  }, 60000);

  it('a node killed with SIGKILL is restarted on the same port and data, and the region still links', async () => {
    const core = mesh.region('us-west').node('core-1');
    const before = core.pid!;
    await core.kill('SIGKILL');
    expect(core.running).toBe(false);
    expect(core.pid).toBeUndefined();
    expect(alive(before)).toBe(false);
    await core.start();
    expect(core.running).toBe(true);
    expect(core.pid).not.toBe(before);
    await publish('us-west', 'after-kill/1');
    await waitUntil(() => received('us-east', 'after-kill/1').length === 1 && received('emea', 'after-kill/1').length === 1, 'us-west traffic after the restart');
  }, 60000);

  it('a core restarted on a wiped data dir (a lost volume) starts afresh and the region still links', async () => {
    const emea = mesh.region('emea');
    const core = emea.node('core-1');
    expect(() => core.wipeData()).toThrow(/is running/);
    await core.kill('SIGKILL');
    core.wipeData();
    await core.start();
    expect(core.logs().filter((l) => l.includes('"msg":"store opened"')).pop()).toContain('"incarnation":1');
    await publish('us-east', 'after-wipe/1');
    await waitUntil(() => received('emea', 'after-wipe/1').length === 1, 'us-east→emea after the wipe');
    const links = await emea.links();
    expect(links.map((l) => [l.name, l.state])).toEqual([['us-east', 'connected'], ['us-west', 'connected']]);
  }, 60000);

  it('a whole region stopped and started: the other pair keeps working meanwhile, then the region links again', async () => {
    const west = mesh.region('us-west');
    const pids = west.nodes.map((n) => n.pid!);
    // Clients leave first: a node with a connected client does not finish a graceful stop (see the README).
    subscribers.get('us-west')!.end(true);
    publishers.get('us-west')!.end(true);
    const stopStarted = Date.now();
    await west.stop();
    expect(Date.now() - stopStarted).toBeLessThan(8000); // graceful, not the SIGKILL after the 10 s grace
    expect(west.nodes.every((n) => !n.running) && west.agents.every((a) => !a.running)).toBe(true);
    expect(pids.filter(alive)).toEqual([]);
    await publish('us-east', 'region-down/1');
    await waitUntil(() => received('emea', 'region-down/1').length === 1, 'us-east→emea while us-west is down');
    await west.start();
    await west.linksConnected();
    // The subscriber's session was clean: subscribe again on the restarted replicant.
    const sub = await connectClient(west.clientPort, { ...mesh.credentials('acme'), clientId: 'harness-sub-us-west' });
    sub.on('message', (topic, payload) => {
      const { sentAt } = JSON.parse(payload.toString()) as { sentAt: number };
      arrivals.get('us-west')!.push({ topic, latencyMs: Date.now() - sentAt });
    });
    await sub.subscribeAsync('#', { qos: 2 });
    subscribers.set('us-west', sub);
    publishers.set('us-west', await connectClient(west.clientPort, { ...mesh.credentials('acme'), clientId: 'harness-pub-us-west' }));
    await routesReady('emea');
    await routesReady('us-west');
  }, 90000);

  it('stop() ends every process it started, by PID', async () => {
    const pids = mesh.allPids();
    expect(pids.length).toBeGreaterThanOrEqual(18); // 3 regions × (3 nodes + 1 agent), plus the restarts
    for (const c of [...subscribers.values(), ...publishers.values()]) c.end(true);
    await mesh.stop();
    expect(pids.filter(alive)).toEqual([]);
  }, 30000);
});
