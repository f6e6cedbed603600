import type { MqttClient } from 'mqtt';
import { connectClient } from '../../broker/test/harness/mqtt-client.js';
import { Mesh } from '../harness/mesh.js';

async function waitUntil(check: () => boolean, what: string, timeoutMs = 20000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * agentsPerRegion 'per-core' (one agent beside each core, as the rendered pods) relies on the link code's support for
 * several agents per region: one active agent per link, the other standby.
 */
describe('e2e harness with an agent beside each core', () => {
  let mesh: Mesh;
  let sub: MqttClient;
  let pub: MqttClient;
  const got: string[] = [];

  beforeAll(async () => {
    mesh = await Mesh.start({ regions: ['us-east', 'emea'], agentsPerRegion: 'per-core' });
    const creds = mesh.credentials('acme');
    sub = await connectClient(mesh.region('emea').clientPort, { ...creds, clientId: 'per-core-sub' });
    sub.on('message', (topic) => got.push(topic));
    await sub.subscribeAsync('#', { qos: 2 });
    pub = await connectClient(mesh.region('us-east').clientPort, { ...creds, clientId: 'per-core-pub' });
  }, 60000);

  afterAll(async () => {
    sub?.end(true);
    pub?.end(true);
    await mesh?.stop();
  }, 30000);

  const publishUntilSeen = async (prefix: string, count: number): Promise<void> => {
    // The first message also waits for the subscription's route to reach us-east.
    await waitUntil(() => got.includes(`${prefix}/probe`) || (void pub.publish(`${prefix}/probe`, 'p', { qos: 2 }), false), `${prefix} route`);
    for (let i = 0; i < count; i++) await pub.publishAsync(`${prefix}/${i}`, String(i), { qos: 2 });
    await waitUntil(() => got.filter((t) => t.startsWith(`${prefix}/`) && !t.endsWith('/probe')).length >= count, `${count} ${prefix} messages`);
    await new Promise((r) => setTimeout(r, 500));
  };

  it('starts two agents per region, and each message crosses once', async () => {
    for (const region of mesh.regions.values()) expect(region.agents.map((a) => a.id)).toEqual(['agent-0', 'agent-1']);
    await publishUntilSeen('before', 20);
    const copies = got.filter((t) => /^before\/\d+$/.test(t));
    expect(copies).toHaveLength(20);
    expect(new Set(copies).size).toBe(20);
  });

  it('after a kill -9 of the agent serving us-east→emea, the other agent serves it and messages still cross once', async () => {
    const east = mesh.region('us-east');
    const reports = await Promise.all(east.agents.map((_, i) => east.agentLinks(i)));
    const activeIndex = reports.findIndex((r) => r.links.some((l) => l.name === 'emea' && l.role === 'active'));
    expect(activeIndex).toBeGreaterThanOrEqual(0);
    await east.agents[activeIndex]!.kill('SIGKILL');
    await east.linksConnected(45000);
    await publishUntilSeen('after', 20);
    const copies = got.filter((t) => /^after\/\d+$/.test(t));
    expect(copies).toHaveLength(20);
    expect(new Set(copies).size).toBe(20);
  }, 90000);
});
