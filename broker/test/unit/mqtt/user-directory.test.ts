import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { hashPassword } from '../../../src/mqtt/auth/password.js';
import { TenantDirectory } from '../../../src/mqtt/auth/tenancy.js';
import { UserDirectory } from '../../../src/mqtt/auth/user-directory.js';
import { captureLogger } from './log-capture.js';
import { SecretVolume } from '../../integration/security/secret-volume.js';

const FAST = { N: 1024, r: 8, p: 1 };
const tenants = new TenantDirectory([], 'default');

async function usersYaml(entries: { username: string; password?: string; tenant?: string }[]): Promise<string> {
  const lines = ['users:'];
  for (const e of entries) {
    lines.push(`  - username: ${e.username}`);
    if (e.password !== undefined) lines.push(`    passwordHash: ${await hashPassword(e.password, FAST)}`);
    if (e.tenant !== undefined) lines.push(`    tenant: ${e.tenant}`);
  }
  return `${lines.join('\n')}\n`;
}

async function eventually(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('users directory', () => {
  let dir: string;
  let directory: UserDirectory | undefined;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'meridian-users-'));
  });
  afterEach(() => {
    directory?.close();
    directory = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  test('authenticates with the right password only, and not unknown or certificate-only users', async () => {
    const volume = new SecretVolume(dir);
    volume.publish(await usersYaml([{ username: 'alice', password: 'pw-a', tenant: 'acme' }, { username: 'device' }]));
    directory = UserDirectory.open({ file: volume.file, tenants, logger: captureLogger().logger });
    expect(directory.size).toBe(2);
    expect((await directory.authenticate('alice', Buffer.from('pw-a')))?.tenant).toBe('acme');
    expect(await directory.authenticate('alice', Buffer.from('pw-b'))).toBeUndefined();
    expect(await directory.authenticate('mallory', Buffer.from('pw-a'))).toBeUndefined();
    expect(await directory.authenticate('device', Buffer.from(''))).toBeUndefined();
    // second success is served from the verified-password cache and must still check the password
    expect((await directory.authenticate('alice', Buffer.from('pw-a')))?.username).toBe('alice');
    expect(await directory.authenticate('alice', Buffer.from('pw-a '))).toBeUndefined();
  });

  test('a Secret update (symlink swap) is picked up without restarting; the old password stops working', async () => {
    const volume = new SecretVolume(dir);
    volume.publish(await usersYaml([{ username: 'alice', password: 'old' }]));
    const { logger, lines } = captureLogger();
    directory = UserDirectory.open({ file: volume.file, tenants, logger, pollIntervalMs: 60_000 });
    expect(await directory.authenticate('alice', Buffer.from('old'))).toBeDefined();

    volume.publish(await usersYaml([{ username: 'alice', password: 'new' }, { username: 'bob', password: 'b' }]));
    await eventually(() => directory?.lookup('bob') !== undefined);
    expect(await directory.authenticate('alice', Buffer.from('old'))).toBeUndefined();
    expect(await directory.authenticate('alice', Buffer.from('new'))).toBeDefined();
    expect(lines.some((l) => l.msg === 'users file reloaded' && l.users === 2)).toBe(true);
  });

  test('a bad update is logged with the entry and reason, and the previous users stay in force', async () => {
    const volume = new SecretVolume(dir);
    volume.publish(await usersYaml([{ username: 'alice', password: 'pw' }]));
    const { logger, lines } = captureLogger();
    directory = UserDirectory.open({ file: volume.file, tenants, logger, pollIntervalMs: 60_000 });

    volume.publish('users:\n  - username: bob\n    passwordHash: plaintext\n');
    await eventually(() => lines.some((l) => l.msg === 'users file rejected: keeping the previous users'));
    const rejected = lines.find((l) => l.msg === 'users file rejected: keeping the previous users');
    expect(rejected?.issues).toEqual([{ index: 0, reason: expect.stringContaining("passwordHash of 'bob'") }]);
    expect(directory.lookup('bob')).toBeUndefined();
    expect(await directory.authenticate('alice', Buffer.from('pw'))).toBeDefined();
    expect(directory.reload()).toBe('rejected');
    expect(lines.filter((l) => l.msg === 'users file rejected: keeping the previous users')).toHaveLength(1);
  });

  test('a plain file rewritten in place is reloaded too, and an unchanged file is not re-parsed', async () => {
    const file = path.join(dir, 'users.yaml');
    writeFileSync(file, await usersYaml([{ username: 'alice', password: 'pw' }]));
    directory = UserDirectory.open({ file, tenants, logger: captureLogger().logger, pollIntervalMs: 60_000 });
    expect(directory.reload()).toBe('unchanged');
    writeFileSync(file, await usersYaml([{ username: 'carol', password: 'pw' }]));
    await eventually(() => directory?.lookup('carol') !== undefined);
    expect(directory.lookup('alice')).toBeUndefined();
  });

  test('a missing or invalid file at start is an error naming the file', () => {
    expect(() => UserDirectory.open({ file: path.join(dir, 'nope.yaml'), tenants, logger: captureLogger().logger }))
      .toThrow(/cannot read users file .*nope\.yaml/);
    writeFileSync(path.join(dir, 'bad.yaml'), 'users:\n  - username: a\n    superuser: maybe\n');
    expect(() => UserDirectory.open({ file: path.join(dir, 'bad.yaml'), tenants, logger: captureLogger().logger }))
      .toThrow(/users\[0\]: superuser must be true or false/);
  });
});
