import { rmSync } from 'node:fs';
import type { MqttClient } from 'mqtt';
import { scrapeMetric } from '../../harness/metrics.js';
import type { TcpProxy } from '../../harness/tcp-proxy.js';
import { linkedStandaloneFixture, sleep, waitFor, type LinkInfo, type Region } from './regions.js';

interface LostQueueReport { kind: string; agent: string; oldEpoch: string | null; newEpoch: string; oldMark: number | null; knownIncarnation: number | null }
type EpochLinkInfo = LinkInfo & { originResets: number; lostQueueReports: LostQueueReport[]; envelopes: string | null };

const linkOf = async (region: Region, name: string): Promise<EpochLinkInfo> => (await region.link(name)) as EpochLinkInfo;

describe('link agent store epoch: a data directory deleted on the sending side', () => {
  let A: Region;
  let B: Region;
  let toB: TcpProxy;
  const { clients } = linkedStandaloneFixture('us', 'eu', (regions) => ({ A, B, toB } = regions));

  /** kill -9 of B's node, optionally without its data directory, and a restart; A's agent is pointed at the new port. */
  async function restartB(deleteData: boolean): Promise<void> {
    await B.broker.kill9();
    if (deleteData) rmSync(B.dataDir, { recursive: true, force: true });
    await B.boot();
    toB.setTarget(B.mqttPort);
    await waitFor(async () => (await B.link('us')).state === 'connected' && (await B.link('us')).routesReceived >= 1, 'B linked again with A\'s route', 20000);
  }

  async function publishFromB(prefix: string, count: number): Promise<void> {
    const pub = await B.client({ clientId: `b-${prefix}` });
    for (let i = 0; i < count; i++) await pub.publishAsync(`epoch/${prefix}`, `${prefix}-${i}`, { qos: 1 });
    await pub.endAsync();
  }

  test('new messages of the agent with a new store are delivered (not dropped as duplicates) and the lost queue is reported on both sides', async () => {
    const sub = await A.client({ clientId: 'a-epoch' });
    clients.push(sub);
    const seen: string[] = [];
    sub.on('message', (_topic, payload) => seen.push(payload.toString()));
    await sub.subscribeAsync('epoch/#', { qos: 1 });
    await waitFor(async () => (await B.link('us')).routesReceived >= 1, 'A\'s route in B');

    await publishFromB('first', 30);
    await waitFor(() => seen.length >= 30, 'the first 30 messages in A');
    // Both agents announced envelope batches to each other (capabilities before the route-sync answer).
    expect((await linkOf(B, 'us')).envelopes).toBe('batch');
    expect((await linkOf(A, 'eu')).envelopes).toBe('batch');

    // A plain restart keeps the store: same epoch, sequences continue, nothing reported.
    await restartB(false);
    await publishFromB('second', 10);
    await waitFor(() => seen.length >= 40, 'the next 10 messages in A');
    expect((await linkOf(A, 'eu')).originResets).toBe(0);

    // The data directory is gone: B's agent starts its sequences at 1 again, under a new epoch.
    await restartB(true);
    await publishFromB('third', 20);
    await waitFor(() => seen.length >= 60, 'the 20 messages of the new store in A', 20000);
    await sleep(300);
    const expected = [...[...Array(30).keys()].map((i) => `first-${i}`), ...[...Array(10).keys()].map((i) => `second-${i}`), ...[...Array(20).keys()].map((i) => `third-${i}`)];
    expect(seen).toEqual(expected);

    const receiving = await linkOf(A, 'eu');
    expect(receiving.originResets).toBe(1);
    expect(receiving.lostQueueReports).toEqual([expect.objectContaining({ kind: 'remote-agent-reset', agent: 'eu/eu-1', oldMark: 40 })]);
    expect(receiving.lostQueueReports[0].oldEpoch).not.toBe(receiving.lostQueueReports[0].newEpoch);
    expect(await scrapeMetric(A.broker, 'meridian_link_origin_resets_total', { link: 'eu' })).toBe(1);
    expect(A.broker.logs.some((l) => l.includes('remote link agent came back with a new store') && l.includes('"oldMark":40'))).toBe(true);

    // B learns it from the route-sync handshake: A had seen incarnation 2 of B's agent, the new store starts at 1.
    // A also told B the store epoch it knew for B's agent (with the capabilities): one report with both facts.
    const sending = await linkOf(B, 'us');
    expect(sending.lostQueueReports).toEqual([expect.objectContaining({ kind: 'own-store-new', agent: 'eu/eu-1', knownIncarnation: 2, oldMark: 40 })]);
    expect(sending.lostQueueReports[0].oldEpoch).toBe(receiving.lostQueueReports[0].oldEpoch);
    expect(B.broker.logs.some((l) => l.includes('store is new but the remote knew an earlier one'))).toBe(true);
  });
});

/**
 * Regression (e2e drill `lost-volume`): the remote had seen only incarnation 1 of the agent, which a new store also
 * starts with, so the route-sync handshake cannot tell the sending agent that its store is new. The remote tells it
 * the store epoch it knew for the agent (appended to its capabilities): the report is made all the same.
 */
describe('link agent store epoch: the remote had seen only the first incarnation', () => {
  let A: Region;
  let B: Region;
  let toB: TcpProxy;
  const { clients } = linkedStandaloneFixture('us', 'eu', (regions) => ({ A, B, toB } = regions));

  test('an agent back with a wiped store after its first incarnation reports own-store-new with the epoch and mark the remote knew', async () => {
    const sub = await A.client({ clientId: 'a-first-incarnation' });
    clients.push(sub);
    const seen: string[] = [];
    sub.on('message', (_topic, payload) => seen.push(payload.toString()));
    await sub.subscribeAsync('epoch/#', { qos: 1 });
    await waitFor(async () => (await B.link('us')).routesReceived >= 1, 'A\'s route in B');
    const pub = await B.client({ clientId: 'b-before' });
    for (let i = 0; i < 15; i++) await pub.publishAsync('epoch/before', `before-${i}`, { qos: 1 });
    await pub.endAsync();
    await waitFor(() => seen.length >= 15, 'the first 15 messages in A');
    expect((await linkOf(B, 'us')).incarnation).toBe(1);

    await B.broker.kill9();
    rmSync(B.dataDir, { recursive: true, force: true });
    await B.boot();
    toB.setTarget(B.mqttPort);
    await waitFor(async () => (await B.link('us')).state === 'connected', 'B linked again', 20000);
    // Nothing published yet from the new store: the report must not wait for a carrier.
    await waitFor(async () => (await linkOf(B, 'us')).lostQueueReports.length > 0, 'B reports its new store', 10000);
    const sending = await linkOf(B, 'us');
    expect(sending.incarnation).toBe(1);
    expect(sending.lostQueueReports).toEqual([expect.objectContaining({ kind: 'own-store-new', agent: 'eu/eu-1', oldMark: 15, knownIncarnation: null })]);
    const report = sending.lostQueueReports[0];
    expect(report.oldEpoch).not.toBeNull();
    expect(report.oldEpoch).not.toBe(report.newEpoch);
    expect(B.broker.logs.some((l) => l.includes('store is new but the remote knew an earlier one'))).toBe(true);

    // The receiving side reports the same reset once the new store's first message arrives, with the same old epoch
    // (published once A's route is back in B: a wiped agent restores no remote route).
    await waitFor(async () => (await B.link('us')).routesReceived >= 1, 'A\'s route in B again', 20000);
    const next = await B.client({ clientId: 'b-after' });
    await next.publishAsync('epoch/after', 'after-0', { qos: 1 });
    await next.endAsync();
    await waitFor(() => seen.includes('after-0'), 'the new store\'s message in A');
    const receiving = await linkOf(A, 'eu');
    expect(receiving.lostQueueReports).toEqual([expect.objectContaining({ kind: 'remote-agent-reset', agent: 'eu/eu-1', oldMark: 15, oldEpoch: report.oldEpoch, newEpoch: report.newEpoch })]);
  });
});
