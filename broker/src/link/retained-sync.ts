import { createHash } from 'node:crypto';
import { decodeEntries, encodeEntries } from '../cluster/retained.js';
import type { Rpc } from '../cluster/rpc.js';
import type { Logger } from '../log/logger.js';
import { filterMatches } from '../routing/topic.js';
import type { AreaOp, StoreArea } from '../store/area.js';
import type { StoredPacket } from '../store/index.js';
import { RetainedTrie } from '../store/retained-trie.js';
import type { LinkMessage } from './queue.js';

/**
 * Publisher client id of a retained message sent because a remote route appeared (not a live publish). U+0000 is
 * not allowed in an MQTT client id [MQTT-1.5.3-2], so no real publisher can carry it.
 */
export const RETAINED_SYNC_CLIENT_ID = '\u0000retained-sync';

/** A retained message as the local store holds it. */
export interface RetainedCopy {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
}

/** The local cluster's retained messages (the node's store: every node of a region keeps them all). */
export interface RetainedSource {
  /** Every retained message whose topic `filter` matches, read synchronously (one consistent snapshot). */
  matching(filter: string): RetainedCopy[];
  /** The retained message on `topic`, if any. */
  get(topic: string): RetainedCopy | undefined;
}

/** Where a retained message held here came from: the link it crossed and a digest of its payload. */
export interface LinkedOrigin {
  link: string;
  digest: string;
}

export interface RetainedSyncCounters {
  /** Retained messages queued for a link because a remote route appeared. */
  sent: number;
  /** Retained messages not queued because they came over a link (never sent back or onwards). */
  skippedLinked: number;
  /** Deletions queued because a remote route appeared: topics sent to the link earlier, no longer retained here. */
  tombstones: number;
  /** Synced retained messages received that were already held here, identical: not published again. */
  suppressed: number;
  /** Live retained publishes not queued for a link because the sync had just queued the same message. */
  twins: number;
  /** Synced retained messages received but not applied: a local retained message or another link's held the topic. */
  kept: number;
  /** Retained messages not synced because a live publish on the topic was queued for the link since the route came. */
  superseded: number;
}

/**
 * A sync for a new remote route that has not read the retained messages yet: the topics of live retained publishes
 * queued for its link meanwhile. Those are newer than (or the same as) what a replica that lags the live copies
 * (a sidecar's) holds, so the sync leaves them out rather than send an older value after a newer one.
 */
interface PendingSync {
  readonly link: string;
  readonly filter: string;
  readonly liveTopics: Set<string>;
  readonly since: number;
}

/** A pending sync whose read never came (its link stopped or is not active here) is forgotten after this. */
const PENDING_SYNC_MAX_MS = 60_000;
const pendingKey = (link: string, filter: string): string => `${link}\u0000${filter}`;

const digestOf = (payload: Buffer): string => createHash('sha256').update(payload).digest('base64url');
const keyOf = (topic: string): string => createHash('sha256').update(topic).digest('base64url');
/**
 * How long a synced copy stands for a live publish of the same message still on its way to the `published` hook (the
 * store holds a retained message before aedes runs the hook: a durable write, or replication ahead of the forwarded
 * copy). Short: an identical republish within it is not sent again.
 */
export const SYNC_TWIN_MS = 1000;
const ORIGIN_PREFIX = 'o/';
const SENT_PREFIX = 's/';
const sentKey = (link: string, topic: string): string => SENT_PREFIX + createHash('sha256').update(link).update('\u0000').update(topic).digest('base64url');

/**
 * Retained messages across links (see README.md, "Retained messages across regions"):
 * - sending: when a link's remote agents hold a new filter, the local retained messages it matches are queued for
 *   that link (`forNewRoute`) — those that came over a link excepted, so nothing goes back or onwards — with a
 *   deletion for each topic sent to the link before and no longer retained; a live publish the sync had already
 *   read is not queued again (`isSyncedTwin`);
 * - receiving: each linked retained message is recorded as linked (topic → link, payload digest, persisted) before
 *   it is published here; a synced copy identical to the retained message already held here is not published
 *   again (so a subscriber that got the local copy on SUBSCRIBE does not get it twice), and one that would replace
 *   a local or another link's copy is dropped (`admit`).
 *
 * A retained message counts as linked while the store holds the very payload recorded for its topic; a local
 * publish on the topic (`localPublish`) or a different payload makes it local again.
 */
export class RetainedSync {
  private readonly origins = new Map<string, LinkedOrigin>();
  /** Per link, the topics whose retained message was sent to it (live or synced) and not deleted since. */
  private readonly sent = new Map<string, Set<string>>();
  /** Synced copies just queued, by link and topic → payload digest (see `isSyncedTwin`); cleared SYNC_TWIN_MS after the last sync. */
  private readonly justSynced = new Map<string, string>();
  private twinTimer?: NodeJS.Timeout;
  /** By link and filter. */
  private readonly pendingSyncs = new Map<string, PendingSync>();
  private writes: Promise<void> = Promise.resolve();
  /**
   * Called when a retained message that came over a link is recorded here (undefined origin: a linked deletion):
   * a sidecar tells its region's other link agents, which hold other links (`RegionRetained.shareOrigin`).
   */
  onOrigin?: (topic: string, origin: LinkedOrigin | undefined) => void;
  readonly counters: RetainedSyncCounters = { sent: 0, skippedLinked: 0, tombstones: 0, suppressed: 0, twins: 0, kept: 0, superseded: 0 };

  private constructor(private readonly area: StoreArea, private readonly source: RetainedSource | undefined, private readonly logger: Logger) {}

  /** Loads the persisted origins. Without `source` (a sidecar: no retained store) nothing is sent or suppressed. */
  static async open(area: StoreArea, source: RetainedSource | undefined, logger: Logger): Promise<RetainedSync> {
    const sync = new RetainedSync(area, source, logger);
    for (const [key, value] of await area.range(ORIGIN_PREFIX)) {
      const record = parseRecord(value);
      if (record) sync.origins.set(record.topic, { link: record.link, digest: record.digest });
      else logger.warn({ key }, 'unreadable linked-retained record ignored');
    }
    for (const [key, value] of await area.range(SENT_PREFIX)) {
      const record = parseSent(value);
      if (record) sync.sentTo(record.link).add(record.topic);
      else logger.warn({ key }, 'unreadable sent-retained record ignored');
    }
    return sync;
  }

  get linkedTopics(): number {
    return this.origins.size;
  }

  /** Resolves when every record issued so far is written (or its failure logged). */
  flushed(): Promise<void> {
    return this.writes;
  }

  /** The link a retained message held here came over; undefined when it is local. */
  originOf(copy: RetainedCopy): string | undefined {
    const origin = this.origins.get(copy.topic);
    return origin && origin.digest === digestOf(copy.payload) ? origin.link : undefined;
  }

  /**
   * The messages to queue for `link`, whose remote agents now hold `filter`: the local retained messages it matches,
   * with the retain flag, marked as synced (`RETAINED_SYNC_CLIENT_ID`) — those that came over a link left out — and
   * a deletion (empty payload) for every topic under `filter` sent to the link earlier and no longer retained here
   * (deleted while the remote had no route: its copy would stay otherwise).
   */
  forNewRoute(link: string, filter: string, now = Date.now()): LinkMessage[] {
    const pending = this.pendingSyncs.get(pendingKey(link, filter));
    this.pendingSyncs.delete(pendingKey(link, filter));
    if (!this.source) return [];
    const out: LinkMessage[] = [];
    const synced = (topic: string, payload: Buffer, qos: 0 | 1 | 2): LinkMessage => ({ topic, payload, qos, retain: true, publisherClientId: RETAINED_SYNC_CLIENT_ID, timestamp: now });
    const superseded = (topic: string): boolean => {
      if (!pending?.liveTopics.has(topic)) return false;
      this.counters.superseded++;
      return true;
    };
    for (const copy of this.source.matching(filter)) {
      if (copy.payload.length === 0 || superseded(copy.topic)) continue;
      if (this.originOf(copy) !== undefined) {
        this.counters.skippedLinked++;
        continue;
      }
      out.push(synced(copy.topic, copy.payload, copy.qos));
      this.counters.sent++;
    }
    for (const topic of this.sentTo(link)) {
      if (!filterMatches(filter, topic) || this.source.get(topic) !== undefined || superseded(topic)) continue;
      out.push(synced(topic, Buffer.alloc(0), 1));
      this.counters.tombstones++;
    }
    this.rememberSynced(link, out);
    const ops = out.map((message) => this.noteSent(link, message)).filter((op): op is AreaOp => op !== null);
    if (ops.length > 0) void this.chain(() => this.area.batch(ops), filter);
    return out;
  }

  /**
   * Is this live retained publish the very message the sync just queued for `link` (read from the store before the
   * publish reached the `published` hook)? Then it is not queued again: the remote would deliver it twice. Consumed.
   */
  isSyncedTwin(link: string, message: LinkMessage): boolean {
    if (this.justSynced.size === 0 || !message.retain) return false;
    const key = `${link}\u0000${message.topic}`;
    if (this.justSynced.get(key) !== digestOf(message.payload)) return false;
    this.justSynced.delete(key);
    this.counters.twins++;
    return true;
  }

  private rememberSynced(link: string, messages: LinkMessage[]): void {
    if (messages.length === 0) return;
    for (const message of messages) this.justSynced.set(`${link}\u0000${message.topic}`, digestOf(message.payload));
    clearTimeout(this.twinTimer);
    this.twinTimer = setTimeout(() => this.justSynced.clear(), SYNC_TWIN_MS);
    this.twinTimer.unref();
  }

  /**
   * A remote route `filter` of `link` appeared and its sync will run (`forNewRoute`): the live retained publishes
   * queued for the link until then are noted, and the sync leaves their topics out.
   */
  beginSync(link: string, filter: string, now = Date.now()): void {
    this.pendingSyncs.set(pendingKey(link, filter), { link, filter, liveTopics: new Set(), since: now });
  }

  /** A retained message (or deletion) was queued for `link`: remembered, so a later deletion can follow it. */
  queued(link: string, message: LinkMessage): void {
    if (message.publisherClientId !== RETAINED_SYNC_CLIENT_ID) this.noteLive(link, message.topic);
    const op = this.noteSent(link, message);
    if (op) void this.chain(() => this.area.batch([op]), message.topic);
  }

  private noteLive(link: string, topic: string, now = Date.now()): void {
    for (const [key, pending] of this.pendingSyncs) {
      if (pending.since < now - PENDING_SYNC_MAX_MS) this.pendingSyncs.delete(key);
      else if (pending.link === link && filterMatches(pending.filter, topic)) pending.liveTopics.add(topic);
    }
  }

  /** Updates the topics sent to `link`; the store write to persist that, if any. */
  private noteSent(link: string, message: LinkMessage): AreaOp | null {
    if (!message.retain || !this.source) return null;
    const topics = this.sentTo(link);
    const present = topics.has(message.topic);
    if (message.payload.length > 0 === present) return null;
    const key = sentKey(link, message.topic);
    if (present) {
      topics.delete(message.topic);
      return { type: 'del', key };
    }
    topics.add(message.topic);
    return { type: 'put', key, value: Buffer.from(JSON.stringify({ link, topic: message.topic }), 'utf8') };
  }

  /**
   * A retained message arrived over `link` and is about to be published here. Resolves false when it must not be
   * published (a synced copy identical to what is held here), else true once its origin is recorded durably.
   */
  async admit(link: string, message: LinkMessage): Promise<boolean> {
    if (message.publisherClientId === RETAINED_SYNC_CLIENT_ID && this.source) {
      const held = this.source.get(message.topic);
      const same = held ? held.qos === message.qos && held.payload.equals(message.payload) : message.payload.length === 0;
      if (same) {
        // Not recorded either: if the copy held here is local (published here with the same bytes), it stays local.
        this.counters.suppressed++;
        return false;
      }
      if (held && this.originOf(held) !== link) {
        // A synced copy is not a new publish: it replaces only a copy of the same link, never a local retained message
        // or another region's (which one is newer is not known).
        this.counters.kept++;
        return false;
      }
    }
    const origin = message.payload.length === 0 ? undefined : { link, digest: digestOf(message.payload) };
    this.onOrigin?.(message.topic, origin);
    await this.record(message.topic, origin);
    return true;
  }

  /** Another link agent of the region recorded where the retained message on `topic` came from: recorded here too. */
  adoptOrigin(topic: string, origin: LinkedOrigin | undefined): Promise<void> {
    return this.record(topic, origin);
  }

  /** A client of this node published a retained message on `topic`: it is local now. */
  localPublish(topic: string): void {
    if (this.origins.has(topic)) void this.record(topic, undefined);
  }

  private record(topic: string, origin: LinkedOrigin | undefined): Promise<void> {
    if (origin) this.origins.set(topic, origin);
    else this.origins.delete(topic);
    const key = ORIGIN_PREFIX + keyOf(topic);
    return this.chain(() => (origin ? this.area.put(key, Buffer.from(JSON.stringify({ topic, ...origin }), 'utf8')) : this.area.del(key)), topic);
  }

  private sentTo(link: string): Set<string> {
    let topics = this.sent.get(link);
    if (!topics) {
      topics = new Set();
      this.sent.set(link, topics);
    }
    return topics;
  }

  /** Writes in issue order; a failure is logged (after a restart a message may be sent back or a deletion missed). */
  private chain(write: () => Promise<void>, topic: string): Promise<void> {
    this.writes = this.writes.then(write).catch((err: Error) => {
      this.logger.warn({ topic, err: err.message }, 'retained-sync record not persisted (after a restart a linked retained message may be sent back, or a deletion not sent)');
    });
    return this.writes;
  }
}

function parseSent(value: Buffer): { link: string; topic: string } | null {
  try {
    const { link, topic } = JSON.parse(value.toString('utf8')) as Record<string, unknown>;
    return typeof link === 'string' && typeof topic === 'string' ? { link, topic } : null;
  } catch {
    return null;
  }
}

function parseRecord(value: Buffer): { topic: string; link: string; digest: string } | null {
  try {
    const parsed = JSON.parse(value.toString('utf8')) as Record<string, unknown>;
    const { topic, link, digest } = parsed;
    return typeof topic === 'string' && typeof link === 'string' && typeof digest === 'string' ? { topic, link, digest } : null;
  } catch {
    return null;
  }
}

/** A retained source over a scan of the retained topics (`filterMatches` keeps the `$`-topic rule); for tests and small stores. */
export function scanRetained(topics: () => string[], get: (topic: string) => RetainedCopy | undefined): RetainedSource {
  return {
    matching: (filter) => topics().filter((topic) => filterMatches(filter, topic)).map(get).filter((c): c is RetainedCopy => c !== undefined),
    get,
  };
}

/**
 * A sidecar agent's copy of its region's retained messages (it has no broker store): filled from a core at each new
 * connection to one (the nodes' `retained-snapshot` request, only the topics it does not hold), then kept current by
 * the `retained` replication every node sends to all its members for its own clients' retained publishes. A linked
 * retained message the sidecar publishes is stored on every node of the region (`storeEverywhere`: the same
 * `retained` notification), since a node replicates only its own clients' retained messages and the copies the
 * sidecar forwards reach only the nodes with a matching route.
 */
/** Rpc notification between the link agents of a region: `{ topic, link?, digest? }` (no link: not linked any more). */
const ORIGIN_NOTIFICATION = 'link.retained-origin';

export class RegionRetained implements RetainedSource {
  private readonly trie = new RetainedTrie();
  private readonly held = new Map<string, RetainedCopy>();
  /** Resolves after the first fill from a core (or `giveUpAfter`): what the region retains is known. */
  readonly ready: Promise<void>;
  private markReady!: () => void;

  /** Another link agent of the region recorded where a retained message came from (see `shareOrigin`). */
  onOrigin?: (topic: string, origin: LinkedOrigin | undefined) => void;

  constructor(private readonly rpc: Rpc, private readonly nodes: () => string[], private readonly agents: () => string[], private readonly logger: Logger) {
    this.ready = new Promise((resolve) => { this.markReady = resolve; });
    rpc.handle('retained', (_from, message) => {
      for (const entry of decodeEntries(message.body)) this.apply({ topic: entry.topic, payload: entry.payload, qos: asQos(entry.qos) });
    });
    rpc.handle(ORIGIN_NOTIFICATION, (from, message) => {
      const { topic, link, digest } = message.header;
      if (typeof topic !== 'string' || (link !== undefined && (typeof link !== 'string' || typeof digest !== 'string'))) {
        throw new Error(`malformed ${ORIGIN_NOTIFICATION} from ${from}: ${JSON.stringify(message.header)}`);
      }
      this.onOrigin?.(topic, typeof link === 'string' ? { link, digest: digest as string } : undefined);
    });
  }

  /**
   * Tells the region's other link agents where the retained message on `topic` came from, so that none of them sends
   * it onwards to its own links once its copy holds it (refilled from a core). Best effort: an agent that is down now
   * does not learn it (see README, "Sidecar agents").
   */
  shareOrigin(topic: string, origin: LinkedOrigin | undefined): void {
    const header = { kind: ORIGIN_NOTIFICATION, topic, ...(origin ?? {}) };
    for (const agent of this.agents()) {
      this.rpc.notify(agent, header).catch((err: Error) => this.logger.warn({ agent, topic, err: err.message }, 'origin of a linked retained message not told to another link agent'));
    }
  }

  get size(): number {
    return this.held.size;
  }

  matching(filter: string): RetainedCopy[] {
    return this.trie.match(filter).map((packet) => this.held.get(packet.topic as string)).filter((c): c is RetainedCopy => c !== undefined);
  }

  get(topic: string): RetainedCopy | undefined {
    return this.held.get(topic);
  }

  /** Goes on without a fill after `ms` (no core answers): the sync then sends only what replication brought. */
  giveUpAfter(ms: number): void {
    setTimeout(() => this.markReady(), ms).unref();
  }

  /** Copies from `core` the retained messages not held here, in chunks; failures are logged (ready anyway). */
  async fillFrom(core: string): Promise<void> {
    try {
      let after = '';
      let copied = 0;
      for (;;) {
        const reply = await this.rpc.request(core, { kind: 'retained-snapshot', after });
        for (const entry of decodeEntries(reply.body)) {
          if (this.held.has(entry.topic)) continue;
          this.apply({ topic: entry.topic, payload: entry.payload, qos: asQos(entry.qos) });
          copied++;
        }
        if (typeof reply.header.next !== 'string') break;
        after = reply.header.next;
      }
      this.logger.info({ core, copied, held: this.held.size }, 'retained messages of the region copied from a core');
    } catch (err) {
      this.logger.warn({ core, err: (err as Error).message }, 'could not copy the region\'s retained messages from a core');
    } finally {
      this.markReady();
    }
  }

  /**
   * A retained message (or deletion) that came over a link: held here and stored on every node of the region;
   * resolves once every connected node stored it, rejects when one did not (the carrier is then resent).
   */
  async storeEverywhere(copy: RetainedCopy): Promise<void> {
    this.apply(copy);
    const body = encodeEntries([{ topic: copy.topic, qos: copy.qos, payload: copy.payload }]);
    const failed: string[] = [];
    await Promise.all(this.nodes().map((node) => this.rpc.notify(node, { kind: 'retained' }, body).catch((err: Error) => {
      failed.push(`${node}: ${err.message}`);
    })));
    if (failed.length > 0) throw new Error(`linked retained message '${copy.topic}' not stored on every node (${failed.join('; ')})`);
  }

  private apply(copy: RetainedCopy): void {
    if (copy.payload.length === 0) {
      this.held.delete(copy.topic);
      this.trie.delete(copy.topic);
      return;
    }
    this.held.set(copy.topic, copy);
    const packet: StoredPacket = { cmd: 'publish', topic: copy.topic, payload: copy.payload, qos: copy.qos, retain: true, dup: false };
    this.trie.set(copy.topic, packet);
  }
}

function asQos(qos: number): 0 | 1 | 2 {
  return qos === 1 || qos === 2 ? qos : 0;
}
