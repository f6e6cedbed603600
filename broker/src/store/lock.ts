import { readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';

// LMDB lets several processes open one environment, so exclusivity is ours to enforce: a lock file naming the
// owner. A lock whose owner is gone (kill -9, reboot, a restarted container reusing the PID) is taken over.

const LOCK_FILE = 'store.lock';

interface LockOwner {
  pid: number;
  /** Process start time in clock ticks since boot (/proc/<pid>/stat field 22): tells a reused PID apart. */
  startTicks: string | null;
  bootId: string | null;
  host: string;
}

/** Directories locked by this process: a second open of one of them in-process fails too. */
const heldHere = new Set<string>();

export interface StoreLock {
  release(): void;
}

export function acquireLock(givenDir: string): StoreLock {
  const dir = resolve(givenDir);
  const file = join(dir, LOCK_FILE);
  if (heldHere.has(dir)) throw new Error(`store directory ${dir} is already open in this process (pid ${process.pid})`);
  const me = currentOwner(process.pid);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeFileSync(file, JSON.stringify(me), { flag: 'wx' });
      heldHere.add(dir);
      return { release: () => release(dir, file, me) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`cannot create lock file ${file}: ${(err as Error).message}`, { cause: err });
    }
    const owner = readOwner(file);
    if (owner && isAlive(owner)) {
      throw new Error(`store directory ${dir} is locked by live process ${owner.pid} on ${owner.host} (lock file ${file})`);
    }
    if (!owner && justWritten(file)) {
      throw new Error(`store directory ${dir} is being locked by another process right now (lock file ${file})`);
    }
    removeStale(file);
  }
  throw new Error(`store directory ${dir}: could not take over stale lock file ${file}`);
}

function release(dir: string, file: string, me: LockOwner): void {
  if (!heldHere.delete(dir)) return;
  const owner = readOwner(file);
  if (owner && owner.pid === me.pid && owner.startTicks === me.startTicks) removeStale(file);
}

function currentOwner(pid: number): LockOwner {
  return { pid, startTicks: startTicksOf(pid), bootId: readTrimmed('/proc/sys/kernel/random/boot_id'), host: hostname() };
}

function isAlive(owner: LockOwner): boolean {
  if (owner.pid === process.pid) return false; // our PID but not in heldHere: a previous container's process
  if (owner.bootId && owner.bootId !== readTrimmed('/proc/sys/kernel/random/boot_id')) return false;
  if (owner.host !== hostname()) return false; // PIDs of another machine cannot be checked; a volume has one writer
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  return owner.startTicks === null || owner.startTicks === startTicksOf(owner.pid);
}

function startTicksOf(pid: number): string | null {
  const stat = readTrimmed(`/proc/${pid}/stat`);
  if (!stat) return null;
  // Fields after the parenthesised command name (which may itself hold spaces); starttime is field 22.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
}

function readOwner(file: string): LockOwner | null {
  const text = readTrimmed(file);
  if (!text) return null;
  try {
    return JSON.parse(text) as LockOwner;
  } catch {
    return null; // torn write of a crashed owner: treat as stale
  }
}

/** An unreadable lock younger than this may be a concurrent opener between creating and filling the file. */
const FRESH_LOCK_MS = 2000;

function justWritten(file: string): boolean {
  try {
    return Date.now() - statSync(file).mtimeMs < FRESH_LOCK_MS;
  } catch {
    return false;
  }
}

function readTrimmed(file: string): string | null {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}

function removeStale(file: string): void {
  try {
    unlinkSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot remove stale lock file ${file}: ${(err as Error).message}`, { cause: err });
  }
}
