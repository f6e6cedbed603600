/**
 * Which sessions a message with a publish identity was already queued for on this node, so that publishing it
 * again (a QoS 2 id left pending by a crash, published anew on the publisher's DUP resend) queues it for nobody
 * twice. See README.md, "QoS 2 receive state: pending until published".
 *
 * Two kinds of record, both written in the same commit as the queue entries they describe:
 * - origin: the message's publisher is connected here; the record is the pending incoming QoS 2 record itself
 *   (`i:` key), dropped from here when the message is marked published;
 * - arrival: a copy forwarded by the publisher's node; an `p:` record kept for `windowMs` / `maxArrivals`.
 */

export interface PublishOrigin {
  clientId: string;
  messageId: number;
}

export interface PublishDelivery {
  publishId: string;
  /** Sessions the message was queued for here (or refused for: a full queue), never to be queued for again. */
  handled: Set<string>;
  /** Present when the publisher's pending QoS 2 record is here; absent for a copy from another node. */
  origin?: PublishOrigin;
  /** When an arrival was first queued here (ms since the epoch). */
  at: number;
}

/** The `p:` value of an arrival. */
export interface ArrivalValue {
  publishId: string;
  handled: string[];
  at: number;
}

export interface ArrivalLimits {
  /** How long an arrival is remembered: a resend later than this after the crash is queued again. */
  windowMs: number;
  /** At most this many arrivals are remembered (the oldest go first). */
  maxArrivals: number;
}

/** A publisher resends after reconnecting: seconds to minutes after a crash of its node. */
export const DEFAULT_ARRIVAL_LIMITS: ArrivalLimits = { windowMs: 60 * 60 * 1000, maxArrivals: 200_000 };

/** Sessions told apart from a live delivery's packet, remembered briefly (see `skippedLive`). */
const MAX_SKIPPED_TRACKED = 4096;

export class PublishDeliveries {
  private readonly origins = new Map<string, PublishDelivery>();
  /** Insertion order is arrival order: the oldest come first. */
  private readonly arrivals = new Map<string, PublishDelivery>();
  /** `<brokerId>\0<brokerCounter>` of a publish → sessions it was not queued for because they had it already. */
  private readonly skipped = new Map<string, Set<string>>();

  constructor(private readonly limits: ArrivalLimits) {}

  addOrigin(publishId: string, origin: PublishOrigin, handled: Iterable<string> = []): void {
    this.origins.set(publishId, { publishId, handled: new Set(handled), origin, at: Date.now() });
  }

  dropOrigin(publishId: string | undefined): void {
    if (publishId !== undefined) this.origins.delete(publishId);
  }

  /** On open: arrivals loaded from disk, any order. */
  loadArrivals(values: ArrivalValue[]): void {
    for (const value of [...values].sort((a, b) => a.at - b.at)) {
      this.arrivals.set(value.publishId, { publishId: value.publishId, handled: new Set(value.handled), at: value.at });
    }
  }

  /**
   * The record of `publishId`: the origin's, an arrival's, or a new arrival (with the publish ids of the arrivals
   * it pushes out of the window, whose `p:` keys the caller deletes in the same commit).
   */
  recordOf(publishId: string, now = Date.now()): { delivery: PublishDelivery; evicted: string[] } {
    const known = this.origins.get(publishId) ?? this.arrivals.get(publishId);
    if (known) return { delivery: known, evicted: [] };
    const delivery: PublishDelivery = { publishId, handled: new Set(), at: now };
    this.arrivals.set(publishId, delivery);
    return { delivery, evicted: this.evict(now) };
  }

  /** Whether the message `publishId` was recorded here for `key` (a session, or a shared group: `sharedGroupKey`). */
  handledBy(publishId: string, key: string): boolean {
    return (this.origins.get(publishId) ?? this.arrivals.get(publishId))?.handled.has(key) ?? false;
  }

  /** The publish (`identity`: broker id and counter) was not queued for `clientId`, which had it already. */
  rememberSkipped(identity: string, clientId: string): void {
    let clients = this.skipped.get(identity);
    if (!clients) {
      if (this.skipped.size >= MAX_SKIPPED_TRACKED) this.skipped.delete(this.skipped.keys().next().value as string);
      clients = new Set();
      this.skipped.set(identity, clients);
    }
    clients.add(clientId);
  }

  /** Cheap test for aedes' per-delivery question: almost always false (nothing was published again). */
  get anySkipped(): boolean {
    return this.skipped.size > 0;
  }

  /** Whether the live delivery of this publish to `clientId` is a repeat (asked once per delivery, then forgotten). */
  takeSkipped(identity: string, clientId: string): boolean {
    const clients = this.skipped.get(identity);
    if (!clients?.delete(clientId)) return false;
    if (clients.size === 0) this.skipped.delete(identity);
    return true;
  }

  get arrivalCount(): number {
    return this.arrivals.size;
  }

  private evict(now: number): string[] {
    const evicted: string[] = [];
    for (const [publishId, delivery] of this.arrivals) {
      if (this.arrivals.size <= this.limits.maxArrivals && delivery.at >= now - this.limits.windowMs) break;
      this.arrivals.delete(publishId);
      evicted.push(publishId);
    }
    return evicted;
  }
}

/**
 * The record key of a shared-subscription group (`$share/<group>/<filter>`) among the sessions of a delivery record:
 * U+0000 cannot start an MQTT client id, so no session has it.
 */
export function sharedGroupKey(shareTopic: string): string {
  return `\u0000share\u0000${shareTopic}`;
}
