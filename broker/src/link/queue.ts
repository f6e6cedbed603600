import { deserialize, serialize } from 'node:v8';
import type { AreaOp, StoreArea } from '../store/index.js';

/** A message on its way to a remote cluster, with what the remote needs to publish it as the original. */
export interface LinkMessage {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  publisherClientId: string;
  /** Milliseconds since the epoch, when the origin cluster received it. */
  timestamp: number;
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
const SEQ_DIGITS = 14;
/** Bytes an entry costs besides topic and payload (sequence, flags, client id, timestamp, key). */
const ENTRY_OVERHEAD = 48;

const entryKey = (seq: number): string => ENTRY_PREFIX + seq.toString(16).padStart(SEQ_DIGITS, '0');

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
 */
export class LinkQueue {
  private readonly entries = new Map<number, QueueEntry>();
  /** Entries whose commit has not resolved yet: not sent before they are durable. */
  private readonly uncommitted = new Set<number>();
  private readonly waiters: Waiter[] = [];
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
  }

  static async open(name: string, area: StoreArea, options: LinkQueueOptions): Promise<LinkQueue> {
    const ackedRaw = await area.get(ACKED_KEY);
    const queue = new LinkQueue(name, area, options, ackedRaw ? Number(ackedRaw.readBigUInt64BE()) : 0);
    for (const [key, value] of await area.range(ENTRY_PREFIX)) {
      const entry = deserialize(value) as QueueEntry;
      if (entryKey(entry.seq) !== key) throw new Error(`link queue ${name}: entry ${key} holds sequence ${entry.seq}`);
      queue.entries.set(entry.seq, entry);
      queue.totalBytes += entry.bytes;
      queue.nextSeq = Math.max(queue.nextSeq, entry.seq + 1);
    }
    return queue;
  }

  get depth(): number { return this.entries.size; }
  get bytes(): number { return this.totalBytes; }
  get maxBytes(): number { return this.options.maxBytes; }
  get lastAcked(): number { return this.ackedUpTo; }

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
   * throws instead of waiting.
   */
  async append(message: LinkMessage, opts: { wait?: boolean } = {}): Promise<number> {
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
      await this.area.put(entryKey(entry.seq), serialize(entry));
    } finally {
      this.uncommitted.delete(entry.seq);
    }
    this.onReady();
    return entry.seq;
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
