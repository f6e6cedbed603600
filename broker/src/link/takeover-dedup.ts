import { DedupWindow, type BatchVerdict, type Origin, type OriginReset } from './dedup.js';

/** Per remote origin agent, how many delivered sequences are remembered for handed-over carriers. */
const RECENT_MAX = 65_536;

/**
 * The sidecar's de-duplication in front of the link's `DedupWindow` (which it delegates to), for links that move
 * between the agents of a region. It remembers the sequences this agent delivered lately, per origin, and handles
 * a *handed-over* carrier — one that reached the previously active agent, which is gone, and was passed to this one
 * by the node the remote agent published it on. This agent may already have delivered newer messages of that
 * origin (sent after it took the link over), so the order-based window would call the older ones duplicates and
 * drop them; they are checked against the remembered sequences instead (a message the gone agent published before
 * dying is published again: at-least-once across a move, never lost).
 */
export class TakeoverDedup extends DedupWindow {
  private readonly recent = new Map<string, Set<number>>();
  /** The same window for handed-over carriers. */
  readonly handedOver: DedupWindow;

  constructor(private readonly inner: DedupWindow, area: ConstructorParameters<typeof DedupWindow>[0]) {
    super(area);
    const outer = this;
    this.handedOver = new (class extends DedupWindow {
      override processBatch(origin: Origin, seqs: number[], deliver: (index: number) => Promise<void>, onReset?: (reset: OriginReset) => void, twinIds?: ReadonlyArray<string | undefined>): Promise<BatchVerdict> {
        return outer.processHandedOver(origin, seqs, deliver, onReset, twinIds);
      }
    })(area);
  }

  override processBatch(origin: Origin, seqs: number[], deliver: (index: number) => Promise<void>, onReset?: (reset: OriginReset) => void, twinIds?: ReadonlyArray<string | undefined>): Promise<BatchVerdict> {
    return this.inner.processBatch(origin, seqs, async (i) => {
      await deliver(i);
      this.note(origin, seqs[i]);
    }, onReset, twinIds);
  }

  override twinCount(cluster: string): number {
    return this.inner.twinCount(cluster);
  }

  override mark(cluster: string, agent: string): Promise<number> {
    return this.inner.mark(cluster, agent);
  }

  private async processHandedOver(origin: Origin, seqs: number[], deliver: (index: number) => Promise<void>, onReset?: (reset: OriginReset) => void, twinIds?: ReadonlyArray<string | undefined>): Promise<BatchVerdict> {
    const seen = this.recent.get(keyOf(origin));
    const mark = await this.inner.mark(origin.cluster, origin.agent);
    const verdict: BatchVerdict = { delivered: 0, duplicates: 0 };
    const above: number[] = [];
    for (let i = 0; i < seqs.length; i++) {
      if (seen?.has(seqs[i])) verdict.duplicates++;
      else if (seqs[i] > mark) above.push(i);
      else if (twinIds?.[i] !== undefined) {
        // A twin-marked message: delivered only if its twin (sent by another agent of the origin region) was not.
        if (await this.inner.deliverTwin(origin.cluster, twinIds[i] as string, () => deliver(i))) verdict.delivered++;
        else {
          verdict.duplicates++;
          verdict.twins = (verdict.twins ?? 0) + 1;
        }
        this.note(origin, seqs[i]);
      } else {
        await deliver(i);
        this.note(origin, seqs[i]);
        verdict.delivered++;
      }
    }
    if (above.length === 0) return verdict;
    const rest = await this.processBatch(origin, above.map((i) => seqs[i]), (j) => deliver(above[j]), onReset, twinIds && above.map((i) => twinIds[i]));
    const twins = (verdict.twins ?? 0) + (rest.twins ?? 0);
    return { delivered: verdict.delivered + rest.delivered, duplicates: verdict.duplicates + rest.duplicates, ...(twins > 0 ? { twins } : {}) };
  }

  private note(origin: Origin, seq: number): void {
    const key = keyOf(origin);
    const seen = this.recent.get(key) ?? new Set<number>();
    seen.add(seq);
    if (seen.size > RECENT_MAX) seen.delete(seen.values().next().value as number);
    this.recent.set(key, seen);
  }
}

function keyOf(origin: Origin): string {
  return `${origin.cluster}\u0000${origin.agent}`;
}
