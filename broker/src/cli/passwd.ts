import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { dump as dumpYaml } from 'js-yaml';
import { DEFAULT_SCRYPT, hashPassword } from '../mqtt/auth/password.js';
import { TENANT_NAME } from '../mqtt/auth/tenancy.js';
import { parseUsersFile, UsersFileError, type UserRecord } from '../mqtt/auth/users-file.js';
import { UsageError } from './flags.js';

export const PASSWD_HELP = `Usage: meridian passwd [flags] <users-file> <username>

Adds <username> to a broker users file or updates it (creating the file if missing), or removes it with
--delete, like mosquitto_passwd. The password comes from --password, else from standard input (its first line;
asked twice, without echo, on a terminal). The file is replaced atomically with mode 0600.

Flags:
  --password <secret>   the password (visible to other local users in the process list: prefer stdin)
  --tenant <name>       the user's tenant (default: unchanged for an existing user, else the anonymous tenant)
  --superuser           the user bypasses tenants and ACLs and may use $SYS
  --no-superuser        the user is an ordinary user again
  --no-password         no password: the user can only log in with a verified client certificate (CN = username)
  --delete              remove the user
  --cost <N>            scrypt cost N, a power of two (default: ${DEFAULT_SCRYPT.N})
  -h, --help            this help
`;

export interface PasswdIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

interface PasswdRequest {
  file: string;
  username: string;
  delete: boolean;
  noPassword: boolean;
  password?: string;
  tenant?: string;
  superuser?: boolean;
  cost: number;
}

/** `meridian passwd`: resolves with the exit code (0 done, 1 failed, 2 usage error thrown as UsageError). */
export async function runPasswdCommand(argv: string[], io: PasswdIo = process): Promise<number> {
  const request = parseRequest(argv);
  if (!request) {
    io.stdout.write(PASSWD_HELP);
    return 0;
  }
  let users: UserRecord[];
  try {
    users = readUsers(request.file);
  } catch (err) {
    io.stderr.write(`meridian passwd: ${(err as Error).message}\n`);
    return 1;
  }
  const index = users.findIndex((u) => u.username === request.username);
  if (request.delete) {
    if (index < 0) {
      io.stderr.write(`meridian passwd: user '${request.username}' not found in ${request.file}\n`);
      return 1;
    }
    users.splice(index, 1);
  } else {
    const updated = await updatedUser(request, index >= 0 ? users[index] : undefined, io);
    if (!updated) return 1;
    if (index >= 0) users[index] = updated;
    else users.push(updated);
  }
  writeUsersFile(request.file, users);
  io.stdout.write(`${request.delete ? 'removed' : index >= 0 ? 'updated' : 'added'} user '${request.username}' in ${request.file}\n`);
  return 0;
}

function parseRequest(argv: string[]): PasswdRequest | undefined {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        password: { type: 'string' },
        tenant: { type: 'string' },
        superuser: { type: 'boolean' },
        'no-superuser': { type: 'boolean' },
        'no-password': { type: 'boolean' },
        delete: { type: 'boolean' },
        cost: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return undefined;
  if (positionals.length !== 2) throw new UsageError('expected <users-file> <username> (see --help)');
  const [file, username] = positionals as [string, string];
  if (username.length === 0) throw new UsageError('the username must not be empty');
  if (values.superuser && values['no-superuser']) throw new UsageError('--superuser and --no-superuser contradict each other');
  if (values.password !== undefined && values['no-password']) throw new UsageError('--password and --no-password contradict each other');
  if (values.tenant !== undefined && !TENANT_NAME.test(values.tenant)) throw new UsageError(`--tenant must match ${TENANT_NAME.source}`);
  const cost = values.cost === undefined ? DEFAULT_SCRYPT.N : Number(values.cost);
  if (!Number.isInteger(cost)) throw new UsageError(`--cost must be an integer, got '${values.cost}'`);
  return {
    file,
    username,
    delete: values.delete === true,
    noPassword: values['no-password'] === true,
    password: values.password,
    tenant: values.tenant,
    superuser: values.superuser ? true : values['no-superuser'] ? false : undefined,
    cost,
  };
}

/** The users of an existing file (which must be valid: a broken file is not silently rewritten), or none. */
function readUsers(file: string): UserRecord[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return parseUsersFile(text, { source: file });
  } catch (err) {
    if (err instanceof UsersFileError) throw new Error(`${err.message}\nfix the file by hand first; it was not changed`);
    throw err;
  }
}

async function updatedUser(request: PasswdRequest, existing: UserRecord | undefined, io: PasswdIo): Promise<UserRecord | undefined> {
  const user: UserRecord = {
    username: request.username,
    tenant: request.tenant ?? existing?.tenant,
    superuser: request.superuser ?? existing?.superuser ?? false,
  };
  if (request.noPassword) return user;
  const password = request.password ?? await readPassword(io);
  if (password === undefined) return undefined;
  if (password.length === 0) {
    io.stderr.write('meridian passwd: the password must not be empty\n');
    return undefined;
  }
  try {
    user.passwordHashText = await hashPassword(password, { ...DEFAULT_SCRYPT, N: request.cost });
  } catch (err) {
    io.stderr.write(`meridian passwd: ${(err as Error).message}\n`);
    return undefined;
  }
  return user;
}

async function readPassword(io: PasswdIo): Promise<string | undefined> {
  if (io.stdin.isTTY) {
    const first = await promptHidden(io, 'Password: ');
    const second = await promptHidden(io, 'Reenter password: ');
    if (first !== second) {
      io.stderr.write('meridian passwd: the passwords do not match\n');
      return undefined;
    }
    return first;
  }
  let text = '';
  for await (const chunk of io.stdin) text += chunk.toString();
  const line = text.split(/\r?\n/)[0];
  if (line === undefined || (line.length === 0 && text.length === 0)) {
    io.stderr.write('meridian passwd: no password given (use --password or standard input)\n');
    return undefined;
  }
  return line;
}

/** Reads one line from a terminal without echoing it. */
function promptHidden(io: PasswdIo, prompt: string): Promise<string> {
  io.stderr.write(prompt);
  const muted = new Writable({ write: (_chunk, _encoding, callback) => callback() });
  const rl = createInterface({ input: io.stdin, output: muted, terminal: true });
  return new Promise((resolve) => {
    rl.question('', (answer) => {
      rl.close();
      io.stderr.write('\n');
      resolve(answer);
    });
  });
}

/** Writes the file next to its final path and renames it over, so the broker never reads half a file. */
function writeUsersFile(file: string, users: UserRecord[]): void {
  const entries = users.map((u) => ({
    username: u.username,
    ...(u.passwordHashText !== undefined ? { passwordHash: u.passwordHashText } : {}),
    ...(u.tenant !== undefined ? { tenant: u.tenant } : {}),
    ...(u.superuser ? { superuser: true } : {}),
  }));
  const text = `# Meridian broker users (edit with 'meridian passwd').\n${dumpYaml({ users: entries }, { lineWidth: -1 })}`;
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = openSync(temp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(temp, file);
  } catch (err) {
    rmSync(temp, { force: true });
    throw new Error(`cannot replace ${file}: ${(err as Error).message}`);
  }
}
