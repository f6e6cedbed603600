import type { StoreArea } from '../store/index.js';

export type DedupVerdict = 'delivered' | 'duplicate';

/** The origin agent of a batch: sequences are unique per (cluster, agent, epoch). */
export interface Origin {
  cluster: string;
  /** `<cluster>/<node>`. */
  agent: string;
  /** The agent's store epoch; null when the sender's format has none (the known epoch is kept). */
  epoch: string | null;
}

/** A known origin agent came back with a new store epoch: what it had queued and not yet delivered here is lost. */
export interface OriginReset {
  cluster: string;
  agent: string;
  oldEpoch: string;
  newEpoch: string;
  /** The highest sequence delivered under the old epoch. */
  oldMark: number;
  at: Date;
}

export interface BatchVerdict {
  delivered: number;
  duplicates: number;
}

interface OriginState {
  /** null: none known (a new origin, or a mark stored before epochs existed). */
  epoch: string | null;
  mark: number;
  /** The last write of this state failed: the next batch writes it even if it changes nothing. */
  unsaved?: boolean;
}

/**
 * The receiving side's persisted de-duplication window. A sending agent numbers its messages 1, 2, 3… once and
 * for all within its store epoch (its queue persists the sequence), sends them in order, and resends from its
 * oldest unacknowledged one after any reconnect or restart; so per (origin cluster, origin agent, epoch) the window
 * is the highest sequence delivered: anything at or below it is a resend. Batches of one origin are processed one
 * at a time, in arrival order, their messages published one after another, so the mark only ever moves forward
 * over published messages.
 *
 * The mark is written once per batch, after its last publish, and the batch's verdict resolves once that write is
 * durable (the carrier is acknowledged only then); the next batch of the origin is published meanwhile, and the
 * store's group commit puts the marks of many batches into one commit. A crash before a mark is durable makes the
 * sender resend the batch (published again: at-least-once for that window); a resend after it is recognised.
 *
 * An origin whose epoch changes (its store was deleted: sequences start over) gets a fresh window under the new
 * epoch; the reset is passed to `onReset` so that it can be reported. A mark stored without an epoch adopts the first one seen.
 */
export class DedupWindow {
  private readonly states = new Map<string, OriginState>();
  private readonly chains = new Map<string, Promise<unknown>>();
  /** Sequences skipped by an origin (a gap means the sender lost queue entries: worth an alert). */
  gaps = 0;

  constructor(private readonly area: StoreArea) {}

  /**
   * Runs `deliver(i)` for each message `seqs[i]` not delivered before, in order, then records the highest; batches
   * of one origin run one at a time in call order. Resolves once the record is durable. When a delivery fails, what
   * was delivered before it is recorded and the batch rejects with that error.
   */
  processBatch(origin: Origin, seqs: number[], deliver: (index: number) => Promise<void>, onReset?: (reset: OriginReset) => void): Promise<BatchVerdict> {
    const key = `${origin.cluster}\u0000${origin.agent}`;
    const previous = this.chains.get(key) ?? Promise.resolve();
    const published = previous.catch(() => undefined).then(() => this.publishInOrder(key, origin, seqs, deliver, onReset));
    // The next batch of the origin waits for this one's publishes only, not for its mark's commit.
    this.chains.set(key, published);
    void published.finally(() => {
      if (this.chains.get(key) === published) this.chains.delete(key);
    }).catch(() => undefined);
    return published.then(async (outcome) => {
      await outcome.recorded;
      if (outcome.error) throw outcome.error;
      return outcome.verdict;
    });
  }

  /** One message (the single-message format, no epoch): `process` of a batch of one. */
  async process(cluster: string, agent: string, seq: number, deliver: () => Promise<void>): Promise<DedupVerdict> {
    const verdict = await this.processBatch({ cluster, agent, epoch: null }, [seq], deliver);
    return verdict.delivered === 1 ? 'delivered' : 'duplicate';
  }

  /** The highest sequence delivered from an origin (0 when none) under its current epoch. */
  async mark(cluster: string, agent: string): Promise<number> {
    return (await this.load(`${cluster}\u0000${agent}`)).mark;
  }

  /**
   * The store epoch known for an origin agent and the mark under it; null when none is known (nothing received
   * from it, or only a mark from before epochs). Told to the agent when it opens a route-sync stream: an agent
   * whose store epoch differs lost its previous store.
   */
  async known(cluster: string, agent: string): Promise<{ epoch: string; mark: number } | null> {
    const state = await this.load(`${cluster}\u0000${agent}`);
    return state.epoch === null ? null : { epoch: state.epoch, mark: state.mark };
  }

  private async publishInOrder(key: string, origin: Origin, seqs: number[], deliver: (index: number) => Promise<void>, onReset?: (reset: OriginReset) => void): Promise<{ verdict: BatchVerdict; recorded: Promise<void>; error?: Error }> {
    const state = await this.load(key);
    const verdict: BatchVerdict = { delivered: 0, duplicates: 0 };
    let changed = false;
    if (origin.epoch !== null && state.epoch !== origin.epoch) {
      if (state.epoch !== null) {
        onReset?.({ cluster: origin.cluster, agent: origin.agent, oldEpoch: state.epoch, newEpoch: origin.epoch, oldMark: state.mark, at: new Date() });
        state.mark = 0;
      }
      state.epoch = origin.epoch;
      changed = true;
    }
    let error: Error | undefined;
    for (let i = 0; i < seqs.length; i++) {
      const seq = seqs[i];
      if (seq <= state.mark) {
        verdict.duplicates++;
        continue;
      }
      if (state.mark > 0 && seq > state.mark + 1) this.gaps++;
      try {
        await deliver(i);
      } catch (err) {
        error = err as Error;
        break;
      }
      state.mark = seq;
      changed = true;
      verdict.delivered++;
    }
    const recorded = changed || state.unsaved ? this.save(key, state) : Promise.resolve();
    return { verdict, recorded, error };
  }

  private async save(key: string, state: OriginState): Promise<void> {
    try {
      await this.area.put(key, encodeState(state));
      state.unsaved = false;
    } catch (err) {
      // The resend this causes is recognised from memory and would otherwise be acknowledged with nothing stored.
      state.unsaved = true;
      throw err;
    }
  }

  private async load(key: string): Promise<OriginState> {
    const cached = this.states.get(key);
    if (cached !== undefined) return cached;
    const state = decodeState(await this.area.get(key));
    // Another call may have loaded it meanwhile: keep the first, it may already have moved on.
    const raced = this.states.get(key);
    if (raced !== undefined) return raced;
    this.states.set(key, state);
    return state;
  }
}

/** Stored value: the mark (8 bytes) then the epoch (8 bytes, absent in marks written before epochs existed). */
function encodeState(state: OriginState): Buffer {
  const value = Buffer.alloc(state.epoch === null ? 8 : 16);
  value.writeBigUInt64BE(BigInt(state.mark));
  if (state.epoch !== null) Buffer.from(state.epoch, 'hex').copy(value, 8);
  return value;
}

function decodeState(value: Buffer | undefined): OriginState {
  if (!value) return { epoch: null, mark: 0 };
  const mark = Number(value.readBigUInt64BE());
  return { mark, epoch: value.length >= 16 ? value.subarray(8, 16).toString('hex') : null };
}
