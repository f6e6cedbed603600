import { afterEach, describe, expect, it } from '@jest/globals';
import { BrokerProcess } from '../../harness/broker-process.js';
import { laneRoutes } from '../../harness/cluster.js';
import { closeAll, RawMqttClient, receive, subscribe } from '../../harness/mqtt-raw.js';
import { type Cleanups, crashingCluster, crashingNode, publishIntoCrash, resend } from './qos2-crash.js';

/**
 * The QoS 2 crash window at the publisher's node: the node is killed (SIGKILL, by the test-only hook
 * MERIDIAN_TEST_CRASH_BEFORE_QOS2_MARK) after the publish of a persistent session's QoS 2 message committed for
 * every subscriber and every other node, before the store marked it published. The publisher's DUP resend then
 * publishes it again; every subscriber must still get it exactly once.
 */

/** How long a subscriber is watched for a second copy. */
const QUIET_MS = 1500;

const cleanups: Cleanups = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function persistentSubscriber(port: number, clientId: string): Promise<RawMqttClient> {
  const client = await RawMqttClient.connected(port, { clientId, clean: false });
  await subscribe(client, { 'crash/#': 2 });
  return client;
}

/** Every PUBLISH the client gets within QUIET_MS (each acknowledged), as payload strings. */
async function copiesWithin(client: RawMqttClient): Promise<string[]> {
  const copies: string[] = [];
  for (;;) {
    const packet = await receive(client, QUIET_MS).catch(() => undefined);
    if (!packet) return copies;
    copies.push(String(packet.payload));
  }
}

/** Connects a stored session and returns every message it gets (queued ones first). */
async function drainSession(port: number, clientId: string): Promise<string[]> {
  const client = await RawMqttClient.connected(port, { clientId, clean: false });
  try {
    return await copiesWithin(client);
  } finally {
    await client.destroy();
  }
}

describe('QoS 2: kill -9 between the publish and the published mark', () => {
  it('single node: an offline and a live persistent subscriber get the message once', async () => {
    const { node: first, dataDir } = await crashingNode(cleanups, 'meridian-qos2-window-');

    for (const id of ['offline-sub', 'live-sub']) await (await persistentSubscriber(first.mqttPort, id)).disconnect();
    await publishIntoCrash(first.mqttPort, 'crash-pub', 7, first);

    const second = await BrokerProcess.start({ dataDir });
    cleanups.push(() => second.dispose());
    // The live subscriber takes (and acknowledges) its queued copy before the publisher resends: its queue is
    // empty when the message is published again, and the message must not reach it a second time.
    const live = await RawMqttClient.connected(second.mqttPort, { clientId: 'live-sub', clean: false });
    cleanups.push(() => closeAll(live));
    expect(String((await receive(live, 10_000)).payload)).toBe('m1');

    await resend(second.mqttPort, 'crash-pub', 7);
    expect(await copiesWithin(live)).toEqual([]);
    expect(await drainSession(second.mqttPort, 'offline-sub')).toEqual(['m1']);

    // A new QoS 2 message after the restart still goes through once.
    const publisher = await RawMqttClient.connected(second.mqttPort, { clientId: 'crash-pub', clean: false });
    cleanups.push(() => closeAll(publisher));
    publisher.send({ cmd: 'publish', topic: 'crash/after', payload: Buffer.from('m2'), qos: 2, retain: false, dup: false, messageId: 8 });
    await publisher.next('pubrec', 10_000);
    publisher.send({ cmd: 'pubrel', messageId: 8 });
    await publisher.next('pubcomp', 10_000);
    expect(await copiesWithin(live)).toEqual(['m2']);
  }, 90_000);

  it('cluster: subscribers on the publisher node and on another node get the message once', async () => {
    const cluster = await crashingCluster(cleanups);
    const a = cluster.node('a');
    const b = cluster.node('b');

    await (await persistentSubscriber(a.mqttPort, 'sub-on-a')).disconnect();
    await (await persistentSubscriber(b.mqttPort, 'offline-on-b')).disconnect();
    const liveOnB = await persistentSubscriber(b.mqttPort, 'live-on-b');
    cleanups.push(() => closeAll(liveOnB));
    await cluster.waitForTables((name, table) => name !== 'a' || laneRoutes(table, 'b') >= 1);

    await publishIntoCrash(a.mqttPort, 'crash-pub', 9, a);
    // b acknowledged its copy before a's publish completed: the live subscriber there has it already.
    expect(String((await receive(liveOnB, 10_000)).payload)).toBe('m1');

    const restarted = await cluster.startNode('a');
    await cluster.waitForTables((name, table) => name !== 'a' || laneRoutes(table, 'b') >= 1);
    await resend(restarted.mqttPort, 'crash-pub', 9);

    expect(await copiesWithin(liveOnB)).toEqual([]);
    expect(await drainSession(b.mqttPort, 'offline-on-b')).toEqual(['m1']);
    expect(await drainSession(restarted.mqttPort, 'sub-on-a')).toEqual(['m1']);
  }, 120_000);
});
