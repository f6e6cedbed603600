import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces, tmpdir } from 'node:os';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { BrokerProcess } from '../../harness/broker-process.js';
import { hashPassword } from '../../../src/mqtt/auth/password.js';
import { ClientPool, closed, eventually, recorder, settle, subscribe } from './mqtt-clients.js';

const FAST = { N: 1024, r: 8, p: 1 };
const PASSWORDS = { alice: 'alice-pw', alex: 'alex-pw', bob: 'bob-pw', root: 'root-pw' } as const;
type UserName = keyof typeof PASSWORDS;

/** A non-loopback IPv4 address of this machine, to prove the local-only policy on a real non-loopback listener. */
const EXTERNAL_ADDRESS = Object.values(networkInterfaces()).flat()
  .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

async function writeUsers(file: string): Promise<void> {
  const entry = async (name: UserName, extra: string): Promise<string> =>
    `  - { username: ${name}, passwordHash: "${await hashPassword(PASSWORDS[name], FAST)}"${extra} }`;
  writeFileSync(file, ['users:',
    await entry('alice', ', tenant: acme'),
    await entry('alex', ', tenant: acme'),
    await entry('bob', ', tenant: globex'),
    await entry('root', ', superuser: true'),
    ''].join('\n'));
}

describe('authentication, ACL and tenant isolation (real broker, MQTT.js clients)', () => {
  let dir: string;
  let broker: BrokerProcess;
  let pool: ClientPool;
  let seq = 0;

  const login = (user: UserName, options: Record<string, unknown> = {}): Promise<MqttClient> =>
    pool.connect({ username: user, password: PASSWORDS[user], clientId: `${user}-${++seq}`, ...options });

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'meridian-sec-'));
    const usersFile = path.join(dir, 'users.yaml');
    await writeUsers(usersFile);
    broker = await BrokerProcess.start({
      configYaml: [
        'mqtt: { sysInterval: 1 }',
        'listeners:',
        '  - { name: mqtt, protocol: mqtt, host: 127.0.0.1, port: 0 }',
        ...(EXTERNAL_ADDRESS ? [`  - { name: external, protocol: mqtt, host: "${EXTERNAL_ADDRESS}", port: 0 }`] : []),
        'auth:',
        `  usersFile: ${usersFile}`,
        '  tenants: [{ name: acme }, { name: globex }]',
        '  aclDefault: allow',
        '  acl:',
        '    - { effect: deny, action: publish, topic: "readonly/#" }',
        '    - { effect: allow, action: all, topic: "home/%u/#" }',
        '    - { effect: deny, action: all, topic: "home/#" }',
        '    - { effect: allow, action: publish, topic: "devices/%c/state" }',
        '    - { effect: deny, action: publish, topic: "devices/+/state" }',
        '    - { effect: deny, action: subscribe, topic: "hidden/#" }',
      ].join('\n'),
    });
    pool = new ClientPool('127.0.0.1', () => broker.mqttPort);
  });
  afterAll(async () => {
    pool?.closeAll();
    await broker?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('authentication', () => {
    test('[MQTT-3.2.2-5] a wrong password or unknown user gets CONNACK 4 and the connection is closed', async () => {
      expect(await pool.connackCode({ username: 'alice', password: 'wrong' })).toBe(4);
      expect(await pool.connackCode({ username: 'nobody', password: 'alice-pw' })).toBe(4);
      expect(await pool.connackCode({ username: 'alice' })).toBe(4);
      expect(await pool.connackCode({ username: 'alice', password: PASSWORDS.alice })).toBe(0);
    });

    test('local-only mode: anonymous clients are accepted on the loopback listener', async () => {
      expect(await pool.connackCode({})).toBe(0);
    });

    (EXTERNAL_ADDRESS ? test : test.skip)('local-only mode: an anonymous client on a non-loopback listener gets CONNACK 5', async () => {
      const port = broker.listeners.find((l) => l.name === 'external')?.port as number;
      expect(await pool.connackCode({}, port, EXTERNAL_ADDRESS)).toBe(5);
      expect(await pool.connackCode({ username: 'bob', password: PASSWORDS.bob }, port, EXTERNAL_ADDRESS)).toBe(0);
    });

    test('refusals are counted by reason and the client list shows each client\'s tenant', async () => {
      const alice = await login('alice', { clientId: 'listed-alice' });
      const metrics = await broker.getJson<string>('/metrics');
      expect(metrics.body).toMatch(/meridian_connections_refused_total\{reason="bad_credentials"\} [1-9]/);
      const clients = await broker.getJson<{ items: { clientId: string; username?: string; tenant?: string }[] }>('/api/v1/clients');
      expect(clients.body.items.find((c) => c.clientId === 'listed-alice')).toMatchObject({ username: 'alice', tenant: 'acme' });
      alice.end(true);
    });
  });

  describe('ACL', () => {
    test('[MQTT-3.3.5-2] a PUBLISH denied by the ACL is not delivered and the connection is closed', async () => {
      const watcher = await login('alex');
      const seen = recorder(watcher);
      await subscribe(watcher, '#');
      const alice = await login('alice');
      alice.publish('readonly/x', 'nope');
      expect(await closed(alice)).toBe(true);
      await settle();
      expect(seen.filter((m) => m.topic === 'readonly/x')).toEqual([]);
      watcher.end(true);
    });

    test('[MQTT-3.9.3-2] %u: a user may use home/<own name>/# only; another user\'s home is refused with 0x80', async () => {
      const alice = await login('alice');
      expect(await subscribe(alice, 'home/alice/#')).toBe(1);
      expect(await subscribe(alice, 'home/alex/#')).toBe(128);
      expect(await subscribe(alice, 'home/+/inbox')).toBe(128);
      const seen = recorder(alice);
      await alice.publishAsync('home/alice/inbox', 'note to self', { qos: 1 });
      await eventually(() => seen.length === 1, 5000, 'delivery to home/alice');
      expect(seen[0]).toMatchObject({ topic: 'home/alice/inbox', payload: 'note to self' });
      const alex = await login('alex');
      alex.publish('home/alice/inbox', 'intrusion', { qos: 1 });
      expect(await closed(alex)).toBe(true);
      await settle();
      expect(seen.map((m) => m.payload)).toEqual(['note to self']);
      alice.end(true);
    });

    test('%c: a client may publish devices/<own client id>/state only', async () => {
      const sub = await login('alex');
      const seen = recorder(sub);
      await subscribe(sub, 'devices/#');
      const device = await login('alice', { clientId: 'dev-42' });
      await device.publishAsync('devices/dev-42/state', 'on', { qos: 1 });
      await eventually(() => seen.length === 1, 5000, 'own device state');
      device.publish('devices/dev-43/state', 'spoofed');
      expect(await closed(device)).toBe(true);
      await settle();
      expect(seen.map((m) => m.topic)).toEqual(['devices/dev-42/state']);
      sub.end(true);
    });

    test('a deny-subscribe rule inside a wider subscription is enforced per message', async () => {
      const alice = await login('alice');
      expect(await subscribe(alice, 'hidden/#')).toBe(128);
      expect(await subscribe(alice, 'h/#')).toBe(1);
      const wide = await login('alex');
      const seen = recorder(wide);
      expect(await subscribe(wide, '#')).toBe(1);
      await alice.publishAsync('hidden/plans', 'secret', { qos: 1 });
      await alice.publishAsync('h/visible', 'ok', { qos: 1 });
      await eventually(() => seen.some((m) => m.topic === 'h/visible'));
      await settle();
      expect(seen.map((m) => m.topic)).not.toContain('hidden/plans');
      alice.end(true);
      wide.end(true);
    });
  });

  describe('tenant isolation', () => {
    let acmeWatchers: { filter: string; seen: ReturnType<typeof recorder> }[];
    let globexAll: ReturnType<typeof recorder>;
    let rootAll: ReturnType<typeof recorder>;
    let acme: MqttClient;
    let globex: MqttClient;

    beforeAll(async () => {
      acmeWatchers = [];
      for (const filter of ['#', '+/#', '$share/g/#', '+']) {
        const client = await login('alex');
        const seen = recorder(client);
        expect(await subscribe(client, filter)).toBe(1);
        acmeWatchers.push({ filter, seen });
      }
      const globexWatcher = await login('bob');
      globexAll = recorder(globexWatcher);
      await subscribe(globexWatcher, '#');
      const root = await login('root');
      rootAll = recorder(root);
      await subscribe(root, '#');
      acme = await login('alice');
      globex = await login('bob');
    });

    test('#, +/#, $share/g/# and + from tenant A never receive tenant B\'s messages, including topics that name A', async () => {
      await globex.publishAsync('x', 'b1', { qos: 1 });
      await globex.publishAsync('acme/x', 'b2', { qos: 1 });
      await globex.publishAsync('acme', 'b3', { qos: 1 });
      await acme.publishAsync('x', 'a1', { qos: 1 });
      await eventually(() => acmeWatchers[0]?.seen.some((m) => m.payload === 'a1') === true);
      await eventually(() => globexAll.some((m) => m.payload === 'b3'));
      await settle();
      for (const { filter, seen } of acmeWatchers) {
        expect({ filter, foreign: seen.filter((m) => m.payload.startsWith('b')) }).toEqual({ filter, foreign: [] });
      }
      // tenant B sees its own topics with the names it used, A's topic name included
      expect(globexAll.filter((m) => m.payload.startsWith('b')).map((m) => m.topic)).toEqual(['x', 'acme/x', 'acme']);
      expect(globexAll.filter((m) => m.payload === 'a1')).toEqual([]);
      // A's subscribers see A's message without the mountpoint
      expect(acmeWatchers[0]?.seen.filter((m) => m.payload === 'a1').map((m) => m.topic)).toEqual(['x']);
    });

    test('a superuser sees every tenant under its mountpoint', async () => {
      await eventually(() => rootAll.some((m) => m.payload === 'a1') && rootAll.some((m) => m.payload === 'b2'));
      expect(rootAll.find((m) => m.payload === 'a1')?.topic).toBe('acme/x');
      expect(rootAll.find((m) => m.payload === 'b2')?.topic).toBe('globex/acme/x');
    });

    test('anonymous clients live in the default tenant', async () => {
      const anonymous = await pool.connect({ clientId: `anon-${++seq}` });
      await anonymous.publishAsync('hello', 'anon', { qos: 1 });
      await eventually(() => rootAll.some((m) => m.payload === 'anon'));
      expect(rootAll.find((m) => m.payload === 'anon')?.topic).toBe('default/hello');
      await settle();
      expect(globexAll.concat(...acmeWatchers.map((w) => w.seen)).filter((m) => m.payload === 'anon')).toEqual([]);
      anonymous.end(true);
    });

    test('[MQTT-3.9.3-2] $SYS/# is refused to tenants (0x80) and granted to superusers, who receive broker statistics', async () => {
      expect(await subscribe(acme, '$SYS/#')).toBe(128);
      expect(await subscribe(acme, '$share/g/$SYS/#')).toBe(128);
      const root = await login('root');
      const sys = recorder(root);
      expect(await subscribe(root, '$SYS/#')).toBe(1);
      await eventually(() => sys.some((m) => m.topic.startsWith('$SYS/test-node/')), 5000, '$SYS statistics');
      root.end(true);
    });

    test('[MQTT-3.3.5-2] publishing to a $-topic closes the connection and reaches nobody', async () => {
      const rogue = await login('bob');
      rogue.publish('$SYS/test-node/uptime', 'forged');
      expect(await closed(rogue)).toBe(true);
      await settle();
      expect(rootAll.concat(globexAll).filter((m) => m.payload === 'forged')).toEqual([]);
    });

    test('[MQTT-3.3.1-6] retained messages are per tenant: a new # subscriber gets only its own tenant\'s', async () => {
      await acme.publishAsync('r/state', 'acme-retained', { qos: 1, retain: true });
      await globex.publishAsync('r/state', 'globex-retained', { qos: 1, retain: true });
      const lateAcme = await login('alex');
      const lateGlobex = await login('bob');
      const acmeSeen = recorder(lateAcme);
      const globexSeen = recorder(lateGlobex);
      await subscribe(lateAcme, '#');
      await subscribe(lateGlobex, 'r/#');
      await eventually(() => acmeSeen.length > 0 && globexSeen.length > 0);
      await settle();
      expect(acmeSeen.filter((m) => m.retain)).toEqual([{ topic: 'r/state', payload: 'acme-retained', retain: true, qos: 1 }]);
      expect(globexSeen.filter((m) => m.retain)).toEqual([{ topic: 'r/state', payload: 'globex-retained', retain: true, qos: 1 }]);
      lateAcme.end(true);
      lateGlobex.end(true);
    });

    test('[MQTT-3.1.2-8] a will is published inside its tenant, under the topic the client gave', async () => {
      const doomed = await login('alice', { will: { topic: 'status/doomed', payload: Buffer.from('gone'), qos: 1, retain: false } });
      doomed.stream.destroy();
      await eventually(() => acmeWatchers[0]?.seen.some((m) => m.payload === 'gone') === true, 5000, 'will delivery');
      expect(acmeWatchers[0]?.seen.find((m) => m.payload === 'gone')?.topic).toBe('status/doomed');
      await eventually(() => rootAll.some((m) => m.payload === 'gone'));
      expect(rootAll.find((m) => m.payload === 'gone')?.topic).toBe('acme/status/doomed');
      await settle();
      expect(globexAll.filter((m) => m.payload === 'gone')).toEqual([]);
    });

    test('a will naming another tenant\'s topic stays in the own tenant; a $SYS will is refused with CONNACK 5', async () => {
      const doomed = await login('bob', { will: { topic: 'acme/status', payload: Buffer.from('fake-will'), qos: 0, retain: false } });
      doomed.stream.destroy();
      await eventually(() => globexAll.some((m) => m.payload === 'fake-will'));
      expect(globexAll.find((m) => m.payload === 'fake-will')?.topic).toBe('acme/status');
      await settle();
      expect(acmeWatchers.flatMap((w) => w.seen).filter((m) => m.payload === 'fake-will')).toEqual([]);
      expect(await pool.connackCode({ username: 'bob', password: PASSWORDS.bob, will: { topic: '$SYS/x', payload: Buffer.from('x'), qos: 0, retain: false } })).toBe(5);
    });

    test('[MQTT-3.10.4-2] after UNSUBSCRIBE x the mounted subscription is gone: no more deliveries', async () => {
      const client = await login('alice', { clientId: 'unsub-client' });
      const seen = recorder(client);
      await subscribe(client, 'u/#');
      await subscribe(client, '$share/g2/u/#');
      const subs = await broker.getJson<{ items: { clientId: string; filter: string; internalFilter: string }[] }>('/api/v1/subscriptions');
      expect(subs.body.items.filter((s) => s.clientId === 'unsub-client').map((s) => s.internalFilter).sort()).toEqual(['$share/g2/acme/u/#', 'acme/u/#']);
      // One copy for the ordinary subscription and one for the shared group (the client is its only member).
      await acme.publishAsync('u/1', 'before', { qos: 1 });
      await eventually(() => seen.length === 2);
      await client.unsubscribeAsync(['u/#', '$share/g2/u/#']);
      const after = await broker.getJson<{ items: { clientId: string }[] }>('/api/v1/subscriptions');
      expect(after.body.items.filter((s) => s.clientId === 'unsub-client')).toEqual([]);
      await acme.publishAsync('u/2', 'after', { qos: 1 });
      await settle();
      expect(seen.map((m) => m.payload)).toEqual(['before', 'before']);
      client.end(true);
    });

    test('[MQTT-3.1.2-4] a persistent session is restored inside the tenant and queued messages arrive unmounted', async () => {
      const first = await login('alice', { clientId: 'persistent-alice', clean: false });
      await subscribe(first, 'p/#', 1);
      await new Promise<void>((resolve) => first.end(false, {}, () => resolve()));
      await acme.publishAsync('p/1', 'while-away', { qos: 1 });
      await globex.publishAsync('p/1', 'foreign-while-away', { qos: 1 });
      const again = await pool.connect({ username: 'alice', password: PASSWORDS.alice, clientId: 'persistent-alice', clean: false });
      const seen = recorder(again);
      await eventually(() => seen.length > 0, 5000, 'queued message');
      await acme.publishAsync('p/2', 'after-restore', { qos: 1 });
      await eventually(() => seen.some((m) => m.payload === 'after-restore'));
      await settle();
      expect(seen.map((m) => [m.topic, m.payload])).toEqual([['p/1', 'while-away'], ['p/2', 'after-restore']]);
      again.end(true);
    });

    test('denials are counted in meridian_authorization_denied_total', async () => {
      const metrics = (await broker.getJson<string>('/metrics')).body;
      expect(metrics).toMatch(/meridian_authorization_denied_total\{action="subscribe"\} [1-9]/);
      expect(metrics).toMatch(/meridian_authorization_denied_total\{action="publish"\} [1-9]/);
    });
  });
});
