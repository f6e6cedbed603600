import type { StoreArea } from '../store/index.js';

export type DedupVerdict = 'delivered' | 'duplicate';

/**
 * The receiving side's persisted de-duplication window. A sending agent numbers its messages 1, 2, 3… once and
 * for all (its queue persists the sequence), sends them in order, and resends from its oldest unacknowledged one
 * after any reconnect or restart; so per (origin cluster, origin agent) the window is the highest sequence
 * delivered: anything at or below it is a resend. Messages of one origin are processed one at a time, in arrival
 * order, so the mark only ever moves forward over delivered messages.
 *
 * The mark is written after the local publish has resolved and before the sender is acknowledged: a crash before
 * the mark is durable makes the sender resend, and a resend after it is recognised.
 */
export class DedupWindow {
  private readonly marks = new Map<string, number>();
  private readonly chains = new Map<string, Promise<unknown>>();
  /** Sequences skipped by an origin (a gap means the sender lost queue entries: worth an alert). */
  gaps = 0;

  constructor(private readonly area: StoreArea) {}

  /**
   * Runs `deliver` for a message unless it was delivered before, then records it; calls of one origin run one at
   * a time in call order. Resolves once the verdict is durable.
   */
  process(cluster: string, agent: string, seq: number, deliver: () => Promise<void>): Promise<DedupVerdict> {
    const key = `${cluster}\u0000${agent}`;
    const previous = this.chains.get(key) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(() => this.processInOrder(key, seq, deliver));
    this.chains.set(key, run);
    void run.finally(() => {
      if (this.chains.get(key) === run) this.chains.delete(key);
    }).catch(() => undefined);
    return run;
  }

  /** The highest sequence delivered from an origin (0 when none). */
  async mark(cluster: string, agent: string): Promise<number> {
    return this.load(`${cluster}\u0000${agent}`);
  }

  private async processInOrder(key: string, seq: number, deliver: () => Promise<void>): Promise<DedupVerdict> {
    const mark = await this.load(key);
    if (seq <= mark) return 'duplicate';
    if (mark > 0 && seq > mark + 1) this.gaps++;
    await deliver();
    const value = Buffer.alloc(8);
    value.writeBigUInt64BE(BigInt(seq));
    await this.area.put(key, value);
    this.marks.set(key, seq);
    return 'delivered';
  }

  private async load(key: string): Promise<number> {
    const cached = this.marks.get(key);
    if (cached !== undefined) return cached;
    const stored = await this.area.get(key);
    const mark = stored ? Number(stored.readBigUInt64BE()) : 0;
    this.marks.set(key, mark);
    return mark;
  }
}
