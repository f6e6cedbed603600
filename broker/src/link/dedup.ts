import { createHash } from 'node:crypto';
import type { AreaOp, StoreArea } from '../store/index.js';

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
  /** Of the duplicates: twin-marked messages whose twin (sent by another agent of the origin region) was delivered. */
  twins?: number;
}

/** How many twin identities are remembered per origin cluster, and for how long. */
export interface TwinLimits {
  maxIdentities: number;
  windowMs: number;
}

/** A move's twins arrive within seconds to minutes (the dead agent drains when it returns): 1 h, 65 536 per origin cluster. */
export const DEFAULT_TWIN_LIMITS: TwinLimits = { maxIdentities: 65_536, windowMs: 3_600_000 };

/** Stored twin identity: `twin\0<cluster>\0<identity>` → time delivered (u64 ms). Marks are `<cluster>\0<agent>` (one NUL). */
const TWIN_PREFIX = 'twin\u0000';
/** Longer identities are keyed by their SHA-256 (store keys are bounded). */
const MAX_TWIN_KEY_CHARS = 200;

const twinKey = (cluster: string, id: string): string =>
  `${TWIN_PREFIX}${cluster}\u0000${id.length <= MAX_TWIN_KEY_CHARS ? id : `#${createHash('sha256').update(id).digest('hex')}`}`;

/**
 * The identities of *twin-marked* messages delivered lately, per origin cluster: a message the origin region may have
 * sent through two of its agents (a link moved while a copy was in flight to the agent that died: the copy was
 * handed over to the new holder and is still in the dead agent's queue). Whichever twin arrives first is delivered
 * and its identity recorded (persisted with the carrier's mark, same write); the other is dropped. Unmarked messages
 * never touch it. Bounded by `TwinLimits` (the oldest are deleted in the write that pushes them out).
 */
class TwinWindow {
  /** Per origin cluster: identity key → time delivered (or being delivered), oldest first. */
  private readonly byCluster = new Map<string, Map<string, number>>();
  private loaded?: Promise<void>;

  constructor(private readonly area: StoreArea, private readonly limits: TwinLimits, private readonly now: () => number) {}

  /** Reads the persisted window once (before the first twin-marked message is checked). */
  load(): Promise<void> {
    this.loaded ??= this.area.range(TWIN_PREFIX).then((records) => {
      const found: Array<{ cluster: string; key: string; at: number }> = [];
      for (const [key, value] of records) {
        const cluster = key.slice(TWIN_PREFIX.length, key.indexOf('\u0000', TWIN_PREFIX.length));
        if (value.length !== 8) throw new Error(`link de-dup: twin record ${JSON.stringify(key)} has ${value.length} bytes, expected 8`);
        found.push({ cluster, key, at: Number(value.readBigUInt64BE()) });
      }
      for (const { cluster, key, at } of found.sort((a, b) => a.at - b.at)) this.clusterMap(cluster).set(key, at);
    });
    return this.loaded;
  }

  has(cluster: string, id: string): boolean {
    return this.byCluster.get(cluster)?.has(twinKey(cluster, id)) === true;
  }

  /** Claims `id` before its delivery (a twin arriving meanwhile from another agent is then dropped). */
  claim(cluster: string, id: string): void {
    this.clusterMap(cluster).set(twinKey(cluster, id), this.now());
  }

  /** The delivery failed: the twin may be delivered by whichever copy comes next. */
  release(cluster: string, id: string): void {
    this.byCluster.get(cluster)?.delete(twinKey(cluster, id));
  }

  /** The writes that persist `ids` (delivered) and delete what falls out of the window (oldest first, these included). */
  recordOps(cluster: string, ids: string[]): AreaOp[] {
    const map = this.clusterMap(cluster);
    const ops: AreaOp[] = [];
    const oldest = this.now() - this.limits.windowMs;
    for (const [key, at] of map) {
      if (map.size <= this.limits.maxIdentities && at >= oldest) break;
      map.delete(key);
      ops.push({ type: 'del', key });
    }
    for (const id of ids) {
      const key = twinKey(cluster, id);
      const at = map.get(key);
      if (at === undefined) continue;
      const value = Buffer.alloc(8);
      value.writeBigUInt64BE(BigInt(Math.max(0, Math.round(at))));
      ops.push({ type: 'put', key, value });
    }
    return ops;
  }

  size(cluster: string): number {
    return this.byCluster.get(cluster)?.size ?? 0;
  }

  private clusterMap(cluster: string): Map<string, number> {
    let map = this.byCluster.get(cluster);
    if (!map) this.byCluster.set(cluster, map = new Map());
    return map;
  }
}

/** One message of a batch being published: its publish (null: its twin was delivered before) and twin identity. */
interface BatchStep {
  seq: number;
  delivery: Promise<void> | null;
  twin: string | undefined;
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
 * at a time, in arrival order, their messages' publishes started in order and their results taken in order, so the
 * mark only ever moves forward over published messages.
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
  private readonly twins: TwinWindow;
  /** Sequences skipped by an origin (a gap means the sender lost queue entries: worth an alert). */
  gaps = 0;

  constructor(private readonly area: StoreArea, twinLimits: TwinLimits = DEFAULT_TWIN_LIMITS, now: () => number = Date.now) {
    this.twins = new TwinWindow(area, twinLimits, now);
  }

  /** Twin identities remembered for an origin cluster (status, tests). */
  twinCount(cluster: string): number {
    return this.twins.size(cluster);
  }

  /**
   * Runs `deliver(i)` for each message `seqs[i]` not delivered before, in order (all started at once), then records
   * the highest; batches of one origin run one at a time in call order. Resolves once the record is durable. When a
   * delivery fails, what was delivered before it is recorded and the batch rejects with that error (the deliveries
   * after it were started too: the resend publishes them again).
   *
   * `twinIds[i]`, when set, marks message i as a possible twin (see `TwinWindow`): it is delivered only if no message
   * with that identity from the same origin cluster was, and its identity is recorded in the same write as the mark.
   */
  processBatch(origin: Origin, seqs: number[], deliver: (index: number) => Promise<void>, onReset?: (reset: OriginReset) => void, twinIds?: ReadonlyArray<string | undefined>): Promise<BatchVerdict> {
    const key = `${origin.cluster}\u0000${origin.agent}`;
    const previous = this.chains.get(key) ?? Promise.resolve();
    const published = previous.catch(() => undefined).then(() => this.publishInOrder(key, origin, seqs, deliver, onReset, twinIds));
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

  /**
   * Delivers a twin-marked message unless its twin was delivered (true: delivered now). Used for carriers that bypass
   * the order-based window (`TakeoverDedup`'s handed-over carriers); persisted at once.
   */
  async deliverTwin(cluster: string, id: string, deliver: () => Promise<void>): Promise<boolean> {
    await this.twins.load();
    if (this.twins.has(cluster, id)) return false;
    this.twins.claim(cluster, id);
    try {
      await deliver();
    } catch (err) {
      this.twins.release(cluster, id);
      throw err;
    }
    await this.area.batch(this.twins.recordOps(cluster, [id]));
    return true;
  }

  private async publishInOrder(key: string, origin: Origin, seqs: number[], deliver: (index: number) => Promise<void>, onReset?: (reset: OriginReset) => void, twinIds?: ReadonlyArray<string | undefined>): Promise<{ verdict: BatchVerdict; recorded: Promise<void>; error?: Error }> {
    const state = await this.load(key);
    const twinsDelivered: string[] = [];
    if (twinIds?.some((id) => id !== undefined)) await this.twins.load();
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
    // Every publish of the batch starts at once, in order (the broker keeps their order, as for a client's pipelined
    // publishes); awaiting each before starting the next cost a few event-loop turns per message, so the last of a
    // 100-message carrier waited tens of ms. Their results are taken in order: the mark stops before the first failure.
    const steps: BatchStep[] = [];
    let last = state.mark;
    for (let i = 0; i < seqs.length; i++) {
      const seq = seqs[i];
      if (seq <= state.mark) {
        verdict.duplicates++;
        continue;
      }
      if (last > 0 && seq > last + 1) this.gaps++;
      last = seq;
      const twin = twinIds?.[i];
      if (twin !== undefined && this.twins.has(origin.cluster, twin)) {
        // Its twin, sent by another agent of the origin region, was delivered: handled (the mark moves over it).
        steps.push({ seq, delivery: null, twin });
        continue;
      }
      if (twin !== undefined) this.twins.claim(origin.cluster, twin);
      const delivery = deliver(i);
      delivery.catch(() => undefined);
      steps.push({ seq, delivery, twin });
    }
    let error: Error | undefined;
    for (const step of steps) {
      if (error !== undefined) {
        // Not counted as delivered: the resend publishes it again (persistent sessions know it by its publish identity).
        if (step.delivery && step.twin !== undefined) this.twins.release(origin.cluster, step.twin);
        continue;
      }
      if (step.delivery === null) {
        state.mark = step.seq;
        changed = true;
        verdict.duplicates++;
        verdict.twins = (verdict.twins ?? 0) + 1;
        continue;
      }
      try {
        await step.delivery;
      } catch (err) {
        if (step.twin !== undefined) this.twins.release(origin.cluster, step.twin);
        error = err as Error;
        continue;
      }
      if (step.twin !== undefined) twinsDelivered.push(step.twin);
      state.mark = step.seq;
      changed = true;
      verdict.delivered++;
    }
    const twinOps = twinsDelivered.length === 0 ? [] : this.twins.recordOps(origin.cluster, twinsDelivered);
    const recorded = changed || state.unsaved ? this.save(key, state, twinOps) : Promise.resolve();
    return { verdict, recorded, error };
  }

  private async save(key: string, state: OriginState, twinOps: AreaOp[] = []): Promise<void> {
    try {
      if (twinOps.length === 0) await this.area.put(key, encodeState(state));
      else await this.area.batch([{ type: 'put', key, value: encodeState(state) }, ...twinOps]);
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
