import type { AckMessage, LaneRef, LaneVersion, RouteSpec, SnapshotMessage } from './messages.js';
import { RouteSet } from './route-set.js';

interface Assembly {
  lane: LaneVersion;
  nextPart: number;
  routes: RouteSet;
  updatedAt: number;
}

export type SequenceVerdict = 'process' | 'duplicate' | 'out_of_order';

/** A snapshot completed by its last chunk, ready to be applied as a whole. */
export interface CompletedSnapshot {
  lane: LaneVersion;
  routes: RouteSet;
}

/**
 * The receiving half of one stream (peer → this actor): which sequenced message comes next, snapshot chunks
 * being assembled (applied only when complete, so a broken bootstrap never half-applies), the resync requests
 * and the cumulative ack to send back.
 */
export class InboundSession {
  private expectedSeq = 1;
  private readonly assemblies = new Map<string, Assembly>();
  private readonly resyncWanted = new Map<string, number>();
  /** When a resync of a lane was last asked for: asking again waits a little. */
  private readonly resyncAskedAt = new Map<string, number>();
  private ackDue = false;

  constructor(
    readonly peer: string,
    readonly incarnation: number,
    readonly conn: number,
    readonly role: string,
    private readonly resyncRetryMs: number,
  ) {}

  /** Compares a stream's (incarnation, conn) with this session's: -1 older, 0 same, 1 newer. */
  compareStream(incarnation: number, conn: number): -1 | 0 | 1 {
    if (incarnation !== this.incarnation) return incarnation < this.incarnation ? -1 : 1;
    if (conn !== this.conn) return conn < this.conn ? -1 : 1;
    return 0;
  }

  /** Whether a sequenced message is the next one; duplicates and early arrivals are re-acked, not processed. */
  admit(seq: number): SequenceVerdict {
    this.ackDue = true;
    if (seq < this.expectedSeq) return 'duplicate';
    if (seq > this.expectedSeq) return 'out_of_order';
    this.expectedSeq++;
    return 'process';
  }

  /** Whether every sequenced message up to `afterSeq` (and none after) has been processed. */
  caughtUpTo(afterSeq: number): boolean {
    return this.expectedSeq - 1 === afterSeq;
  }

  /** Adds a chunk; returns the whole snapshot after its last chunk. A chunk out of place restarts the lane. */
  addChunk(message: SnapshotMessage, now: number): CompletedSnapshot | null {
    const actor = message.lane.actor;
    let assembly = this.assemblies.get(actor);
    if (message.part === 0) {
      assembly = { lane: message.lane, nextPart: 0, routes: new RouteSet(), updatedAt: now };
      this.assemblies.set(actor, assembly);
    }
    if (assembly === undefined || !sameLaneVersion(assembly.lane, message.lane) || assembly.nextPart !== message.part) {
      this.assemblies.delete(actor);
      this.requestResync(message.lane, now);
      return null;
    }
    addAll(assembly.routes, message.routes);
    assembly.nextPart++;
    assembly.updatedAt = now;
    if (!message.last) return null;
    this.assemblies.delete(actor);
    this.resyncAskedAt.delete(actor);
    return { lane: assembly.lane, routes: assembly.routes };
  }

  /**
   * A delta of a lane arrived. The sender holds a lane's deltas back while its snapshot is under way, so a delta
   * in the middle of an assembly means the snapshot was abandoned (the lane stopped being exported meanwhile).
   */
  noteDelta(actor: string): void {
    this.assemblies.delete(actor);
  }

  /** Drops snapshot assemblies that got no chunk for `idleMs` (their sender gave up on them). */
  expireAssemblies(now: number, idleMs: number): void {
    for (const [actor, assembly] of this.assemblies) if (now - assembly.updatedAt > idleMs) this.assemblies.delete(actor);
  }

  /** Asks the sender for a snapshot of a lane (at most once per retry period while one is awaited). */
  requestResync(lane: LaneRef, now: number): void {
    const askedAt = this.resyncAskedAt.get(lane.actor);
    if (askedAt !== undefined && now - askedAt < this.resyncRetryMs) return;
    this.resyncAskedAt.set(lane.actor, now);
    this.resyncWanted.set(lane.actor, lane.incarnation);
    this.ackDue = true;
  }

  /** The ack to send, if one is due. */
  takeAck(): AckMessage | null {
    if (!this.ackDue) return null;
    this.ackDue = false;
    const resync: LaneRef[] = [];
    for (const [actor, incarnation] of this.resyncWanted) resync.push({ actor, incarnation });
    this.resyncWanted.clear();
    return { type: 'ack', incarnation: this.incarnation, conn: this.conn, seq: this.expectedSeq - 1, resync, reinit: false };
  }

  get assembling(): number {
    return this.assemblies.size;
  }
}

function sameLaneVersion(a: LaneVersion, b: LaneVersion): boolean {
  return a.actor === b.actor && a.incarnation === b.incarnation && a.version === b.version;
}

function addAll(set: RouteSet, routes: readonly RouteSpec[]): void {
  for (const r of routes) set.add(r.filter, r.routeId);
}
