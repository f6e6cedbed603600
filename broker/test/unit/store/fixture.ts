import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pino } from 'pino';
import { openStore, type NodeStore, type StoreOptions, type StoredPacket } from '../../../src/store/index.js';

export interface StoreFixture {
  freshDir(): string;
  open(dir: string, overrides?: Partial<StoreOptions>): Promise<NodeStore>;
  /** Closes `store` and opens its directory again (a restart). */
  reopen(store: NodeStore, dir: string, overrides?: Partial<StoreOptions>): Promise<NodeStore>;
}

/**
 * Real stores in a temp directory, set up as aedes would (`node-a.<incarnation>`); registers the Jest hooks that
 * close every store after each test and remove the directory at the end. Call at a test file's top level.
 */
export function storeFixture(prefix: string, defaults: Pick<StoreOptions, 'maxSizeMb' | 'maxQueuedMessages'>): StoreFixture {
  const logger = pino({ level: 'silent' });
  const opened: NodeStore[] = [];
  let root = '';
  let dirCounter = 0;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), prefix));
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((s) => s.close()));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  const open = async (dir: string, overrides: Partial<StoreOptions> = {}): Promise<NodeStore> => {
    const store = await openStore({ dir, durability: 'durable', commitDelayMs: 0, logger, ...defaults, ...overrides });
    await store.persistence.setup({ id: `node-a.${store.incarnation}` });
    opened.push(store);
    return store;
  };
  return {
    freshDir: () => join(root, `s${++dirCounter}`),
    open,
    async reopen(store, dir, overrides = {}) {
      await store.close();
      const at = opened.indexOf(store);
      if (at >= 0) opened.splice(at, 1);
      return open(dir, overrides);
    },
  };
}

export async function collect<T>(stream: Readable): Promise<T[]> {
  const items: T[] = [];
  for await (const item of stream) items.push(item as T);
  return items;
}

/** A queued publish as aedes hands it to the store (broker id `node-a.1`). */
export const publish = (topic: string, counter: number, qos: number): StoredPacket => ({
  cmd: 'publish', topic, payload: Buffer.from(`m${counter}`), qos, retain: false, dup: false, brokerId: 'node-a.1', brokerCounter: counter,
});
