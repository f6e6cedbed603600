import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { runPasswdCommand, type PasswdIo } from '../../../src/cli/passwd.js';
import { UsageError } from '../../../src/cli/flags.js';
import { parsePasswordHash, verifyPassword } from '../../../src/mqtt/auth/password.js';
import { parseUsersFile } from '../../../src/mqtt/auth/users-file.js';

function io(stdinText = ''): PasswdIo & { out: () => string; err: () => string } {
  const stdin = new PassThrough();
  stdin.end(stdinText);
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const text = (s: PassThrough) => (): string => (s.read() as Buffer | null)?.toString() ?? '';
  return { stdin, stdout, stderr, out: text(stdout), err: text(stderr) };
}

describe('meridian passwd', () => {
  let dir: string;
  let file: string;
  const users = () => parseUsersFile(readFileSync(file, 'utf8'), { source: file });
  const cheap = ['--cost', '1024'];

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'meridian-passwd-'));
    file = path.join(dir, 'users.yaml');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('creates the file (mode 0600) with a user whose password comes from stdin', async () => {
    const streams = io('s3cret\n');
    expect(await runPasswdCommand([file, 'alice', '--tenant', 'acme', ...cheap], streams)).toBe(0);
    expect(streams.out()).toContain("added user 'alice'");
    const [alice] = users();
    expect(alice).toMatchObject({ username: 'alice', tenant: 'acme', superuser: false });
    await expect(verifyPassword('s3cret', parsePasswordHash(alice?.passwordHashText as string))).resolves.toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['users.yaml']);
  });

  test('updates a password, keeping the tenant; flags set and clear superuser; --password works too', async () => {
    await runPasswdCommand([file, 'alice', '--tenant', 'acme', '--password', 'one', ...cheap], io());
    await runPasswdCommand([file, 'bob', '--password', 'b', '--superuser', ...cheap], io());
    expect(await runPasswdCommand([file, 'alice', '--password', 'two', ...cheap], io())).toBe(0);
    const alice = users().find((u) => u.username === 'alice');
    expect(alice?.tenant).toBe('acme');
    await expect(verifyPassword('two', parsePasswordHash(alice?.passwordHashText as string))).resolves.toBe(true);
    expect(users().find((u) => u.username === 'bob')?.superuser).toBe(true);
    await runPasswdCommand([file, 'bob', '--password', 'b', '--no-superuser', ...cheap], io());
    expect(users().find((u) => u.username === 'bob')?.superuser).toBe(false);
    expect(users().map((u) => u.username)).toEqual(['alice', 'bob']);
  });

  test('--no-password makes a certificate-only user; --delete removes a user', async () => {
    await runPasswdCommand([file, 'device-1', '--no-password', '--tenant', 'fleet'], io());
    await runPasswdCommand([file, 'alice', '--password', 'a', ...cheap], io());
    expect(users().find((u) => u.username === 'device-1')).toEqual({ username: 'device-1', tenant: 'fleet', superuser: false });
    expect(await runPasswdCommand([file, 'alice', '--delete'], io())).toBe(0);
    expect(users().map((u) => u.username)).toEqual(['device-1']);
    const streams = io();
    expect(await runPasswdCommand([file, 'alice', '--delete'], streams)).toBe(1);
    expect(streams.err()).toContain("user 'alice' not found");
  });

  test('refuses to rewrite an invalid file and leaves it unchanged', async () => {
    writeFileSync(file, 'users:\n  - { username: x, passwordHash: plain }\n');
    const streams = io('pw\n');
    expect(await runPasswdCommand([file, 'alice', ...cheap], streams)).toBe(1);
    expect(streams.err()).toMatch(/users\[0\]: passwordHash of 'x'.*\n.*was not changed/s);
    expect(readFileSync(file, 'utf8')).toBe('users:\n  - { username: x, passwordHash: plain }\n');
  });

  test('an empty password or no password at all is refused', async () => {
    const empty = io('\n');
    expect(await runPasswdCommand([file, 'alice', ...cheap], empty)).toBe(1);
    expect(empty.err()).toContain('must not be empty');
    const none = io('');
    expect(await runPasswdCommand([file, 'alice', ...cheap], none)).toBe(1);
    expect(none.err()).toContain('no password given');
  });

  test.each([
    [['only-file']],
    [[ 'f', 'u', '--bogus']],
    [['f', 'u', '--superuser', '--no-superuser']],
    [['f', 'u', '--tenant', 'a/b']],
    [['f', 'u', '--cost', 'lots']],
  ])('usage errors: %j', async (argv) => {
    await expect(runPasswdCommand(argv, io())).rejects.toThrow(UsageError);
  });

  test('--help prints the usage', async () => {
    const streams = io();
    expect(await runPasswdCommand(['--help'], streams)).toBe(0);
    expect(streams.out()).toContain('Usage: meridian passwd');
  });
});
