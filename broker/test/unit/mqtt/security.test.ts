import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AedesPublishPacket, Client, Subscription } from 'aedes';
import { BrokerMetrics } from '../../../src/admin/metrics.js';
import type { AuthConfig, ListenerConfig } from '../../../src/config/types.js';
import type { ConnectionInfo } from '../../../src/mqtt/listeners.js';
import { hashPassword } from '../../../src/mqtt/auth/password.js';
import { createSecurity, type Security } from '../../../src/mqtt/security.js';
import { captureLogger } from './log-capture.js';

/**
 * The hooks driven the way aedes 1.2 drives them (see node_modules/aedes/lib/handlers): preConnect while CONNECT
 * is parsed, then authenticate; packets the client sends pass the parser's 'packet' event before the authorize
 * hooks see them; restored subscriptions and wills reach the hooks without passing the parser.
 */
interface FakeClient {
  id: string;
  _parser: EventEmitter;
  _will?: { topic: string; payload: Buffer; qos: 0; retain: boolean } | null;
  broker: { maxTopicLevels: number };
  subscriptions: Record<string, { qos: number }>;
}

const FAST = { N: 1024, r: 8, p: 1 };
const LOOPBACK: ConnectionInfo = { listener: 'local', loopbackListener: true, remoteAddress: '127.0.0.1:5000' };
const EXTERNAL: ConnectionInfo = { listener: 'external', loopbackListener: false, remoteAddress: '192.0.2.9:5000' };
const CERT_LISTENER: ListenerConfig = {
  name: 'mtls', protocol: 'mqtts', host: '0.0.0.0', port: 8883, path: '/mqtt',
  tls: { certFile: 'c', keyFile: 'k', caFile: 'ca', requestClientCert: true, requireClientCert: true, useCertCommonNameAsUsername: true },
};

let dir: string;
let usersFile: string;
beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'meridian-security-'));
  usersFile = path.join(dir, 'users.yaml');
  writeFileSync(usersFile, [
    'users:',
    `  - { username: alice, tenant: acme, passwordHash: "${await hashPassword('alice-pw', FAST)}" }`,
    `  - { username: bob, tenant: globex, passwordHash: "${await hashPassword('bob-pw', FAST)}" }`,
    `  - { username: root, superuser: true, passwordHash: "${await hashPassword('root-pw', FAST)}" }`,
    '  - { username: sensor-1, tenant: acme }',
    '',
  ].join('\n'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function baseConfig(overrides: Partial<AuthConfig> = {}): AuthConfig {
  return { anonymousTenant: 'default', usersFile, tenants: [{ name: 'acme', mountpoint: 'acme/' }], acl: [], aclDefault: 'allow', ...overrides };
}

class Harness {
  readonly metrics = new BrokerMetrics();
  readonly log = captureLogger();
  readonly security: Security;
  private readonly infos = new Map<FakeClient, ConnectionInfo>();

  constructor(config: AuthConfig) {
    this.security = createSecurity(config, {
      logger: this.log.logger,
      metrics: this.metrics,
      connectionInfo: (client) => this.infos.get(client as unknown as FakeClient),
      listeners: [CERT_LISTENER],
    });
  }

  client(id: string, info: ConnectionInfo = LOOPBACK, will?: string): FakeClient {
    const client: FakeClient = {
      id, _parser: new EventEmitter(), broker: { maxTopicLevels: 10 }, subscriptions: {},
      _will: will === undefined ? null : { topic: will, payload: Buffer.from('bye'), qos: 0, retain: false },
    };
    this.infos.set(client, info);
    return client;
  }

  /** CONNECT: resolves with the CONNACK return code aedes would send. */
  connect(client: FakeClient, username?: string, password?: string): Promise<number> {
    const hooks = this.security.hooks;
    return new Promise((resolve) => {
      hooks.preConnect(asClient(client), { cmd: 'connect' } as never, () => {
        hooks.authenticate(asClient(client), username, password === undefined ? undefined : Buffer.from(password), (err, ok) => {
          resolve(ok && !err ? 0 : (err as { returnCode: number }).returnCode);
        });
      });
    });
  }

  /** A PUBLISH from the client: resolves with the internal topic, or the denial error. */
  publish(client: FakeClient, topic: string): Promise<{ topic?: string; error?: string }> {
    const packet = { cmd: 'publish', topic, payload: Buffer.from('x'), qos: 0, retain: false, dup: false };
    client._parser.emit('packet', packet);
    return this.authorizePublish(client, packet as never);
  }

  authorizePublish(client: FakeClient | null, packet: { topic: string }): Promise<{ topic?: string; error?: string }> {
    return new Promise((resolve) => {
      this.security.hooks.authorizePublish(client && asClient(client), packet as never, (err) => {
        resolve(err ? { error: err.message } : { topic: packet.topic });
      });
    });
  }

  /** A SUBSCRIBE from the client (or, with restored, a subscription aedes restores from the session store). */
  subscribe(client: FakeClient, filter: string, restored = false): Promise<string | undefined> {
    const sub: Subscription = { topic: filter, qos: 1 };
    if (!restored) client._parser.emit('packet', { cmd: 'subscribe', messageId: 1, subscriptions: [sub] });
    return new Promise((resolve) => {
      this.security.hooks.authorizeSubscribe(asClient(client), sub, (_err, granted) => resolve(granted ? granted.topic : undefined));
    });
  }

  unsubscribe(client: FakeClient, filters: string[]): { unsubscriptions: string[] } {
    const packet = { cmd: 'unsubscribe', messageId: 2, unsubscriptions: [...filters] };
    client._parser.emit('packet', packet);
    return packet;
  }

  forward(client: FakeClient, topic: string, qos: 0 | 1 | 2 = 0): { topic: string; qos: number } | null {
    const packet = { cmd: 'publish', topic, payload: Buffer.from('x'), qos, retain: false, dup: false, brokerId: 'b', brokerCounter: 1 };
    const result = this.security.hooks.authorizeForward(asClient(client), packet as unknown as AedesPublishPacket);
    return result ? { topic: result.topic, qos: result.qos } : null;
  }

  async counter(name: 'connectionsRefused' | 'authorizationDenied', label: string): Promise<number> {
    const values = (await this.metrics[name].get()).values;
    return values.filter((v) => Object.values(v.labels).includes(label)).reduce((sum, v) => sum + v.value, 0);
  }
}

function asClient(client: FakeClient): Client {
  return client as unknown as Client;
}

describe('authentication', () => {
  let h: Harness;
  beforeEach(() => { h = new Harness(baseConfig()); });
  afterEach(() => h.security.close());

  test('[MQTT-3.1.4-4] a user with the right password is accepted into its tenant', async () => {
    const c = h.client('c1');
    expect(await h.connect(c, 'alice', 'alice-pw')).toBe(0);
    expect(h.security.identityOf(asClient(c))).toEqual({ username: 'alice', tenant: 'acme', mountpoint: 'acme/', superuser: false, listener: 'local' });
  });

  test.each([
    ['a wrong password', 'alice', 'nope'],
    ['an unknown user', 'mallory', 'alice-pw'],
    ['no password', 'alice', undefined],
    ['a password for a certificate-only user', 'sensor-1', 'x'],
  ])('%s is refused with CONNACK 4 (bad user name or password)', async (_what, username, password) => {
    expect(await h.connect(h.client('c'), username, password)).toBe(4);
    expect(await h.counter('connectionsRefused', 'bad_credentials')).toBe(1);
  });

  test('local-only mode: anonymous clients are accepted on loopback listeners only (CONNACK 5 elsewhere)', async () => {
    expect(await h.connect(h.client('local'), undefined)).toBe(0);
    expect(await h.connect(h.client('remote', EXTERNAL), undefined)).toBe(5);
    expect(await h.counter('connectionsRefused', 'anonymous_not_allowed')).toBe(1);
    expect(await h.connect(h.client('remote-user', EXTERNAL), 'alice', 'alice-pw')).toBe(0);
  });

  test('allowAnonymous overrides local-only mode in both directions', async () => {
    const open = new Harness(baseConfig({ allowAnonymous: true }));
    const closed = new Harness(baseConfig({ allowAnonymous: false }));
    expect(await open.connect(open.client('a', EXTERNAL))).toBe(0);
    expect(await closed.connect(closed.client('b', LOOPBACK))).toBe(5);
    open.security.close();
    closed.security.close();
  });

  test('anonymous clients belong to the anonymous tenant, mounted at <name>/', async () => {
    const c = h.client('anon');
    await h.connect(c);
    expect(h.security.identityOf(asClient(c))).toMatchObject({ username: undefined, tenant: 'default', mountpoint: 'default/' });
    expect(await h.publish(c, 'x')).toEqual({ topic: 'default/x' });
  });

  test('without a users file a username cannot be verified: the client is anonymous', async () => {
    const noUsers = new Harness(baseConfig({ usersFile: undefined }));
    const c = noUsers.client('c');
    expect(await noUsers.connect(c, 'root', 'whatever')).toBe(0);
    expect(noUsers.security.identityOf(asClient(c))).toMatchObject({ username: undefined, superuser: false, mountpoint: 'default/' });
    expect(await noUsers.connect(noUsers.client('d', EXTERNAL), 'root', 'whatever')).toBe(5);
  });

  test('a verified certificate CN is the username on a listener with useCertCommonNameAsUsername', async () => {
    const mtls: ConnectionInfo = { listener: 'mtls', loopbackListener: false, remoteAddress: 'x', verifiedCertCommonName: 'sensor-1' };
    const c = h.client('dev', mtls);
    expect(await h.connect(c, 'ignored', 'ignored')).toBe(0);
    expect(h.security.identityOf(asClient(c))).toMatchObject({ username: 'sensor-1', tenant: 'acme', mountpoint: 'acme/' });
  });

  test('an unknown CN is anonymous where anonymous clients are allowed (keeping its name for %u), refused elsewhere', async () => {
    const unknownCn: ConnectionInfo = { listener: 'mtls', loopbackListener: false, remoteAddress: 'x', verifiedCertCommonName: 'stranger' };
    expect(await h.connect(h.client('s', unknownCn))).toBe(5);
    expect(await h.counter('connectionsRefused', 'unknown_certificate_user')).toBe(1);
    const open = new Harness(baseConfig({ allowAnonymous: true }));
    const c = open.client('s', unknownCn);
    expect(await open.connect(c)).toBe(0);
    expect(open.security.identityOf(asClient(c))).toMatchObject({ username: 'stranger', tenant: 'default' });
    open.security.close();
  });

  test('a CN on a listener without useCertCommonNameAsUsername is ignored', async () => {
    const c = h.client('c', { ...EXTERNAL, verifiedCertCommonName: 'root' });
    expect(await h.connect(c)).toBe(5);
  });
});

describe('tenant isolation', () => {
  let h: Harness;
  let alice: FakeClient;
  beforeEach(async () => {
    h = new Harness(baseConfig());
    alice = h.client('alice-1');
    await h.connect(alice, 'alice', 'alice-pw');
  });
  afterEach(() => h.security.close());

  test('PUBLISH topics are mounted; a topic naming another tenant stays inside the own tenant', async () => {
    expect(await h.publish(alice, 'sensors/1')).toEqual({ topic: 'acme/sensors/1' });
    expect(await h.publish(alice, 'globex/orders')).toEqual({ topic: 'acme/globex/orders' });
    expect(await h.publish(alice, 'acme/x')).toEqual({ topic: 'acme/acme/x' });
  });

  test('[MQTT-3.3.5-2] a PUBLISH to a $-topic is refused (aedes then closes the connection)', async () => {
    for (const topic of ['$SYS/broker/x', '$share/g/x', '$anything']) {
      expect((await h.publish(alice, topic)).error).toMatch(/not allowed: \$-topics are reserved/);
    }
    expect(await h.counter('authorizationDenied', 'publish')).toBe(3);
  });

  test.each([
    ['#', 'acme/#'],
    ['+/#', 'acme/+/#'],
    ['globex/#', 'acme/globex/#'],
    ['$share/g/#', '$share/g/acme/#'],
    ['$share/g/+/temp', '$share/g/acme/+/temp'],
  ])('SUBSCRIBE %s is mounted as %s', async (filter, internal) => {
    expect(await h.subscribe(alice, filter)).toBe(internal);
  });

  test.each(['$SYS/#', '$SYS/+/uptime', '$share/g/$SYS/#', '$share/g', '$share//x', '$share/g+/x', '$foo'])(
    '[MQTT-3.8.4-?] SUBSCRIBE %s is refused (SUBACK 0x80)', async (filter) => {
      expect(await h.subscribe(alice, filter)).toBeUndefined();
      expect(await h.counter('authorizationDenied', 'subscribe')).toBe(1);
    });

  test('a denied filter is still mounted in place, because aedes persists every filter of the packet', async () => {
    const sub: Subscription = { topic: '$SYS/#', qos: 0 };
    alice._parser.emit('packet', { cmd: 'subscribe', subscriptions: [sub] });
    await new Promise((resolve) => h.security.hooks.authorizeSubscribe(asClient(alice), sub, resolve));
    expect(sub.topic).toBe('acme/$SYS/#');
    // restored from the session store later: denied again, never unmounted into $SYS
    expect(await h.subscribe(alice, 'acme/$SYS/#', true)).toBeUndefined();
  });

  test('restored subscriptions are already internal: kept as they are when inside the mountpoint, denied outside', async () => {
    expect(await h.subscribe(alice, 'acme/sensors/#', true)).toBe('acme/sensors/#');
    expect(await h.subscribe(alice, '$share/g/acme/#', true)).toBe('$share/g/acme/#');
    expect(await h.subscribe(alice, 'globex/#', true)).toBeUndefined();
    expect(await h.subscribe(alice, '#', true)).toBeUndefined();
  });

  test('UNSUBSCRIBE filters are mounted before aedes handles the packet', () => {
    expect(h.unsubscribe(alice, ['x/#', '$share/g/y']).unsubscriptions).toEqual(['acme/x/#', '$share/g/acme/y']);
  });

  test('an UNSUBSCRIBE parsed before authentication finished is mounted once the tenant is known', async () => {
    const late = h.client('late');
    const done = h.connect(late, 'alice', 'alice-pw');
    const early = h.unsubscribe(late, ['x']);
    expect(early.unsubscriptions).toEqual(['x']);
    await done;
    expect(early.unsubscriptions).toEqual(['acme/x']);
  });

  test('outgoing messages are unmounted; anything outside the mountpoint is never forwarded', async () => {
    expect(h.forward(alice, 'acme/sensors/1')).toEqual({ topic: 'sensors/1', qos: 0 });
    expect(h.forward(alice, 'globex/sensors/1')).toBeNull();
    expect(h.forward(alice, 'acme')).toBeNull();
    expect(h.forward(alice, 'acmex/y')).toBeNull();
    expect(h.forward(alice, '$SYS/node/uptime')).toBeNull();
    expect(h.forward(alice, 'acme/$SYS/x')).toBeNull();
    expect(await h.counter('authorizationDenied', 'forward')).toBe(5);
  });

  test('forwarding only unmounts: the delivery QoS was already chosen by aedes over every matching subscription', () => {
    // [MQTT-3.8.4-6]/[MQTT-3.3.5-1] are applied by the patched aedes (lib/meridian-qos.js) before this hook runs.
    alice.subscriptions['acme/exact'] = { qos: 0 };
    expect(h.forward(alice, 'acme/exact', 1)).toEqual({ topic: 'exact', qos: 1 });
  });

  test('a mounted topic deeper than maxTopicLevels is refused instead of crashing the router', async () => {
    const nine = 'a/b/c/d/e/f/g/h/i';
    expect((await h.publish(alice, nine)).topic).toBe(`acme/${nine}`);
    expect((await h.publish(alice, `${nine}/j`)).error).toMatch(/too many topic levels/);
    expect(await h.subscribe(alice, `${nine}/j`)).toBeUndefined();
  });

  test('a client that never authenticated gets nothing', async () => {
    const stranger = h.client('stranger');
    h.security.hooks.preConnect(asClient(stranger), { cmd: 'connect' } as never, () => undefined);
    expect((await h.publish(stranger, 'x')).error).toMatch(/not authenticated/);
    expect(await h.subscribe(stranger, 'x')).toBeUndefined();
    expect(h.forward(stranger, 'default/x')).toBeNull();
  });
});

test('fails closed when preConnect was not given to aedes: client packets cannot be told from internal ones', async () => {
  const h = new Harness(baseConfig());
  const c = h.client('c');
  await new Promise((resolve) => h.security.hooks.authenticate(asClient(c), 'alice', Buffer.from('alice-pw'), resolve));
  expect((await h.publish(c, 'x')).error).toMatch(/preConnect/);
  expect(await h.subscribe(c, '#')).toBeUndefined();
  h.security.close();
});

describe('superusers', () => {
  test('have no mountpoint, may use $SYS and see every tenant\'s internal topics', async () => {
    const h = new Harness(baseConfig({ aclDefault: 'deny' }));
    const root = h.client('root');
    expect(await h.connect(root, 'root', 'root-pw')).toBe(0);
    expect(h.security.identityOf(asClient(root))).toMatchObject({ superuser: true, mountpoint: '', tenant: 'default' });
    expect(await h.subscribe(root, '$SYS/#')).toBe('$SYS/#');
    expect(await h.subscribe(root, '#')).toBe('#');
    expect(await h.publish(root, 'acme/x')).toEqual({ topic: 'acme/x' });
    expect(h.forward(root, 'globex/orders')).toEqual({ topic: 'globex/orders', qos: 0 });
    expect(h.forward(root, '$SYS/n/uptime')).toEqual({ topic: '$SYS/n/uptime', qos: 0 });
    h.security.close();
  });
});

describe('wills', () => {
  let h: Harness;
  beforeEach(() => {
    h = new Harness(baseConfig({ acl: [{ effect: 'deny', action: 'publish', topic: 'forbidden/#' }] }));
  });
  afterEach(() => h.security.close());

  test('the will topic is mounted at CONNECT, so aedes stores and publishes the internal topic', async () => {
    const c = h.client('w', LOOPBACK, 'status/w');
    expect(await h.connect(c, 'alice', 'alice-pw')).toBe(0);
    expect(c._will?.topic).toBe('acme/status/w');
    // at disconnect aedes authorizes the same will object again: it must not be mounted twice
    expect(await h.authorizePublish(c, c._will as { topic: string })).toEqual({ topic: 'acme/status/w' });
    // a will aedes takes from the store after a crash has no connected client, or a new one
    expect(await h.authorizePublish(null, { topic: 'acme/status/w' })).toEqual({ topic: 'acme/status/w' });
  });

  test.each([['$SYS/x'], ['forbidden/x']])('a will to %s is refused with CONNACK 5', async (topic) => {
    expect(await h.connect(h.client('w', LOOPBACK, topic), 'alice', 'alice-pw')).toBe(5);
    expect(await h.counter('connectionsRefused', 'will_not_authorized')).toBe(1);
  });
});

describe('ACL with %u and %c inside a tenant', () => {
  test('rules apply to the client view of topics, with substitution and tenant restriction', async () => {
    const h = new Harness(baseConfig({
      aclDefault: 'deny',
      acl: [
        { effect: 'allow', action: 'all', topic: 'users/%u/#' },
        { effect: 'allow', action: 'publish', topic: 'clients/%c/status' },
        { effect: 'deny', action: 'subscribe', topic: 'broadcast/secret' },
        { effect: 'allow', action: 'subscribe', topic: 'broadcast/#', tenants: ['acme'] },
      ],
    }));
    const alice = h.client('phone');
    const bob = h.client('laptop');
    await h.connect(alice, 'alice', 'alice-pw');
    await h.connect(bob, 'bob', 'bob-pw');
    expect(await h.publish(alice, 'users/alice/x')).toEqual({ topic: 'acme/users/alice/x' });
    expect((await h.publish(alice, 'users/bob/x')).error).toMatch(/denied by ACL/);
    expect(await h.publish(alice, 'clients/phone/status')).toEqual({ topic: 'acme/clients/phone/status' });
    expect((await h.publish(alice, 'clients/laptop/status')).error).toMatch(/denied by ACL/);
    expect(await h.subscribe(alice, 'broadcast/#')).toBe('acme/broadcast/#');
    expect(await h.subscribe(bob, 'broadcast/#')).toBeUndefined();
    expect(h.forward(alice, 'acme/broadcast/news')?.topic).toBe('broadcast/news');
    expect(h.forward(alice, 'acme/broadcast/secret')).toBeNull();
    expect(await h.counter('authorizationDenied', 'receive')).toBe(1);
    h.security.close();
  });
});
