import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { BrokerProcess } from '../../harness/broker-process.js';
import { hashPassword } from '../../../src/mqtt/auth/password.js';
import { ClientPool } from '../security/mqtt-clients.js';
import { ShareTally, until } from './shared-tally.js';

const ids = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

async function publishAll(client: MqttClient, topic: (i: number) => string, payloads: readonly string[], qos: 0 | 1 | 2): Promise<void> {
  for (const [i, payload] of payloads.entries()) await client.publishAsync(topic(i), payload, { qos });
}

describe('shared subscriptions on a standalone node', () => {
  let broker: BrokerProcess;
  let pool: ClientPool;
  let seq = 0;
  const connect = (options: Record<string, unknown> = {}): Promise<MqttClient> => pool.connect({ clientId: `shared-${++seq}`, ...options });

  beforeAll(async () => {
    broker = await BrokerProcess.start({ nodeName: 'shared-standalone' });
    pool = new ClientPool('127.0.0.1', () => broker.mqttPort);
  });
  afterAll(async () => {
    pool?.closeAll();
    await broker?.dispose();
  });

  test.each([1, 2] as const)('3 members get each of 300 QoS %i messages exactly once in total; an ordinary subscriber gets all 300', async (qos) => {
    const tally = new ShareTally();
    const members = await Promise.all([1, 2, 3].map(() => connect()));
    for (const [i, member] of members.entries()) {
      expect((await member.subscribeAsync(`$share/workers/q${qos}/jobs/+`, { qos }))[0]?.qos).toBe(qos);
      tally.member(`m${i}`, member);
    }
    const ordinary = await connect();
    await ordinary.subscribeAsync(`q${qos}/jobs/+`, { qos });
    const everything = new ShareTally();
    everything.member('ordinary', ordinary);
    const publisher = await connect();
    const expected = ids(`q${qos}`, 300);
    await publishAll(publisher, (i) => `q${qos}/jobs/${i % 7}`, expected, qos);
    await until(() => tally.total >= 300 && everything.total >= 300, 15000, () => JSON.stringify({ members: tally.counts(), ordinary: everything.total }));
    expect(tally.check(expected)).toEqual({ duplicates: [], lost: [] });
    expect(tally.total).toBe(300);
    expect(everything.check(expected)).toEqual({ duplicates: [], lost: [] });
    expect(everything.total).toBe(300);
    for (const count of Object.values(tally.counts())) expect(count).toBeGreaterThanOrEqual(80);
  });

  test('members receive at min(message QoS, granted QoS)', async () => {
    const member = await connect();
    await member.subscribeAsync('$share/g/downgrade/t', { qos: 1 });
    const got: number[] = [];
    member.on('message', (_topic, _payload, packet) => got.push(packet.qos));
    const publisher = await connect();
    await publisher.publishAsync('downgrade/t', 'two', { qos: 2 });
    await publisher.publishAsync('downgrade/t', 'zero', { qos: 0 });
    await until(() => got.length >= 2, 5000, () => JSON.stringify(got));
    expect(got).toEqual([1, 0]);
  });

  test('with no member connected, an offline persistent member gets the messages queued and receives them on reconnect', async () => {
    const clientId = `persistent-member-${Date.now()}`;
    const first = await connect({ clientId, clean: false });
    await first.subscribeAsync('$share/p/persist/+', { qos: 1 });
    await first.endAsync();
    const publisher = await connect();
    const expected = ids('offline', 20);
    await publishAll(publisher, (i) => `persist/${i}`, expected, 1);
    const tally = new ShareTally();
    const again = await connect({ clientId, clean: false });
    tally.member('again', again);
    await until(() => tally.total >= 20, 10000, () => JSON.stringify(tally.counts()));
    expect(tally.check(expected)).toEqual({ duplicates: [], lost: [] });
    // Connected again, it is a live member like any other: one live member gets everything.
    const live = ids('live', 10);
    await publishAll(publisher, (i) => `persist/${i}`, live, 1);
    await until(() => tally.total >= 30, 10000, () => JSON.stringify(tally.counts()));
    expect(tally.check([...expected, ...live])).toEqual({ duplicates: [], lost: [] });
    await again.unsubscribeAsync('$share/p/persist/+');
  });
});

describe('shared subscriptions of tenants (mounted filters)', () => {
  const FAST = { N: 1024, r: 8, p: 1 };
  const PASSWORDS = { alice: 'alice-pw', alex: 'alex-pw', bob: 'bob-pw' } as const;
  let dir: string;
  let broker: BrokerProcess;
  let pool: ClientPool;
  const login = (user: keyof typeof PASSWORDS): Promise<MqttClient> =>
    pool.connect({ username: user, password: PASSWORDS[user], clientId: `${user}-${Math.random().toString(36).slice(2)}` });

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'meridian-shared-tenants-'));
    const usersFile = path.join(dir, 'users.yaml');
    const entry = async (name: keyof typeof PASSWORDS, tenant: string): Promise<string> =>
      `  - { username: ${name}, passwordHash: "${await hashPassword(PASSWORDS[name], FAST)}", tenant: ${tenant} }`;
    writeFileSync(usersFile, ['users:', await entry('alice', 'acme'), await entry('alex', 'acme'), await entry('bob', 'globex'), ''].join('\n'));
    broker = await BrokerProcess.start({
      nodeName: 'shared-tenants',
      configYaml: [
        'listeners:',
        '  - { name: mqtt, protocol: mqtt, host: 127.0.0.1, port: 0 }',
        'auth:',
        `  usersFile: ${usersFile}`,
        '  allowAnonymous: false',
        '  tenants: [{ name: acme }, { name: globex }]',
        '  aclDefault: allow',
      ].join('\n'),
    });
    pool = new ClientPool('127.0.0.1', () => broker.mqttPort);
  });
  afterAll(async () => {
    pool?.closeAll();
    await broker?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  test('one group name in two tenants is two groups; members see their own topic names', async () => {
    const acme = new ShareTally();
    const globex = new ShareTally();
    const topics: string[] = [];
    for (const user of ['alice', 'alex'] as const) {
      const client = await login(user);
      await client.subscribeAsync('$share/g/sensors/+', { qos: 1 });
      client.on('message', (topic) => topics.push(topic));
      acme.member(user, client);
    }
    const bob = await login('bob');
    await bob.subscribeAsync('$share/g/sensors/+', { qos: 1 });
    globex.member('bob', bob);
    const acmePublisher = await login('alice');
    const expected = ids('acme', 50);
    await publishAll(acmePublisher, (i) => `sensors/${i % 3}`, expected, 1);
    const globexOnly = ids('globex', 10);
    await publishAll(bob, () => 'sensors/9', globexOnly, 1);
    await until(() => acme.total >= 50 && globex.total >= 10, 10000, () => JSON.stringify({ acme: acme.counts(), globex: globex.counts() }));
    expect(acme.check(expected)).toEqual({ duplicates: [], lost: [] });
    expect(acme.total).toBe(50);
    expect(globex.check(globexOnly)).toEqual({ duplicates: [], lost: [] });
    expect(globex.total).toBe(10);
    expect(new Set(topics)).toEqual(new Set(['sensors/0', 'sensors/1', 'sensors/2']));
    expect(Object.values(acme.counts()).every((n) => n > 0)).toBe(true);
  });
});
