/** One access event as the door controller sent it (also the decoded payload at a receiver). */
export interface AccessEvent {
  /** Tenant: 'acme' or 'globex'. */
  tenant: string;
  /** Region the door controller publishes in. */
  region: string;
  /** `<site>/<door>`: unique per tenant. */
  door: string;
  kind: AccessKind;
  /** Per-door sequence number, 1, 2, 3… for the whole life of the workload. */
  seq: number;
  /** Send time, `Date.now()` on the same host as the receivers. */
  sentAt: number;
  /** The stream (drill) the event belongs to. */
  run: string;
}

export type AccessKind = 'granted' | 'denied' | 'intrusion';

export const ACCESS_KINDS: readonly AccessKind[] = ['granted', 'denied', 'intrusion'];

export function encodeEvent(event: AccessEvent): Buffer {
  return Buffer.from(JSON.stringify(event));
}

/** Decodes a payload written by `encodeEvent`; throws naming the payload when it is not one. */
export function decodeEvent(payload: Buffer): AccessEvent {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    throw new Error(`access event payload is not JSON: ${payload.toString('utf8').slice(0, 80)}`, { cause: err });
  }
  const e = value as Partial<AccessEvent>;
  const valid = typeof e.tenant === 'string' && typeof e.region === 'string' && typeof e.door === 'string'
    && typeof e.seq === 'number' && typeof e.sentAt === 'number' && typeof e.run === 'string'
    && ACCESS_KINDS.includes(e.kind as AccessKind);
  if (!valid) throw new Error(`access event payload lacks fields: ${payload.toString('utf8').slice(0, 80)}`);
  return value as AccessEvent;
}

export function doorKey(event: Pick<AccessEvent, 'tenant' | 'region' | 'door'>): string {
  return `${event.tenant}:${event.region}:${event.door}`;
}

/** What one receiver got of one stream, compared with what it should have got. */
export interface ReceiverStats {
  receiver: string;
  /** Events sent in the stream that this receiver should receive. */
  expected: number;
  /** Distinct expected events received. */
  delivered: number;
  lost: number;
  /** Extra copies of events already received. */
  duplicated: number;
  /** First deliveries whose sequence is below one already delivered for the same door. */
  outOfOrder: number;
  /** Events received that this receiver must never get (other tenant, unsubscribed kind). */
  foreign: number;
  latency: LatencySummary;
  /** Latency per origin region. */
  latencyByRegion: Record<string, LatencySummary>;
  /** A few examples of lost events (door key and sequence), for the report. */
  lostExamples: string[];
  /** Lost events per origin region. */
  lostByRegion: Record<string, number>;
  /** Send times of the lost events, ascending. */
  lostSentAt: number[];
  /** Duplicates per origin region. */
  duplicatedByRegion: Record<string, number>;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentile of sorted values; NaN for none. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] as number;
}

export function summarizeLatency(values: readonly number[]): LatencySummary {
  const sorted = [...values].sort((a, b) => a - b);
  return { count: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? Number.NaN };
}

/**
 * The bookkeeping of one receiver: which events it should get (`wants`), and per door what arrived, in which
 * order, how late. `sent()` is called for every event published; `received()` for every message delivered.
 */
export class ReceiverTally {
  /** door key → sequences expected (sent and wanted) → send time. */
  private readonly expected = new Map<string, Map<number, number>>();
  /** door key → sequence → copies received. */
  private readonly copies = new Map<string, Map<number, number>>();
  private readonly highest = new Map<string, number>();
  private readonly latencies: Array<{ region: string; ms: number }> = [];
  private foreign = 0;
  private outOfOrder = 0;
  private duplicated = 0;
  private readonly duplicatedByRegion: Record<string, number> = {};

  constructor(readonly receiver: string, private readonly wants: (event: AccessEvent) => boolean) {}

  sent(event: AccessEvent): void {
    if (!this.wants(event)) return;
    const key = doorKey(event);
    let seqs = this.expected.get(key);
    if (!seqs) this.expected.set(key, (seqs = new Map()));
    seqs.set(event.seq, event.sentAt);
  }

  /** The publisher gave up on the event (its client reported an error): no longer expected. */
  unsent(event: AccessEvent): void {
    this.expected.get(doorKey(event))?.delete(event.seq);
  }

  received(event: AccessEvent, receivedAt: number): void {
    if (!this.wants(event)) {
      this.foreign++;
      return;
    }
    const key = doorKey(event);
    let perDoor = this.copies.get(key);
    if (!perDoor) this.copies.set(key, (perDoor = new Map()));
    const before = perDoor.get(event.seq) ?? 0;
    perDoor.set(event.seq, before + 1);
    if (before > 0) {
      this.duplicated++;
      this.duplicatedByRegion[event.region] = (this.duplicatedByRegion[event.region] ?? 0) + 1;
      return;
    }
    const highest = this.highest.get(key) ?? 0;
    if (event.seq < highest) this.outOfOrder++;
    else this.highest.set(key, event.seq);
    this.latencies.push({ region: event.region, ms: receivedAt - event.sentAt });
  }

  /** First deliveries so far from one origin region. */
  deliveredFrom(region: string): number {
    return this.latencies.filter((l) => l.region === region).length;
  }

  /** Expected events not received yet. */
  missing(): number {
    let missing = 0;
    for (const [key, seqs] of this.expected) {
      const got = this.copies.get(key);
      for (const seq of seqs.keys()) if (!got?.has(seq)) missing++;
    }
    return missing;
  }

  stats(): ReceiverStats {
    let expected = 0;
    let delivered = 0;
    const lostExamples: string[] = [];
    const lostByRegion: Record<string, number> = {};
    const lostSentAt: number[] = [];
    for (const [key, seqs] of this.expected) {
      const got = this.copies.get(key);
      const region = key.split(':')[1] as string;
      for (const [seq, sentAt] of seqs) {
        expected++;
        if (got?.has(seq)) {
          delivered++;
          continue;
        }
        lostByRegion[region] = (lostByRegion[region] ?? 0) + 1;
        lostSentAt.push(sentAt);
        if (lostExamples.length < 10) lostExamples.push(`${key}#${seq}`);
      }
    }
    const byRegion = new Map<string, number[]>();
    for (const { region, ms } of this.latencies) {
      let list = byRegion.get(region);
      if (!list) byRegion.set(region, (list = []));
      list.push(ms);
    }
    return {
      receiver: this.receiver,
      expected,
      delivered,
      lost: expected - delivered,
      duplicated: this.duplicated,
      outOfOrder: this.outOfOrder,
      foreign: this.foreign,
      latency: summarizeLatency(this.latencies.map((l) => l.ms)),
      latencyByRegion: Object.fromEntries([...byRegion].map(([region, list]) => [region, summarizeLatency(list)])),
      lostExamples,
      lostByRegion,
      lostSentAt: lostSentAt.sort((a, b) => a - b),
      duplicatedByRegion: { ...this.duplicatedByRegion },
    };
  }
}
