// aedes-persistence's abstract suite (node:test) against the durable store, compiled to dist/.
// Run: npx tsc -p tsconfig.json && node --test broker/test/integration/store/abstract-suite.mjs
// STORE_DURABILITY=relaxed and STORE_COMMIT_DELAY_MS=<n> select the commit policy (default durable, 0).
import { after, test } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';

const require = createRequire(import.meta.url);
const abstractPersistence = require('aedes-persistence/abstract.js');
const { openStore } = await import(new URL('../../../../dist/broker/src/store/index.js', import.meta.url).href);

const root = mkdtempSync(join(tmpdir(), 'store-abstract-'));
const opened = [];
let counter = 0;

after(async () => {
  await Promise.all(opened.map((store) => store.close()));
  rmSync(root, { recursive: true, force: true });
});

abstractPersistence({
  test,
  testAsync: true,
  // A fresh store per case.
  persistence: async () => {
    const store = await openStore({
      dir: join(root, `case-${++counter}`),
      durability: process.env.STORE_DURABILITY ?? 'durable',
      commitDelayMs: Number(process.env.STORE_COMMIT_DELAY_MS ?? 0),
      maxSizeMb: 64,
      maxQueuedMessages: 10000,
      logger: pino({ level: 'silent' }),
    });
    opened.push(store);
    return store.persistence;
  },
});
