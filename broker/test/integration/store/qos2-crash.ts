import { expect } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BrokerProcess } from '../../harness/broker-process.js';
import { TestCluster } from '../../harness/cluster.js';
import { RawMqttClient } from '../../harness/mqtt-raw.js';

/**
 * The QoS 2 crash window at the publisher's node, shared by the tests of it: a node started with the test-only hook
 * MERIDIAN_TEST_CRASH_BEFORE_QOS2_MARK kills itself (SIGKILL) after the publish of a QoS 2 message on CRASH_TOPIC
 * committed for every subscriber and every other node, before the store marked it published.
 */
export const CRASH_ENV = 'MERIDIAN_TEST_CRASH_BEFORE_QOS2_MARK';
export const CRASH_TOPIC = 'crash/once';

/** Runs the registered clean-ups, last first. */
export type Cleanups = (() => Promise<void>)[];

/** A node on a fresh data dir that crashes on CRASH_TOPIC; the data dir and the node are cleaned up by `cleanups`. */
export async function crashingNode(cleanups: Cleanups, dirPrefix: string): Promise<{ node: BrokerProcess; dataDir: string }> {
  const dataDir = mkdtempSync(path.join(tmpdir(), dirPrefix));
  cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));
  const node = await BrokerProcess.start({ dataDir, env: { [CRASH_ENV]: CRASH_TOPIC } });
  cleanups.push(() => node.dispose());
  return { node, dataDir };
}

/** Cores `a` and `b`, both crashing on CRASH_TOPIC (a node restarted with `startNode` does not). */
export async function crashingCluster(cleanups: Cleanups): Promise<TestCluster> {
  process.env[CRASH_ENV] = CRASH_TOPIC;
  let cluster: TestCluster;
  try {
    cluster = await TestCluster.start([{ name: 'a', role: 'core' }, { name: 'b', role: 'core' }]);
  } finally {
    delete process.env[CRASH_ENV];
  }
  cleanups.push(() => cluster.dispose());
  return cluster;
}

/** Sends the first PUBLISH of `messageId` and waits for the node to kill itself before PUBREC. */
export async function publishIntoCrash(port: number, clientId: string, messageId: number, node: BrokerProcess): Promise<void> {
  const publisher = await RawMqttClient.connected(port, { clientId, clean: false });
  publisher.send({ cmd: 'publish', topic: CRASH_TOPIC, payload: Buffer.from('m1'), qos: 2, retain: false, dup: false, messageId });
  const exit = await Promise.race([node.exited(), new Promise((resolve) => setTimeout(() => resolve('timeout'), 15_000))]);
  expect(exit).not.toBe('timeout');
  expect(node.child.signalCode).toBe('SIGKILL');
  await publisher.destroy();
}

/** Reconnects the publisher and resends `messageId` with DUP 1, completing the QoS 2 flow. */
export async function resend(port: number, clientId: string, messageId: number): Promise<void> {
  const publisher = await RawMqttClient.connected(port, { clientId, clean: false });
  publisher.send({ cmd: 'publish', topic: CRASH_TOPIC, payload: Buffer.from('m1'), qos: 2, retain: false, dup: true, messageId });
  expect((await publisher.next('pubrec', 10_000)).messageId).toBe(messageId);
  publisher.send({ cmd: 'pubrel', messageId });
  await publisher.next('pubcomp', 10_000);
  await publisher.disconnect();
}
