// Store engine benchmark: lmdb vs classic-level vs better-sqlite3 on the broker store's access pattern.
// Build and run:  npx tsc -p tsconfig.json && node dist/e2e/bench/store-bench.js [secondsPerCase=1] [rounds=3]
//                 node dist/e2e/bench/store-bench.js --store [secondsPerCase=2]   (the broker's store itself)
// Engines that fail to load are reported and skipped: better-sqlite3 is not a dependency any more (it needs a
// native build at install); `npm install --no-save better-sqlite3` brings it back for a comparison run.
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { openStore, type StoreOptions, type StoredPacket } from '../../broker/src/store/index.js';

type Op = { type: 'put'; key: string; value: Buffer } | { type: 'del'; key: string };
type Durability = 'durable' | 'relaxed';

/** One engine opened on one directory: `commit` writes the ops atomically, durably if opened durable. */
interface Driver {
  commit(ops: Op[]): Promise<void>;
  close(): Promise<void>;
}

interface Engine {
  name: string;
  open(dir: string, durability: Durability): Promise<Driver>;
}

/**
 * overlappingSync (the Linux default) makes a commit visible first and fsyncs it afterwards, outside the write
 * lock; `db.flushed` resolves after that fsync. Without it the commit promise resolves after the fsync.
 */
const lmdbEngine = (overlappingSync: boolean): Engine => ({
  name: overlappingSync ? 'lmdb' : 'lmdb (overlappingSync off)',
  async open(dir, durability) {
    const { open } = await import('lmdb');
    // relaxed: with overlappingSync, resolve on commit and let the fsync follow; without it, noSync.
    const noSync = durability === 'relaxed' && !overlappingSync;
    const db = open<Buffer, string>({ path: dir, encoding: 'binary', mapSize: 1 << 30, overlappingSync, noSync });
    return {
      async commit(ops) {
        await db.transaction(() => {
          for (const op of ops) {
            if (op.type === 'put') void db.put(op.key, op.value);
            else void db.remove(op.key);
          }
        });
        if (durability === 'durable') await db.flushed;
      },
      close: () => db.close(),
    };
  },
});

const levelEngine: Engine = {
  name: 'classic-level',
  async open(dir, durability) {
    const { ClassicLevel } = await import('classic-level');
    const db = new ClassicLevel<string, Buffer>(dir, { valueEncoding: 'buffer' });
    await db.open();
    const sync = durability === 'durable';
    return {
      commit: (ops) => db.batch(ops.map((op) => (op.type === 'put' ? { type: 'put', key: op.key, value: op.value } : { type: 'del', key: op.key })), { sync }),
      close: () => db.close(),
    };
  },
};

interface SqliteStatement { run(...params: unknown[]): unknown }
interface SqliteDatabase {
  pragma(source: string): unknown;
  exec(source: string): unknown;
  prepare(source: string): SqliteStatement;
  transaction(fn: (ops: Op[]) => void): (ops: Op[]) => void;
  close(): unknown;
}

const sqliteEngine: Engine = {
  name: 'better-sqlite3',
  async open(dir, durability) {
    const Database = createRequire(import.meta.url)('better-sqlite3') as new (file: string) => SqliteDatabase;
    const db = new Database(join(dir, 'store.db'));
    db.pragma('journal_mode = WAL');
    // FULL fsyncs the WAL on every commit; NORMAL only at checkpoints (a machine crash may lose recent commits).
    db.pragma(`synchronous = ${durability === 'durable' ? 'FULL' : 'NORMAL'}`);
    db.exec('CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID');
    const put = db.prepare('INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)');
    const del = db.prepare('DELETE FROM kv WHERE k = ?');
    const write = db.transaction((ops: Op[]) => {
      for (const op of ops) {
        if (op.type === 'put') put.run(op.key, op.value);
        else del.run(op.key);
      }
    });
    // better-sqlite3 is synchronous: the commit, fsync included, blocks the event loop.
    return { commit: async (ops) => write(ops), close: async () => void db.close() };
  },
};

/**
 * Group commit: callers' ops wait while a commit is running and then go out together in the next one.
 * With concurrency 1 this degenerates to one commit (one fsync) per request.
 */
class GroupCommitter {
  private pending: { ops: Op[]; resolve: () => void; reject: (err: unknown) => void }[] = [];
  private running = false;
  commits = 0;

  constructor(private readonly driver: Driver) {}

  write(ops: Op[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ ops, resolve, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      this.commits++;
      try {
        await this.driver.commit(batch.flatMap((w) => w.ops));
        for (const w of batch) w.resolve();
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
    this.running = false;
  }
}

let sequence = 0;

/** A ~100-byte packet that differs on every write (some engines skip rewriting an identical page). */
function packet(seq: number): Buffer {
  const value = Buffer.alloc(100, 0x61);
  value.writeDoubleBE(seq, 0);
  return value;
}

/** One logical store operation, timed from request to resolved promise. */
async function timed(latencies: number[], committer: GroupCommitter, ops: Op[]): Promise<void> {
  const start = performance.now();
  await committer.write(ops);
  latencies.push(performance.now() - start);
}

/** enqueue for N subscribers (one commit), then per subscriber: set messageId, delete on ack. */
async function messageLifecycle(committer: GroupCommitter, latencies: number[], fanout: number, parallel: boolean): Promise<number> {
  const seq = ++sequence;
  const keys = Array.from({ length: fanout }, (_, i) => `out:client${i}:${String(seq).padStart(12, '0')}`);
  await timed(latencies, committer, keys.map((key) => ({ type: 'put', key, value: packet(seq) })));
  const updated = Buffer.concat([packet(seq), Buffer.from([0, 42])]);
  const perSubscriber = async (ops: (key: string) => Op[]): Promise<void> => {
    if (parallel) await Promise.all(keys.map((key) => timed(latencies, committer, ops(key))));
    else for (const key of keys) await timed(latencies, committer, ops(key));
  };
  await perSubscriber((key) => [{ type: 'put', key, value: updated }]);
  await perSubscriber((key) => [{ type: 'del', key }]);
  return 1;
}

async function subscriptionChurn(committer: GroupCommitter, latencies: number[]): Promise<number> {
  const seq = ++sequence;
  const key = `sub:client${seq % 1000}:sensors/${seq}/#`;
  await timed(latencies, committer, [{ type: 'put', key, value: Buffer.from('{"qos":1,"rh":0,"rap":false,"nl":false}') }]);
  await timed(latencies, committer, [{ type: 'del', key }]);
  return 1;
}

async function retainedStore(committer: GroupCommitter, latencies: number[]): Promise<number> {
  const seq = ++sequence;
  await timed(latencies, committer, [{ type: 'put', key: `ret:sensors/${seq % 5000}/temp`, value: packet(seq) }]);
  return 1;
}

interface Scenario { name: string; unit: string; run(c: GroupCommitter, lat: number[], parallel: boolean): Promise<number> }

const SCENARIOS: Scenario[] = [
  { name: 'msg fanout 1', unit: 'msg', run: (c, l, p) => messageLifecycle(c, l, 1, p) },
  { name: 'msg fanout 10', unit: 'msg', run: (c, l, p) => messageLifecycle(c, l, 10, p) },
  { name: 'sub add+remove', unit: 'pair', run: (c, l) => subscriptionChurn(c, l) },
  { name: 'retained put', unit: 'put', run: (c, l) => retainedStore(c, l) },
];

interface Mode { name: string; durability: Durability; concurrency: number }

const MODES: Mode[] = [
  { name: 'durable, commit per op', durability: 'durable', concurrency: 1 },
  { name: 'durable, group commit x32', durability: 'durable', concurrency: 32 },
  { name: 'relaxed, group commit x32', durability: 'relaxed', concurrency: 32 },
];

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

interface Row { engine: string; mode: string; scenario: string; unitsPerSec: number; unit: string; opsPerSec: number; commitsPerSec: number; p50: number; p99: number }

async function runCase(engine: Engine, mode: Mode, scenario: Scenario, seconds: number): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), `store-bench-${engine.name}-`));
  const driver = await engine.open(dir, mode.durability);
  const committer = new GroupCommitter(driver);
  const latencies: number[] = [];
  let units = 0;
  const start = performance.now();
  const deadline = start + seconds * 1000;
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const done = await scenario.run(committer, latencies, mode.concurrency > 1);
      units += done;
    }
  };
  await Promise.all(Array.from({ length: mode.concurrency }, worker));
  const elapsed = (performance.now() - start) / 1000;
  await driver.close();
  rmSync(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  return {
    engine: engine.name, mode: mode.name, scenario: scenario.name, unit: scenario.unit,
    unitsPerSec: units / elapsed, opsPerSec: latencies.length / elapsed, commitsPerSec: committer.commits / elapsed,
    p50: percentile(latencies, 50), p99: percentile(latencies, 99),
  };
}

async function loadable(engine: Engine): Promise<boolean> {
  const dir = mkdtempSync(join(tmpdir(), 'store-bench-probe-'));
  try {
    await (await engine.open(dir, 'relaxed')).close();
    return true;
  } catch (err) {
    console.log(`skipping ${engine.name}: ${(err as Error).message.split('\n')[0]}`);
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/**
 * Engines run interleaved (round-robin within each case, several rounds) and the median round is reported,
 * because fsync cost on a shared disk drifts over time and would otherwise favour whichever engine ran first.
 */
async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? 1);
  const rounds = Number(process.argv[3] ?? 3);
  const engines: Engine[] = [];
  for (const engine of [lmdbEngine(true), lmdbEngine(false), levelEngine, sqliteEngine]) {
    if (await loadable(engine)) engines.push(engine);
  }
  console.log(`store-bench: ${seconds}s per case, median of ${rounds} interleaved rounds, 100-byte packets, node ${process.version}, dir ${tmpdir()}`);
  console.log('| mode | scenario | engine | units/s | store ops/s | commits/s | p50 ms | p99 ms |');
  console.log('|---|---|---|---:|---:|---:|---:|---:|');
  for (const mode of MODES) {
    for (const scenario of SCENARIOS) {
      const rows = new Map<string, Row[]>(engines.map((e) => [e.name, []]));
      for (let round = 0; round < rounds; round++) {
        for (const engine of engines) rows.get(engine.name)?.push(await runCase(engine, mode, scenario, seconds));
      }
      for (const [name, runs] of rows) {
        const r = runs[0];
        const m = (pick: (row: Row) => number): number => median(runs.map(pick));
        console.log(`| ${mode.name} | ${scenario.name} | ${name} | ${m((x) => x.unitsPerSec).toFixed(0)} ${r.unit}/s | ${m((x) => x.opsPerSec).toFixed(0)} | ${m((x) => x.commitsPerSec).toFixed(0)} | ${m((x) => x.p50).toFixed(2)} | ${m((x) => x.p99).toFixed(2)} |`);
      }
    }
  }
}

/**
 * The broker's own store (DurablePersistence on LMDB with group commit): per message, enqueue for `fanout`
 * offline subscribers, then per subscriber assign a messageId and clear it on PUBACK, with 32 publishers at once.
 */
async function storeCase(durability: StoreOptions['durability'], commitDelayMs: number, fanout: number, seconds: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'store-bench-store-'));
  const commits: number[] = [];
  const store = await openStore({
    dir, durability, commitDelayMs, maxSizeMb: 1024, maxQueuedMessages: 1_000_000, logger: pino({ level: 'silent' }),
    onWriteLatency: (s) => commits.push(s * 1000),
  });
  const p = store.persistence;
  await p.setup({ id: 'bench.1' });
  const latencies: number[] = [];
  const subs = Array.from({ length: fanout }, (_, i) => ({ clientId: `sub${i}` }));
  let messages = 0;
  let counter = 0;
  const deadline = performance.now() + seconds * 1000;
  const timedOp = async (op: Promise<unknown>): Promise<void> => {
    const start = performance.now();
    await op;
    latencies.push(performance.now() - start);
  };
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const brokerCounter = ++counter;
      const message: StoredPacket = { cmd: 'publish', topic: `bench/${brokerCounter % 100}`, payload: packet(brokerCounter), qos: 1, retain: false, dup: false, brokerId: 'bench.1', brokerCounter };
      await timedOp(p.outgoingEnqueueCombi(subs, message));
      const messageId = (brokerCounter % 65535) + 1;
      await Promise.all(subs.map((s) => timedOp(p.outgoingUpdate({ id: s.clientId }, { ...message, messageId }))));
      await Promise.all(subs.map((s) => timedOp(p.outgoingClearMessageId({ id: s.clientId }, { cmd: 'puback', messageId }))));
      messages++;
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: 32 }, worker));
  const elapsed = (performance.now() - start) / 1000;
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  commits.sort((a, b) => a - b);
  return `| ${durability} | ${commitDelayMs} | ${fanout} | ${(messages / elapsed).toFixed(0)} | ${(latencies.length / elapsed).toFixed(0)} | ${(commits.length / elapsed).toFixed(0)} | ${percentile(latencies, 50).toFixed(2)} | ${percentile(latencies, 99).toFixed(2)} | ${percentile(commits, 99).toFixed(2)} |`;
}

async function storeMain(seconds: number): Promise<void> {
  console.log(`store-bench --store: ${seconds}s per case, 32 concurrent publishers, 100-byte payloads, node ${process.version}, dir ${tmpdir()}`);
  console.log('| durability | commitDelayMs | fanout | msg/s | store ops/s | commits/s | op p50 ms | op p99 ms | commit p99 ms |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const [durability, commitDelayMs] of [['durable', 0], ['durable', 2], ['relaxed', 0]] as const) {
    for (const fanout of [1, 10]) console.log(await storeCase(durability, commitDelayMs, fanout, seconds));
  }
}

const entry = process.argv[2] === '--store' ? storeMain(Number(process.argv[3] ?? 2)) : main();
entry.catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
