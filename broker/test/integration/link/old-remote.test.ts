/**
 * A link between this version and a region running the build of commit 8b79542, from before envelope batches
 * (README "Envelope batches": capabilities, old remote). The old build comes out of git history and is compiled
 * once into node_modules/.cache (old-build.ts); without that history the suite is skipped and says why.
 */
import type { MqttClient } from 'mqtt';
import { TcpProxy } from '../../harness/tcp-proxy.js';
import { oldCommitUnavailable, oldMeridianBin } from './old-build.js';
import { Region, sleep, waitFor } from './regions.js';

const OLD_COMMIT = '8b79542';
const unavailable = oldCommitUnavailable(OLD_COMMIT);
if (unavailable) console.warn(`old-remote link tests skipped: ${unavailable}`);
const describeWithHistory = unavailable ? describe.skip : describe;

interface EnvelopeInfo { envelopes: 'batch' | 'single' | null; state: string; received: number; forwarded: number; routesReceived: number }

async function linkInfo(region: Region, name: string): Promise<EnvelopeInfo> {
  const { body } = await region.broker.getJson<{ links: Array<EnvelopeInfo & { name: string }> }>('/api/v1/links');
  const link = body.links.find((l) => l.name === name);
  if (!link) throw new Error(`region ${region.name} lists no link ${name}`);
  return link;
}

function payloads(client: MqttClient, prefix: string): number[] {
  const seen: number[] = [];
  client.on('message', (topic, payload) => {
    if (topic.startsWith(prefix)) seen.push(Number(payload.toString()));
  });
  return seen;
}

describeWithHistory(`link to a region running commit ${OLD_COMMIT} (before envelope batches)`, () => {
  let oldRegion: Region;
  let newRegion: Region;
  let toOld: TcpProxy;
  let toNew: TcpProxy;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    const { bin, builtMs } = oldMeridianBin(OLD_COMMIT);
    if (builtMs !== null) console.log(`[figure] built commit ${OLD_COMMIT} into the cache in ${builtMs} ms`);
    toOld = await TcpProxy.start(1);
    toNew = await TcpProxy.start(1);
    oldRegion = new Region('old', bin);
    newRegion = new Region('new');
    await oldRegion.start([{ name: 'new', servers: [toNew.address], topics: ['#'] }]);
    await newRegion.start([{ name: 'old', servers: [toOld.address], topics: ['#'] }]);
    toOld.setTarget(oldRegion.mqttPort);
    toNew.setTarget(newRegion.mqttPort);
    await waitFor(async () => (await linkInfo(newRegion, 'old')).state === 'connected' && (await linkInfo(oldRegion, 'new')).state === 'connected',
      'both links connected', 30000);
  }, 240_000);

  afterAll(async () => {
    for (const c of clients) c.end(true);
    await oldRegion?.dispose();
    await newRegion?.dispose();
    await toOld?.close();
    await toNew?.close();
  });

  test('the current agent takes the old remote for one without batches and delivers to it once each, in order, across a cut', async () => {
    const sub = await oldRegion.client({ clientId: 'old-sub', clean: false });
    clients.push(sub);
    const seen = payloads(sub, 'to-old/');
    await sub.subscribeAsync('to-old/#', { qos: 1 });
    await waitFor(async () => (await linkInfo(newRegion, 'old')).routesReceived > 0, 'the old region\'s route in the new one');
    await waitFor(async () => (await linkInfo(newRegion, 'old')).envelopes === 'single', 'the new agent on single-message envelopes', 10000);
    expect(newRegion.broker.logs.some((l) => l.includes('the remote did not announce envelope batches'))).toBe(true);

    const pub = await newRegion.client({ clientId: 'new-pub' });
    clients.push(pub);
    const total = 300;
    for (let i = 0; i < total; i++) {
      await pub.publishAsync(`to-old/${i % 3}`, String(i), { qos: 1 });
      if (i === 100) {
        toOld.refuse();
        toOld.cut();
      }
      if (i === 200) toOld.restore();
    }
    await waitFor(() => seen.length >= total, `${total} messages in the old region`, 30000);
    await sleep(500);
    expect(seen).toEqual([...Array(total).keys()]);
    expect(await linkInfo(newRegion, 'old')).toMatchObject({ envelopes: 'single', state: 'connected' });
    expect((await linkInfo(newRegion, 'old')).forwarded).toBeGreaterThanOrEqual(total);
  });

  test('the current receiver takes the old agent\'s single-message envelopes once each, in order', async () => {
    const sub = await newRegion.client({ clientId: 'new-sub' });
    clients.push(sub);
    const seen = payloads(sub, 'to-new/');
    await sub.subscribeAsync('to-new/#', { qos: 2 });
    await waitFor(async () => (await linkInfo(oldRegion, 'new')).routesReceived > 0, 'the new region\'s route in the old one');
    const before = (await linkInfo(newRegion, 'old')).received;
    const pub = await oldRegion.client({ clientId: 'old-pub' });
    clients.push(pub);
    const total = 100;
    for (let i = 0; i < total; i++) await pub.publishAsync(`to-new/${i % 4}`, String(i), { qos: 2 });
    await waitFor(() => seen.length >= total, `${total} messages in the new region`, 20000);
    await sleep(500);
    expect(seen).toEqual([...Array(total).keys()]);
    expect((await linkInfo(newRegion, 'old')).received - before).toBe(total);
  });
});
