import type { AreaOp, StoreArea } from '../../../src/store/index.js';

/** An in-memory StoreArea with the real one's ordering, for pure tests; `failWrites` makes writes reject. */
export class MemoryArea implements StoreArea {
  readonly data = new Map<string, Buffer>();
  failWrites = false;
  writes = 0;

  constructor(readonly name = 'test') {}

  async get(key: string): Promise<Buffer | undefined> { return this.data.get(key); }
  async put(key: string, value: Buffer): Promise<void> { return this.batch([{ type: 'put', key, value }]); }
  async del(key: string): Promise<void> { return this.batch([{ type: 'del', key }]); }

  async batch(ops: AreaOp[]): Promise<void> {
    if (this.failWrites) throw new Error('disk full');
    this.writes++;
    for (const op of ops) {
      if (op.type === 'put') this.data.set(op.key, Buffer.from(op.value));
      else this.data.delete(op.key);
    }
  }

  async range(prefix: string, opts: { limit?: number; reverse?: boolean } = {}): Promise<[string, Buffer][]> {
    const keys = [...this.data.keys()].filter((k) => k.startsWith(prefix)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    if (opts.reverse) keys.reverse();
    return keys.slice(0, opts.limit ?? keys.length).map((k) => [k, this.data.get(k) as Buffer]);
  }
}
