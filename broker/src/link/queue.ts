import { createHash } from 'node:crypto';
import type { AreaOp, StoreArea } from '../store/index.js';
import { DEFAULT_ARRIVAL_LIMITS, type ArrivalLimits } from '../store/publish-deliveries.js';
import { decodeQueueEntry, encodeQueueEntry } from './queue-entry-codec.js';

/** A message on its way to a remote cluster, with what the remote needs to publish it as the original. */
export interface LinkMessage {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  publisherClientId: string;
  /** Milliseconds since the epoch, when the origin cluster received it. */
  timestamp: number;
  /**
   * The publish identity of the original publish (a persistent session's QoS 2 message, see
   * store/publish-deliveries.ts): the same when the message is published again after a crash of the publisher's
   * node, so the queue takes it once. Not sent to the remote.
   */
  publishId?: string;
  /**
   * A sidecar's copy: the publish's identity at its origin node in the region (`<aedes id>:<counter>`, forward format
   * version 3), the same in every agent's copy. Sent (as the twin identity) only for a copy that may have a twin.
   */
  originId?: string;
  /** Queued from a copy handed over after the agent it went to first died: that agent may send it too (a twin). */
  handedOver?: boolean;
}

export interface QueueEntry {
  seq: number;
  message: LinkMessage;
  bytes: number;
  enqueuedAt: number;
}

export interface LinkQueueOptions {
  maxBytes: number;
  whenFull: 'block' | 'reject';
  now?: () => number;
  /** How long / how many publish identities are remembered (default: as a node's store remembers arrivals). */
  identityLimits?: ArrivalLimits;
}

export class LinkQueueFullError extends Error {
  constructor(readonly link: string, readonly bytes: number, readonly maxBytes: number) {
    super(`link queue ${link} is full (${bytes} of ${maxBytes} bytes)`);
  }
}

export class LinkQueueClosedError extends Error {
  constructor(readonly link: string) {
    super(`link queue ${link} is closed`);
  }
}

const ENTRY_PREFIX = 'q:';
const ACKED_KEY = 'm:acked';
/** `p:<publish identity>` → sequence (u64) and time queued (u64 ms): the identities already taken. */
const IDENTITY_PREFIX = 'p:';
/** Longer identities are keyed by their SHA-256 (store keys are bounded). */
const MAX_IDENTITY_KEY_CHARS = 256;
const SEQ_DIGITS = 14;
/** Bytes an entry costs besides topic and payload (sequence, flags, client id, timestamp, key). */
const ENTRY_OVERHEAD = 48;

const entryKey = (seq: number): string => ENTRY_PREFIX + seq.toString(16).padStart(SEQ_DIGITS, '0');
const identityKey = (publishId: string): string =>
  IDENTITY_PREFIX + (publishId.length <= MAX_IDENTITY_KEY_CHARS ? publishId : `#${createHash('sha256').update(publishId).digest('hex')}`);

/** A publish identity the queue took: the sequence it got (pending until the append committed) and when. */
interface TakenIdentity {
  seq: Promise<number>;
  at: number;
}

function encodeIdentity(seq: number, at: number): Buffer {
  const value = Buffer.alloc(16);
  value.writeBigUInt64BE(BigInt(seq), 0);
  value.writeBigUInt64BE(BigInt(Math.max(0, Math.round(at))), 8);
  return value;
}

interface Waiter {
  bytes: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * The durable outbound queue of one link, on a store area. `append` numbers a message with the next sequence and
 * resolves once it is committed (the caller acknowledges its publisher only then); the sender reads committed
 * entries in order with `peek` and removes each with `ack` once the remote acknowledged it. Sequences never
 * repeat, across restarts too: the highest acknowledged one is persisted with every removal, so the remote's
 * de-duplication by (origin, sequence) stays sound.
 *
 * Committed entries are mirrored in memory (bounded by `maxBytes`) so sending never reads the disk.
 *
 * A message with a publish identity is taken once: the identity is recorded in the same store write as its entry
 * and kept (after the entry is acknowledged too) for a bounded window, so the message published again after a
 * crash of the publisher's node (a pending QoS 2 id) resolves with the sequence it got the first time instead of
 * crossing twice.
 */
export class LinkQueue {
  private readonly entries = new Map<number, QueueEntry>();
  /** Entries whose commit has not resolved yet: not sent before they are durable. */
  private readonly uncommitted = new Set<number>();
  private readonly waiters: Waiter[] = [];
  /** Identity key → what the queue gave it; insertion order is the order taken (the oldest first). */
  private readonly identities = new Map<string, TakenIdentity>();
  private readonly identityLimits: ArrivalLimits;
  private repeats = 0;
  private nextSeq: number;
  private totalBytes = 0;
  private ackedUpTo: number;
  private closed = false;
  private readonly now: () => number;
  /** Called when committed entries become available to send. */
  onReady: () => void = () => undefined;

  private constructor(readonly name: string, private readonly area: StoreArea, private readonly options: LinkQueueOptions, acked: number) {
    this.ackedUpTo = acked;
    this.nextSeq = acked + 1;
    this.now = options.now ?? Date.now;
    this.identityLimits = options.identityLimits ?? DEFAULT_ARRIVAL_LIMITS;
  }

  static async open(name: string, area: StoreArea, options: LinkQueueOptions): Promise<LinkQueue> {
    const ackedRaw = await area.get(ACKED_KEY);
    const queue = new LinkQueue(name, area, options, ackedRaw ? Number(ackedRaw.readBigUInt64BE()) : 0);
    for (const [key, value] of await area.range(ENTRY_PREFIX)) {
      const entry = decodeQueueEntry(value);
      if (entryKey(entry.seq) !== key) throw new Error(`link queue ${name}: entry ${key} holds sequence ${entry.seq}`);
      queue.entries.set(entry.seq, entry);
      queue.totalBytes += entry.bytes;
      queue.nextSeq = Math.max(queue.nextSeq, entry.seq + 1);
    }
    queue.loadIdentities(await area.range(IDENTITY_PREFIX));
    return queue;
  }

  private loadIdentities(records: [string, Buffer][]): void {
    const taken = records.map(([key, value]) => {
      if (value.length !== 16) throw new Error(`link queue ${this.name}: identity record ${key} has ${value.length} bytes, expected 16`);
      return { key, seq: Number(value.readBigUInt64BE(0)), at: Number(value.readBigUInt64BE(8)) };
    });
    for (const { key, seq, at } of taken.sort((a, b) => a.at - b.at)) this.identities.set(key, { seq: Promise.resolve(seq), at });
  }

  get depth(): number { return this.entries.size; }
  get bytes(): number { return this.totalBytes; }
  get maxBytes(): number { return this.options.maxBytes; }
  get lastAcked(): number { return this.ackedUpTo; }
  /** Appends not queued again because their publish identity was taken already. */
  get repeatsSkipped(): number { return this.repeats; }
  /** Publish identities remembered now. */
  get identityCount(): number { return this.identities.size; }

  /** Age of the oldest entry in milliseconds (0 when empty): how far the remote lags. */
  oldestAgeMs(): number {
    for (const entry of this.entries.values()) return Math.max(0, this.now() - entry.enqueuedAt);
    return 0;
  }

  /** Would `message` fit right now? */
  hasRoomFor(message: LinkMessage): boolean {
    return this.fits(sizeOf(message));
  }

  /**
   * Appends `message`; resolves with its sequence once it is durable. When full: `reject` throws
   * LinkQueueFullError; `block` waits for room first (back-pressure). With `wait: false` (QoS 0), a full queue
   * throws instead of waiting. A message whose publish identity the queue took already (within the window) is not
   * appended again: it resolves with the earlier sequence once that one is durable.
   */
  async append(message: LinkMessage, opts: { wait?: boolean } = {}): Promise<number> {
    if (message.publishId === undefined) return this.appendEntry(message, opts);
    const key = identityKey(message.publishId);
    const taken = this.identities.get(key);
    if (taken) {
      this.repeats++;
      return taken.seq;
    }
    let settle!: { resolve: (seq: number) => void; reject: (err: Error) => void };
    const seq = new Promise<number>((resolve, reject) => { settle = { resolve, reject }; });
    seq.catch(() => undefined); // a repeat awaiting it gets the failure; nobody else must
    this.identities.set(key, { seq, at: this.now() });
    try {
      const appended = await this.appendEntry(message, opts, key);
      settle.resolve(appended);
      return appended;
    } catch (err) {
      this.identities.delete(key);
      settle.reject(err as Error);
      throw err;
    }
  }

  private async appendEntry(message: LinkMessage, opts: { wait?: boolean }, identity?: string): Promise<number> {
    const bytes = sizeOf(message);
    if (!this.fits(bytes)) {
      if (this.options.whenFull === 'reject' || opts.wait === false) throw new LinkQueueFullError(this.name, this.totalBytes, this.options.maxBytes);
      await new Promise<void>((resolve, reject) => this.waiters.push({ bytes, resolve, reject }));
    }
    if (this.closed) throw new LinkQueueClosedError(this.name);
    const entry: QueueEntry = { seq: this.nextSeq++, message, bytes, enqueuedAt: this.now() };
    this.entries.set(entry.seq, entry);
    this.uncommitted.add(entry.seq);
    this.totalBytes += bytes;
    try {
      if (identity === undefined) await this.area.put(entryKey(entry.seq), encodeQueueEntry(entry));
      else await this.area.batch(this.identifiedEntryOps(entry, identity));
    } catch (err) {
      // Not stored, and the publisher is not acknowledged (it sends again): not sent either.
      this.entries.delete(entry.seq);
      this.totalBytes -= bytes;
      this.wakeWaiters();
      throw err;
    } finally {
      this.uncommitted.delete(entry.seq);
    }
    this.onReady();
    return entry.seq;
  }

  /** The entry, its identity record and the deletion of the identities it pushes out of the window: one write. */
  private identifiedEntryOps(entry: QueueEntry, identity: string): AreaOp[] {
    const ops: AreaOp[] = [
      { type: 'put', key: entryKey(entry.seq), value: encodeQueueEntry(entry) },
      { type: 'put', key: identity, value: encodeIdentity(entry.seq, entry.enqueuedAt) },
    ];
    for (const evicted of this.evictIdentities(identity)) ops.push({ type: 'del', key: evicted });
    return ops;
  }

  /** Identities pushed out of the window (too old, or too many), `keep` (the one being taken) excepted. */
  private evictIdentities(keep: string): string[] {
    const evicted: string[] = [];
    const oldest = this.now() - this.identityLimits.windowMs;
    for (const [key, taken] of this.identities) {
      if (this.identities.size <= this.identityLimits.maxArrivals && taken.at >= oldest) break;
      if (key === keep) continue;
      this.identities.delete(key);
      evicted.push(key);
    }
    return evicted;
  }

  /**
   * Up to `limit` committed entries with a sequence above `afterSeq`, oldest first, and at most `maxBytes` of them
   * (at least one); stops at an uncommitted one. Costs the entries returned, not the depth of the queue.
   */
  peek(afterSeq: number, limit: number, maxBytes = Infinity): QueueEntry[] {
    const out: QueueEntry[] = [];
    let bytes = 0;
    const oldest = this.entries.keys().next();
    if (oldest.done) return out;
    for (let seq = Math.max(afterSeq + 1, oldest.value); seq < this.nextSeq && out.length < limit; seq++) {
      const entry = this.entries.get(seq);
      if (!entry) continue;
      if (this.uncommitted.has(seq)) break;
      if (out.length > 0 && bytes + entry.bytes > maxBytes) break;
      bytes += entry.bytes;
      out.push(entry);
    }
    return out;
  }

  /** The remote acknowledged `seq`: remove it (the removal and the new acknowledged mark commit together). */
  async ack(seq: number): Promise<void> {
    return this.ackAll([seq]);
  }

  /** The remote acknowledged a batch: remove its entries and persist the new mark in one write. */
  async ackAll(seqs: number[]): Promise<void> {
    const ops: AreaOp[] = [];
    for (const seq of seqs) {
      const entry = this.entries.get(seq);
      if (!entry) continue;
      this.entries.delete(seq);
      this.totalBytes -= entry.bytes;
      this.ackedUpTo = Math.max(this.ackedUpTo, seq);
      ops.push({ type: 'del', key: entryKey(seq) });
    }
    if (ops.length === 0) return;
    const mark = Buffer.alloc(8);
    mark.writeBigUInt64BE(BigInt(this.ackedUpTo));
    ops.push({ type: 'put', key: ACKED_KEY, value: mark });
    this.wakeWaiters();
    await this.area.batch(ops);
  }

  /** Removes every entry (the link was deleted); publishers waiting for room are failed. */
  async purge(): Promise<void> {
    const seqs = [...this.entries.keys()];
    for (const seq of seqs) await this.ack(seq);
  }

  close(): void {
    this.closed = true;
    for (const waiter of this.waiters.splice(0)) waiter.reject(new LinkQueueClosedError(this.name));
  }

  private fits(bytes: number): boolean {
    // An entry larger than the whole queue still goes in alone, so it can never wait forever.
    return this.totalBytes + bytes <= this.options.maxBytes || this.entries.size === 0;
  }

  private wakeWaiters(): void {
    let room = this.options.maxBytes - this.totalBytes;
    while (this.waiters.length > 0) {
      const waiter = this.waiters[0];
      if (waiter.bytes > room && !(this.entries.size === 0 && room === this.options.maxBytes)) break;
      this.waiters.shift();
      room -= waiter.bytes;
      // The woken append takes its room when it runs; an append racing it may overshoot maxBytes by one message.
      waiter.resolve();
    }
  }
}

function sizeOf(message: LinkMessage): number {
  return Buffer.byteLength(message.topic) + message.payload.length + Buffer.byteLength(message.publisherClientId) + ENTRY_OVERHEAD;
}
