import { join } from 'node:path';
import { open, type RootDatabase } from 'lmdb';

export type KvOp = { type: 'put'; key: string; value: Buffer } | { type: 'del'; key: string };

/** The embedded engine as the store uses it: atomic batched commits, point reads and prefix scans. */
export interface KvEngine {
  /** Applies `ops` in one transaction; resolves once committed (visible, on its way to disk). */
  commit(ops: KvOp[]): Promise<void>;
  /** Resolves once every commit so far is fsynced. */
  flushed(): Promise<void>;
  get(key: string): Promise<Buffer | undefined>;
  /** Entries whose key starts with `prefix`, in bytewise key order (reversed on request). */
  range(prefix: string, opts?: { limit?: number; reverse?: boolean }): Promise<[string, Buffer][]>;
  /** Bytes held by live data (B-tree and overflow pages, not free pages). */
  liveBytes(): number;
  close(): Promise<void>;
}

/** LMDB limits keys to 1978 bytes; keys.ts keeps variable parts well below that. */
export const MAX_KEY_BYTES = 1978;

const DATA_FILE = 'store.mdb';

const keyBytes = (key: string): Buffer => Buffer.from(key, 'utf8');

/**
 * LMDB through lmdb-js. overlappingSync (its Linux default) makes a commit visible first and fsyncs it right
 * after, outside the write lock; `db.flushed` resolves once that fsync is done, and on reopen lmdb-js falls
 * back to the last flushed transaction if the machine rebooted in between.
 */
export function openLmdb(dir: string, maxSizeMb: number): KvEngine {
  const db: RootDatabase<Buffer, Buffer> = open<Buffer, Buffer>({
    path: join(dir, DATA_FILE),
    encoding: 'binary',
    // Raw UTF-8 key bytes: plain bytewise order (the default ordered-binary gives some byte sequences meaning).
    keyEncoding: 'binary',
    // Address space only; the file grows with the data. Room for copy-on-write and free pages beyond the limit.
    mapSize: Math.max(64, maxSizeMb * 2) * 1024 * 1024,
    overlappingSync: true,
  });
  return {
    async commit(ops) {
      // batch(), not transaction(): the ops go to lmdb-js' write thread as instructions and commit there in one
      // transaction; transaction() would run the callback on this thread, which then waits for the write thread.
      await db.batch(() => {
        for (const op of ops) {
          if (op.type === 'put') void db.put(keyBytes(op.key), op.value);
          else void db.remove(keyBytes(op.key));
        }
      });
    },
    async flushed() {
      await db.flushed;
    },
    async get(key) {
      return db.get(keyBytes(key));
    },
    async range(prefix, opts = {}) {
      const found: [string, Buffer][] = [];
      const low = keyBytes(prefix);
      // Every key in [prefix, prefix + 0xFF) starts with prefix (0xFF never occurs in UTF-8), so the first one
      // that doesn't ends the scan.
      const bounds = opts.reverse ? { start: Buffer.concat([low, Buffer.from([0xff])]), reverse: true } : { start: low };
      for (const { key, value } of db.getRange({ ...bounds, limit: opts.limit })) {
        if (key.length < low.length || low.compare(key, 0, low.length) !== 0) break;
        found.push([key.toString('utf8'), value]);
      }
      return found;
    },
    liveBytes() {
      const stats = db.getStats() as { pageSize: number; treeBranchPageCount: number; treeLeafPageCount: number; overflowPages: number };
      return (stats.treeBranchPageCount + stats.treeLeafPageCount + stats.overflowPages) * stats.pageSize;
    },
    close: () => db.close(),
  };
}
