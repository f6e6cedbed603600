import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BrokerProcess } from '../../harness/broker-process.js';
import { hashPassword } from '../../../src/mqtt/auth/password.js';
import { ClientPool, eventually, recorder, subscribe } from './mqtt-clients.js';
import { SecretVolume } from './secret-volume.js';

const FAST = { N: 1024, r: 8, p: 1 };

async function usersYaml(users: Record<string, string>): Promise<string> {
  const lines = ['users:'];
  for (const [username, password] of Object.entries(users)) {
    lines.push(`  - { username: ${username}, tenant: acme, passwordHash: "${await hashPassword(password, FAST)}" }`);
  }
  return `${lines.join('\n')}\n`;
}

describe('users file hot reload (Secret volume symlink swap), anonymous access off', () => {
  let dir: string;
  let volume: SecretVolume;
  let broker: BrokerProcess;
  let pool: ClientPool;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'meridian-reload-'));
    volume = new SecretVolume(path.join(dir));
    volume.publish(await usersYaml({ alice: 'first' }));
    broker = await BrokerProcess.start({
      configYaml: ['auth:', '  allowAnonymous: false', `  usersFile: ${volume.file}`, '  tenants: [{ name: acme }]'].join('\n'),
    });
    pool = new ClientPool('127.0.0.1', () => broker.mqttPort);
  });
  afterAll(async () => {
    pool?.closeAll();
    await broker?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  test('[MQTT-3.2.2-5] with allowAnonymous: false an anonymous client gets CONNACK 5, even on loopback', async () => {
    expect(await pool.connackCode({})).toBe(5);
  });

  test('an updated Secret takes effect without a restart and without dropping connected clients', async () => {
    const alice = await pool.connect({ username: 'alice', password: 'first', clientId: 'alice-stays' });
    const seen = recorder(alice);
    await subscribe(alice, 'chat/#');
    expect(await pool.connackCode({ username: 'carol', password: 'c' })).toBe(4);

    volume.publish(await usersYaml({ alice: 'second', carol: 'c' }));
    await eventually(async () => (await pool.connackCode({ username: 'carol', password: 'c' })) === 0, 10000, 'carol accepted');
    expect(await pool.connackCode({ username: 'alice', password: 'first' })).toBe(4);
    expect(await pool.connackCode({ username: 'alice', password: 'second' })).toBe(0);

    expect(alice.connected).toBe(true);
    const carol = await pool.connect({ username: 'carol', password: 'c' });
    await carol.publishAsync('chat/hello', 'hi alice', { qos: 1 });
    await eventually(() => seen.length === 1, 5000, 'delivery to the client connected before the reload');
    expect(seen[0]).toMatchObject({ topic: 'chat/hello', payload: 'hi alice' });
    expect(broker.logs.some((l) => l.includes('"users file reloaded"'))).toBe(true);
  });

  test('a bad update is logged with the entry index and reason, and the previous users stay in force', async () => {
    volume.publish('users:\n  - { username: dave, passwordHash: hunter2 }\n');
    await eventually(() => broker.logs.some((l) => l.includes('"users file rejected: keeping the previous users"')), 10000, 'rejection logged');
    const line = broker.logs.find((l) => l.includes('"users file rejected: keeping the previous users"')) as string;
    expect(JSON.parse(line).issues).toEqual([{ index: 0, reason: expect.stringContaining("passwordHash of 'dave'") }]);
    expect(await pool.connackCode({ username: 'carol', password: 'c' })).toBe(0);
    expect(await pool.connackCode({ username: 'dave', password: 'hunter2' })).toBe(4);
  });
});
