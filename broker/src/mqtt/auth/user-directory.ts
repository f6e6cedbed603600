import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../log/logger.js';
import { DEFAULT_SCRYPT, verifyPassword, type PasswordHash } from './password.js';
import type { TenantDirectory } from './tenancy.js';
import { parseUsersFile, UsersFileError, type UserRecord } from './users-file.js';

export interface UserDirectoryOptions {
  file: string;
  tenants: TenantDirectory;
  logger: Logger;
  /** Re-read interval besides directory events (a missed inotify event must not keep stale users forever). */
  pollIntervalMs?: number;
}

/** What a hot reload did, for logs and tests. */
export type ReloadOutcome = 'unchanged' | 'reloaded' | 'rejected';

const DEBOUNCE_MS = 50;
const DEFAULT_POLL_MS = 10_000;

/**
 * The users of the users file, reloaded when the file changes. A Kubernetes Secret volume is updated by swapping a
 * `..data` symlink inside the mount directory, so the directory (not the file) is watched. A file that fails to
 * parse is logged and ignored: the previous users stay in force and connected clients are never touched.
 */
export class UserDirectory {
  private users = new Map<string, UserRecord>();
  private loadedDigest = '';
  private rejectedDigest = '';
  private watcher?: FSWatcher;
  private pollTimer?: NodeJS.Timeout;
  private debounceTimer?: NodeJS.Timeout;
  private readonly verified = new VerifiedPasswordCache();
  /** Verified for unknown users so they cost what a real user costs; takes the parameters of the file's hashes. */
  private dummyHash: PasswordHash = { ...DEFAULT_SCRYPT, salt: randomBytes(16), hash: randomBytes(32) };

  private constructor(private readonly options: UserDirectoryOptions) {}

  /** Loads the file once (throwing UsersFileError or a read error with the path) and starts watching it. */
  static open(options: UserDirectoryOptions): UserDirectory {
    const directory = new UserDirectory(options);
    const text = directory.read();
    directory.install(text, parseUsersFile(text, { source: options.file, tenants: options.tenants }));
    directory.watch();
    return directory;
  }

  get size(): number {
    return this.users.size;
  }

  lookup(username: string): UserRecord | undefined {
    return this.users.get(username);
  }

  /**
   * The user when the password is right, undefined otherwise. An unknown user costs one scrypt too, so response
   * time does not reveal which usernames exist.
   */
  async authenticate(username: string, password: Buffer): Promise<UserRecord | undefined> {
    const user = this.users.get(username);
    if (!user?.passwordHash || !user.passwordHashText) {
      await verifyPassword(password, this.dummyHash);
      return undefined;
    }
    if (this.verified.matches(username, user.passwordHashText, password)) return user;
    const ok = await verifyPassword(password, user.passwordHash);
    // The file may have been reloaded during scrypt: only the entry that was checked may be returned.
    if (!ok || this.users.get(username) !== user) return undefined;
    this.verified.remember(username, user.passwordHashText, password);
    return user;
  }

  /** Re-reads the file now; a bad file is logged with its reasons and the previous users stay. */
  reload(): ReloadOutcome {
    const { file, logger, tenants } = this.options;
    let text: string;
    try {
      text = this.read();
    } catch (err) {
      logger.error({ file, err: (err as Error).message }, 'users file unreadable: keeping the previous users');
      return 'rejected';
    }
    const digest = sha256(text);
    if (digest === this.loadedDigest) return 'unchanged';
    try {
      this.install(text, parseUsersFile(text, { source: file, tenants }));
    } catch (err) {
      if (digest !== this.rejectedDigest) {
        const issues = err instanceof UsersFileError ? err.issues : [{ reason: (err as Error).message }];
        logger.error({ file, issues }, 'users file rejected: keeping the previous users');
      }
      this.rejectedDigest = digest;
      return 'rejected';
    }
    logger.info({ file, users: this.users.size }, 'users file reloaded');
    return 'reloaded';
  }

  close(): void {
    this.watcher?.close();
    clearInterval(this.pollTimer);
    clearTimeout(this.debounceTimer);
  }

  private read(): string {
    try {
      return readFileSync(this.options.file, 'utf8');
    } catch (err) {
      throw new Error(`cannot read users file ${this.options.file}: ${(err as Error).message}`);
    }
  }

  private install(text: string, users: UserRecord[]): void {
    this.users = new Map(users.map((u) => [u.username, u]));
    this.verified.forgetAllBut(this.users);
    const sample = users.find((u) => u.passwordHash)?.passwordHash;
    if (sample) this.dummyHash = { N: sample.N, r: sample.r, p: sample.p, salt: randomBytes(sample.salt.length), hash: randomBytes(sample.hash.length) };
    this.loadedDigest = sha256(text);
    this.rejectedDigest = '';
  }

  private watch(): void {
    const { file, logger } = this.options;
    const schedule = (): void => {
      clearTimeout(this.debounceTimer);
      this.debounceTimer = setTimeout(() => this.reload(), DEBOUNCE_MS);
      this.debounceTimer.unref();
    };
    try {
      this.watcher = watch(path.dirname(path.resolve(file)), { persistent: false }, schedule);
      this.watcher.on('error', (err) => logger.warn({ file, err: err.message }, 'users file watch failed: relying on polling'));
    } catch (err) {
      logger.warn({ file, err: (err as Error).message }, 'cannot watch the users file directory: relying on polling');
    }
    this.pollTimer = setInterval(() => this.reload(), this.options.pollIntervalMs ?? DEFAULT_POLL_MS);
    this.pollTimer.unref();
  }
}

/**
 * Remembers, per user, a keyed digest of the last password that passed scrypt, so a reconnect storm does not cost
 * one scrypt per connection. The key is random per process and an entry is only valid for the exact stored hash
 * it was verified against, so changing or deleting the user in the file invalidates it.
 */
class VerifiedPasswordCache {
  private readonly key = randomBytes(32);
  private readonly entries = new Map<string, { hashText: string; digest: Buffer }>();

  matches(username: string, hashText: string, password: Buffer): boolean {
    const entry = this.entries.get(username);
    if (!entry || entry.hashText !== hashText) return false;
    return timingSafeEqual(entry.digest, this.digest(username, password));
  }

  remember(username: string, hashText: string, password: Buffer): void {
    this.entries.set(username, { hashText, digest: this.digest(username, password) });
  }

  forgetAllBut(users: ReadonlyMap<string, UserRecord>): void {
    for (const [username, entry] of this.entries) {
      if (users.get(username)?.passwordHashText !== entry.hashText) this.entries.delete(username);
    }
  }

  private digest(username: string, password: Buffer): Buffer {
    return createHmac('sha256', this.key).update(username).update('\u0000').update(password).digest();
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
