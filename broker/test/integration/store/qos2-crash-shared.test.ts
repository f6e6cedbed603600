import { afterEach, describe, expect, it } from '@jest/globals';
import { BrokerProcess } from '../../harness/broker-process.js';
import { laneRoutes } from '../../harness/cluster.js';
import { RawMqttClient, subscribe } from '../../harness/mqtt-raw.js';
import { type Cleanups, crashingCluster, crashingNode, publishIntoCrash, resend } from './qos2-crash.js';

/**
 * The QoS 2 crash window at the publisher's node (see qos2-crash-window.test.ts) with a shared-subscription group of
 * persistent sessions: the republish after the crash must reach no member of the group a second time. The group's
 * copy keeps the publish identity and the node that queued it recorded the group (store README, "QoS 2 receive
 * state"); without that, the member choice (in turn, restarted with the node) queued it again for a member.
 */

const GROUP = '$share/g/crash/#';
const QUIET_MS = 1500;

const cleanups: Cleanups = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Stored sessions (offline) that are members of the group: each copy is queued for one of them. */
async function offlineMembers(port: number, ids: string[]): Promise<void> {
  for (const clientId of ids) {
    const client = await RawMqttClient.connected(port, { clientId, clean: false });
    await subscribe(client, { [GROUP]: 2 });
    await client.disconnect();
  }
}

/**
 * Connects each stored session and collects every PUBLISH it gets until QUIET_MS pass without a packet (its queue),
 * acknowledging each; a second queued copy may arrive before the first one's PUBREL, so packets are taken in any order.
 */
async function drain(port: number, ids: string[]): Promise<Record<string, string[]>> {
  const got: Record<string, string[]> = {};
  for (const clientId of ids) {
    const client = await RawMqttClient.connected(port, { clientId, clean: false });
    got[clientId] = [];
    for (let packet = await client.poll(QUIET_MS); packet !== undefined; packet = await client.poll(QUIET_MS)) {
      if (packet.cmd === 'pubrel') client.send({ cmd: 'pubcomp', messageId: packet.messageId as number });
      if (packet.cmd !== 'publish') continue;
      got[clientId].push(String(packet.payload));
      if (packet.qos === 1) client.send({ cmd: 'puback', messageId: packet.messageId as number });
      if (packet.qos === 2) client.send({ cmd: 'pubrec', messageId: packet.messageId as number });
    }
    await client.destroy();
  }
  return got;
}

const once = (got: Record<string, string[]>): string[] => Object.values(got).flat();

describe('QoS 2: kill -9 between the publish and the published mark, a shared group of persistent sessions', () => {
  it('single node: the group gets the republished message once', async () => {
    const { node: first, dataDir } = await crashingNode(cleanups, 'meridian-qos2-shared-');
    const members = ['member-1', 'member-2'];
    await offlineMembers(first.mqttPort, members);
    await publishIntoCrash(first.mqttPort, 'crash-pub', 7, first);

    const second = await BrokerProcess.start({ dataDir });
    cleanups.push(() => second.dispose());
    await resend(second.mqttPort, 'crash-pub', 7);
    const got = await drain(second.mqttPort, members);
    process.stdout.write(`qos2 crash, shared group on one node: ${JSON.stringify(got)}\n`);
    expect(once(got)).toEqual(['m1']);
  }, 90_000);

  it('cluster: the group\'s members on another node get the republished message once', async () => {
    const cluster = await crashingCluster(cleanups);
    const b = cluster.node('b');
    const members = ['member-b-1', 'member-b-2'];
    await offlineMembers(b.mqttPort, members);
    await cluster.waitForTables((name, table) => name !== 'a' || laneRoutes(table, 'b') >= 1);

    await publishIntoCrash(cluster.node('a').mqttPort, 'crash-pub', 9, cluster.node('a'));
    const restarted = await cluster.startNode('a');
    await cluster.waitForTables((name, table) => name !== 'a' || laneRoutes(table, 'b') >= 1);
    await resend(restarted.mqttPort, 'crash-pub', 9);
    const got = await drain(b.mqttPort, members);
    process.stdout.write(`qos2 crash, shared group on another node: ${JSON.stringify(got)}\n`);
    expect(once(got)).toEqual(['m1']);
  }, 120_000);
});
