import type { Logger } from '../log/logger.js';
import type { StoreArea } from '../store/index.js';
import type { LinkMessage, QueueEntry } from './queue.js';

/** The identity of a cluster-forwarded copy (forward codec `copy`) and the node that sent it. */
export interface CopyOrigin {
  node: string;
  incarnation: number;
  seq: number;
  /** 0 for the first copy; above 0 when the node resent it to this agent's next incarnation. */
  attempt: number;
}

/** A queued message that records which copy it came from, in the same store write as the queue entry. */
export interface IntakeMessage extends LinkMessage {
  intake?: { node: string; incarnation: number; seq: number };
}

type Mark = [incarnation: number, seq: number];

const after = (a: Mark, b: Mark): boolean => a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]);

/**
 * Which copies the sidecar had queued for each link before it restarted, so that a copy the sending node resends
 * to this incarnation (it was never acknowledged) is not queued a second time.
 *
 * A node numbers its copies to link agents in the order it sends them, and one node's copies reach the agent in that
 * order; the agent appends them to a link queue in arrival order and the store commits writes in issue order. So the
 * copies of one node committed to one link by an incarnation are a prefix of what it received, and the highest one
 * (`frozen`, per link × node) decides: a *resent* copy at or below it was queued (or was not wanted) before the
 * crash. Only resent copies are checked, against the previous incarnations' marks, never against this one's: a
 * resend may arrive after newer first copies.
 *
 * The identity of every copy is stored in its queue entry (same write, hence atomic with the append); the marks in
 * `area` are written after each commit, before the entry can be acknowledged by the remote and removed, so a
 * removed entry still leaves its mark.
 */
export class IntakeMarks {
  private readonly frozen = new Map<string, Mark>();
  private readonly live = new Map<string, Mark>();
  private readonly dirty = new Set<string>();
  private readonly scanned = new Set<string>();
  private flushScheduled = false;
  skipped = 0;

  private constructor(private readonly area: StoreArea, private readonly logger: Logger) {}

  static async open(area: StoreArea, logger: Logger): Promise<IntakeMarks> {
    const marks = new IntakeMarks(area, logger);
    for (const [key, value] of await area.range('')) {
      const mark: Mark = [Number(value.readBigUInt64BE(0)), Number(value.readBigUInt64BE(8))];
      marks.frozen.set(key, mark);
      marks.live.set(key, mark);
    }
    return marks;
  }

  /** At the first start of a link in this process: the identities in its queue count as seen before the restart. */
  scanQueue(link: string, entries: Iterable<QueueEntry>): void {
    if (this.scanned.has(link)) return;
    this.scanned.add(link);
    for (const entry of entries) {
      const intake = (entry.message as IntakeMessage).intake;
      if (!intake) continue;
      const key = keyOf(link, intake.node);
      const mark: Mark = [intake.incarnation, intake.seq];
      if (!this.frozen.has(key) || after(mark, this.frozen.get(key) as Mark)) this.frozen.set(key, mark);
      this.raiseLive(key, mark);
    }
  }

  /** Was this resent copy queued for `link` before this agent restarted? */
  seenBefore(link: string, origin: CopyOrigin): boolean {
    if (origin.attempt === 0) return false;
    const frozen = this.frozen.get(keyOf(link, origin.node));
    return frozen !== undefined && !after([origin.incarnation, origin.seq], frozen);
  }

  /** The copy is committed in `link`'s queue: its mark is written (issued now, before any later removal). */
  recorded(link: string, origin: CopyOrigin): void {
    const key = keyOf(link, origin.node);
    if (!this.raiseLive(key, [origin.incarnation, origin.seq])) return;
    this.dirty.add(key);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => this.flush());
  }

  private raiseLive(key: string, mark: Mark): boolean {
    const current = this.live.get(key);
    if (current && !after(mark, current)) return false;
    this.live.set(key, mark);
    return true;
  }

  private flush(): void {
    this.flushScheduled = false;
    const ops = [...this.dirty].map((key) => {
      const [incarnation, seq] = this.live.get(key) as Mark;
      const value = Buffer.alloc(16);
      value.writeBigUInt64BE(BigInt(incarnation), 0);
      value.writeBigUInt64BE(BigInt(seq), 8);
      return { type: 'put' as const, key, value };
    });
    this.dirty.clear();
    this.area.batch(ops).catch((err: Error) => this.logger.warn({ err: err.message }, 'intake marks not stored (a copy resent after a restart may be queued twice)'));
  }
}

function keyOf(link: string, node: string): string {
  return `${link}\u0000${node}`;
}
