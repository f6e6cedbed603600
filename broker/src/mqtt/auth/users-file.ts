import { load as parseYaml } from 'js-yaml';
import { parsePasswordHash, type PasswordHash } from './password.js';
import { TENANT_NAME, type TenantDirectory } from './tenancy.js';

/**
 * The users file (YAML), typically a key of a Kubernetes Secret mounted as a file:
 *
 *   users:
 *     - username: alice
 *       passwordHash: scrypt$16384$8$1$<salt>$<hash>
 *       tenant: acme          # optional: the anonymous tenant (auth.anonymousTenant) when absent
 *       superuser: false      # optional
 *
 * A user without passwordHash can only log in with a verified client certificate whose CN is the username.
 */
export interface UserRecord {
  username: string;
  /** The stored text, kept so `meridian passwd` can write the file back unchanged. */
  passwordHashText?: string;
  passwordHash?: PasswordHash;
  /** As written in the file; undefined means the anonymous tenant. */
  tenant?: string;
  superuser: boolean;
}

export interface UsersFileIssue {
  /** Index in `users`, when the problem is one entry. */
  index?: number;
  reason: string;
}

export class UsersFileError extends Error {
  constructor(readonly source: string, readonly issues: UsersFileIssue[]) {
    super(`invalid users file ${source}:\n${issues.map((i) => `  ${i.index === undefined ? '' : `users[${i.index}]: `}${i.reason}`).join('\n')}`);
    this.name = 'UsersFileError';
  }
}

const ENTRY_KEYS = new Set(['username', 'passwordHash', 'tenant', 'superuser']);

export interface ParseUsersOptions {
  /** Named in errors (usually the file path). */
  source: string;
  /** When given, every tenant must be configured or usable as an implicit one. */
  tenants?: TenantDirectory;
}

/** Parses and validates the whole file; any bad entry rejects the file (the caller keeps the previous users). */
export function parseUsersFile(text: string, options: ParseUsersOptions): UserRecord[] {
  const entries = readEntries(text, options.source);
  const issues: UsersFileIssue[] = [];
  const firstIndex = new Map<string, number>();
  const users: UserRecord[] = [];
  entries.forEach((entry, index) => {
    const reasons: string[] = [];
    const user = parseEntry(entry, reasons, options.tenants);
    if (user) {
      const previous = firstIndex.get(user.username);
      if (previous !== undefined) reasons.push(`username '${user.username}' duplicates users[${previous}]`);
      else firstIndex.set(user.username, index);
    }
    if (reasons.length) issues.push(...reasons.map((reason) => ({ index, reason })));
    else if (user) users.push(user);
  });
  if (issues.length) throw new UsersFileError(options.source, issues);
  return users;
}

function readEntries(text: string, source: string): unknown[] {
  // js-yaml refuses a document without content; for a users file that simply means no users.
  if (text.split('\n').every((line) => /^\s*(#.*)?$/.test(line))) return [];
  let doc: unknown;
  try {
    doc = parseYaml(text, { filename: source });
  } catch (err) {
    throw new UsersFileError(source, [{ reason: `not valid YAML: ${(err as Error).message}` }]);
  }
  if (doc === undefined || doc === null) return [];
  if (!isRecord(doc)) throw new UsersFileError(source, [{ reason: "must be a mapping with a 'users' list" }]);
  const unknown = Object.keys(doc).filter((k) => k !== 'users');
  if (unknown.length) throw new UsersFileError(source, [{ reason: `unknown top-level key(s): ${unknown.join(', ')}` }]);
  if (doc.users === undefined || doc.users === null) return [];
  if (!Array.isArray(doc.users)) throw new UsersFileError(source, [{ reason: "'users' must be a list" }]);
  return doc.users;
}

function parseEntry(entry: unknown, reasons: string[], tenants: TenantDirectory | undefined): UserRecord | undefined {
  if (!isRecord(entry)) {
    reasons.push('must be a mapping with username and passwordHash');
    return undefined;
  }
  for (const key of Object.keys(entry)) if (!ENTRY_KEYS.has(key)) reasons.push(`unknown key '${key}'`);
  const { username, passwordHash, tenant, superuser } = entry;
  if (typeof username !== 'string' || username.length === 0) {
    reasons.push('username must be a non-empty string');
    return undefined;
  }
  if (username.includes('\u0000')) reasons.push('username must not contain NUL');
  const user: UserRecord = { username, superuser: false };
  if (passwordHash !== undefined) parseHashInto(user, passwordHash, reasons);
  if (tenant !== undefined) {
    if (typeof tenant !== 'string' || !TENANT_NAME.test(tenant)) reasons.push(`tenant must be a name matching ${TENANT_NAME.source}`);
    else {
      const problem = tenants?.problemWith(tenant);
      if (problem) reasons.push(problem);
      user.tenant = tenant;
    }
  }
  if (superuser !== undefined) {
    if (typeof superuser !== 'boolean') reasons.push('superuser must be true or false');
    else user.superuser = superuser;
  }
  return user;
}

function parseHashInto(user: UserRecord, passwordHash: unknown, reasons: string[]): void {
  if (typeof passwordHash !== 'string') {
    reasons.push(`passwordHash of '${user.username}' must be a string`);
    return;
  }
  try {
    user.passwordHash = parsePasswordHash(passwordHash);
    user.passwordHashText = passwordHash;
  } catch (err) {
    reasons.push(`passwordHash of '${user.username}': ${(err as Error).message}`);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
