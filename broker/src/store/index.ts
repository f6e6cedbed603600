import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import type { Logger } from '../log/logger.js';
import { createArea, type StoreArea } from './area.js';
import { encode, decode } from './codec.js';
import { GroupCommitter } from './committer.js';
import { openLmdb, type KvEngine } from './engine.js';
import { EPOCH_KEY, INCARNATION_KEY } from './keys.js';
import { loadState } from './load.js';
import { acquireLock, type StoreLock } from './lock.js';
import { DurablePersistence } from './persistence.js';
import { DEFAULT_ARRIVAL_LIMITS } from './publish-deliveries.js';

export type { StoreArea, AreaOp } from './area.js';
export { DurablePersistence } from './persistence.js';
export type { StoredPacket, Subscription, MatchedSubscription, PersistenceClient, SubscriptionObserver } from './persistence.js';

export interface StoreOptions {
  dir: string;
  /**
   * `durable`: a write's promise resolves after its commit is fsynced.
   * `relaxed`: it resolves at commit, the fsync follows right after (see README for what each can lose).
   */
  durability: 'durable' | 'relaxed';
  /** Writes issued within this window go out in one commit (group commit); 0 = those of one event-loop turn. */
  commitDelayMs: number;
  /** Live data above this refuses new queued messages (counted through onQueueFull). */
  maxSizeMb: number;
  /** Queued outgoing messages (in-flight included) per session; a new one beyond it is not stored. */
  maxQueuedMessages: number;
  logger: Logger;
  /** Duration of every commit, in seconds. */
  onWriteLatency?: (seconds: number) => void;
  /** A message not queued for `clientId` (queue full or store full); the caller counts it as a drop. */
  onQueueFull?: (clientId: string, topic: string) => void;
  /**
   * Copies of QoS 2 messages forwarded by other nodes are remembered by publish identity this long (ms, default
   * 1 h) and at most this many (default 200 000), so that a publish repeated after a crash of the publisher's node is not queued twice here.
   */
  arrivalWindowMs?: number;
  maxArrivals?: number;
}

export interface NodeStore {
  /** The aedes 1.2 async persistence: pass it as `Aedes.createBroker({ persistence })`. */
  readonly persistence: DurablePersistence;
  /** Persisted counter, incremented by 1 on every open. */
  readonly incarnation: number;
  /**
   * Random id (16 hex digits) made when this store was created: a store whose data directory was deleted comes
   * back with another one, which tells a remote that sequence numbers this store hands out start over.
   */
  readonly epoch: string;
  /** The store was created by this open (empty data directory). */
  readonly created: boolean;
  /** Named durable key-value areas for later modules (route-sync state, link queues, dedup windows). */
  area(name: string): StoreArea;
  /** Commits pending writes and closes the engine; idempotent. */
  close(): Promise<void>;
}

const SIZE_CHECK_MS = 1000;

export async function openStore(opts: StoreOptions): Promise<NodeStore> {
  mkdirSync(opts.dir, { recursive: true });
  const lock = acquireLock(opts.dir);
  let engine: KvEngine | undefined;
  try {
    engine = openLmdb(opts.dir, opts.maxSizeMb);
    const incarnation = await bumpIncarnation(engine);
    const epoch = await readOrMakeEpoch(engine);
    const state = await loadState(engine);
    opts.logger.info(
      { dir: opts.dir, incarnation, epoch, durability: opts.durability, sessions: state.subscriptions.size, queuedFor: state.outgoing.size, retained: state.retained.size, wills: state.wills.size },
      'store opened',
    );
    return assemble(opts, engine, lock, { incarnation, epoch, created: incarnation === 1 }, state);
  } catch (err) {
    await engine?.close().catch(() => undefined);
    lock.release();
    throw err;
  }
}

/** The incarnation is written with fsync regardless of the durability mode: it must never repeat. */
async function bumpIncarnation(engine: KvEngine): Promise<number> {
  const stored = await engine.get(INCARNATION_KEY);
  const incarnation = (stored ? decode<number>(stored) : 0) + 1;
  await engine.commit([{ type: 'put', key: INCARNATION_KEY, value: encode(incarnation) }]);
  await engine.flushed();
  return incarnation;
}

/** Made once per store and fsynced like the incarnation; a store from before epochs gets one at its next open. */
async function readOrMakeEpoch(engine: KvEngine): Promise<string> {
  const stored = await engine.get(EPOCH_KEY);
  if (stored) return stored.toString('hex');
  const epoch = randomBytes(8);
  await engine.commit([{ type: 'put', key: EPOCH_KEY, value: epoch }]);
  await engine.flushed();
  return epoch.toString('hex');
}

interface StoreIdentity {
  incarnation: number;
  epoch: string;
  created: boolean;
}

function assemble(
  opts: StoreOptions,
  engine: KvEngine,
  lock: StoreLock,
  identity: StoreIdentity,
  state: Awaited<ReturnType<typeof loadState>>,
): NodeStore {
  const committer = new GroupCommitter(engine, { sync: opts.durability === 'durable', commitDelayMs: opts.commitDelayMs }, opts.logger, opts.onWriteLatency);
  const size = watchSize(engine, opts);
  const persistence = new DurablePersistence(state, {
    write: (ops) => committer.write(ops),
    maxQueuedMessages: opts.maxQueuedMessages,
    hasRoom: () => !size.full,
    onQueueFull: (clientId, topic) => opts.onQueueFull?.(clientId, topic),
    arrivalLimits: { windowMs: opts.arrivalWindowMs ?? DEFAULT_ARRIVAL_LIMITS.windowMs, maxArrivals: opts.maxArrivals ?? DEFAULT_ARRIVAL_LIMITS.maxArrivals },
    crashBeforePublishedMark: process.env.MERIDIAN_TEST_CRASH_BEFORE_QOS2_MARK || undefined,
  });
  const areas = new Map<string, StoreArea>();
  let closing: Promise<void> | undefined;

  const close = async (): Promise<void> => {
    size.stop();
    try {
      await committer.close();
    } finally {
      await engine.close();
      lock.release();
      opts.logger.info({ dir: opts.dir }, 'store closed');
    }
  };

  return {
    persistence,
    ...identity,
    area(name) {
      let area = areas.get(name);
      if (!area) {
        area = createArea(name, engine, committer);
        areas.set(name, area);
      }
      return area;
    },
    close: () => (closing ??= close()),
  };
}

/** Polls the live data size; over `maxSizeMb` the store refuses new queued messages until it shrinks. */
function watchSize(engine: KvEngine, opts: StoreOptions): { readonly full: boolean; stop(): void } {
  const limit = opts.maxSizeMb * 1024 * 1024;
  const watcher = { full: false, stop: () => clearInterval(timer) };
  const check = (): void => {
    const bytes = engine.liveBytes();
    const full = bytes >= limit;
    if (full !== watcher.full) {
      if (full) opts.logger.warn({ dir: opts.dir, bytes, limit }, 'store size limit reached: new queued messages are refused');
      else opts.logger.info({ dir: opts.dir, bytes, limit }, 'store back under its size limit');
    }
    watcher.full = full;
  };
  const timer = setInterval(check, SIZE_CHECK_MS);
  timer.unref();
  check();
  return watcher;
}
