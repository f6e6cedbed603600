import type { GroupCommitter } from './committer.js';
import type { KvEngine, KvOp } from './engine.js';
import { areaPrefix, assertKeyFits } from './keys.js';

export type AreaOp = { type: 'put'; key: string; value: Buffer } | { type: 'del'; key: string };

/**
 * A named durable key-value area. Writes go through the store's group commit and resolve under its durability
 * policy; reads see writes that are issued but not yet committed. Keys order bytewise by their UTF-8 encoding.
 */
export interface StoreArea {
  readonly name: string;
  get(key: string): Promise<Buffer | undefined>;
  put(key: string, value: Buffer): Promise<void>;
  del(key: string): Promise<void>;
  /** Several puts/deletes committed atomically. */
  batch(ops: AreaOp[]): Promise<void>;
  /** Entries whose key starts with `prefix` (all entries for ''), in key order. */
  range(prefix: string, opts?: { limit?: number; reverse?: boolean }): Promise<[string, Buffer][]>;
}

const utf8Order = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

export function createArea(name: string, engine: KvEngine, committer: GroupCommitter): StoreArea {
  const base = areaPrefix(name);
  const fullKey = (key: string): string => {
    assertKeyFits(base + key);
    return base + key;
  };
  const toKvOp = (op: AreaOp): KvOp => (op.type === 'put' ? { type: 'put', key: fullKey(op.key), value: op.value } : { type: 'del', key: fullKey(op.key) });

  return {
    name,
    async get(key) {
      const pending = committer.pending(base + key);
      if (pending !== undefined) return pending ?? undefined;
      return engine.get(base + key);
    },
    put: async (key, value) => committer.write([toKvOp({ type: 'put', key, value })]),
    del: async (key) => committer.write([toKvOp({ type: 'del', key })]),
    batch: async (ops) => committer.write(ops.map(toKvOp)),
    async range(prefix, opts = {}) {
      const full = base + prefix;
      const overlay = new Map(committer.pendingWithPrefix(full));
      // Pending deletes may hide committed entries, so read enough to still fill the limit.
      const readLimit = opts.limit === undefined ? undefined : opts.limit + overlay.size;
      const merged = new Map<string, Buffer>();
      for (const [key, value] of await engine.range(full, { limit: readLimit, reverse: opts.reverse })) merged.set(key, value);
      for (const [key, value] of overlay) {
        if (value === null) merged.delete(key);
        else merged.set(key, value);
      }
      const keys = [...merged.keys()].sort(utf8Order);
      if (opts.reverse) keys.reverse();
      const limited = opts.limit === undefined ? keys : keys.slice(0, opts.limit);
      return limited.map((key) => [key.slice(base.length), merged.get(key) as Buffer]);
    },
  };
}
