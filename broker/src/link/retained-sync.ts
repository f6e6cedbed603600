import { createHash } from 'node:crypto';
import type { Logger } from '../log/logger.js';
import { filterMatches } from '../routing/topic.js';
import type { StoreArea } from '../store/area.js';
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
interface LinkedOrigin {
  link: string;
  digest: string;
}

export interface RetainedSyncCounters {
  /** Retained messages queued for a link because a remote route appeared. */
  sent: number;
  /** Retained messages not queued because they came over a link (never sent back or onwards). */
  skippedLinked: number;
  /** Synced retained messages received that were already held here, identical: not published again. */
  suppressed: number;
}

const digestOf = (payload: Buffer): string => createHash('sha256').update(payload).digest('base64url');
const keyOf = (topic: string): string => createHash('sha256').update(topic).digest('base64url');

/**
 * Retained messages across links (see README.md, "Retained messages across regions"):
 * - sending: when a link's remote agents hold a new filter, the local retained messages it matches are queued for
 *   that link (`forNewRoute`) — those that came over a link excepted, so nothing goes back or onwards;
 * - receiving: each linked retained message is recorded as linked (topic → link, payload digest, persisted) before
 *   it is published here, and a synced copy identical to the retained message already held here is not published
 *   again (`admit`), so a subscriber that got the local copy on SUBSCRIBE does not get it twice.
 *
 * A retained message counts as linked while the store holds the very payload recorded for its topic; a local
 * publish on the topic (`localPublish`) or a different payload makes it local again.
 */
export class RetainedSync {
  private readonly origins = new Map<string, LinkedOrigin>();
  private writes: Promise<void> = Promise.resolve();
  readonly counters: RetainedSyncCounters = { sent: 0, skippedLinked: 0, suppressed: 0 };

  private constructor(private readonly area: StoreArea, private readonly source: RetainedSource | undefined, private readonly logger: Logger) {}

  /** Loads the persisted origins. Without `source` (a sidecar: no retained store) nothing is sent or suppressed. */
  static async open(area: StoreArea, source: RetainedSource | undefined, logger: Logger): Promise<RetainedSync> {
    const sync = new RetainedSync(area, source, logger);
    for (const [key, value] of await area.range('')) {
      const record = parseRecord(value);
      if (record) sync.origins.set(record.topic, { link: record.link, digest: record.digest });
      else logger.warn({ key }, 'unreadable linked-retained record ignored');
    }
    return sync;
  }

  get linkedTopics(): number {
    return this.origins.size;
  }

  /** The link a retained message held here came over; undefined when it is local. */
  originOf(copy: RetainedCopy): string | undefined {
    const origin = this.origins.get(copy.topic);
    return origin && origin.digest === digestOf(copy.payload) ? origin.link : undefined;
  }

  /**
   * The messages to queue for a link whose remote agents now hold `filter`: the local retained messages it matches,
   * with the retain flag, marked as synced (`RETAINED_SYNC_CLIENT_ID`). Those that came over a link are left out.
   */
  forNewRoute(filter: string, now = Date.now()): LinkMessage[] {
    if (!this.source) return [];
    const out: LinkMessage[] = [];
    for (const copy of this.source.matching(filter)) {
      if (copy.payload.length === 0) continue;
      if (this.originOf(copy) !== undefined) {
        this.counters.skippedLinked++;
        continue;
      }
      out.push({ topic: copy.topic, payload: copy.payload, qos: copy.qos, retain: true, publisherClientId: RETAINED_SYNC_CLIENT_ID, timestamp: now });
    }
    this.counters.sent += out.length;
    return out;
  }

  /**
   * A retained message arrived over `link` and is about to be published here. Resolves false when it must not be
   * published (a synced copy identical to what is held here), else true once its origin is recorded durably.
   */
  async admit(link: string, message: LinkMessage): Promise<boolean> {
    if (message.publisherClientId === RETAINED_SYNC_CLIENT_ID && this.source) {
      const held = this.source.get(message.topic);
      if (held && held.qos === message.qos && held.payload.equals(message.payload)) {
        this.counters.suppressed++;
        // Still recorded: the copy held here is this link's from now on (not sent back).
        await this.record(message.topic, { link, digest: digestOf(message.payload) });
        return false;
      }
    }
    await this.record(message.topic, message.payload.length === 0 ? undefined : { link, digest: digestOf(message.payload) });
    return true;
  }

  /** A client of this node published a retained message on `topic`: it is local now. */
  localPublish(topic: string): void {
    if (this.origins.has(topic)) void this.record(topic, undefined);
  }

  private record(topic: string, origin: LinkedOrigin | undefined): Promise<void> {
    if (origin) this.origins.set(topic, origin);
    else this.origins.delete(topic);
    const key = keyOf(topic);
    const write = this.writes.then(() => (origin ? this.area.put(key, Buffer.from(JSON.stringify({ topic, ...origin }), 'utf8')) : this.area.del(key)));
    this.writes = write.catch((err: Error) => {
      this.logger.warn({ topic, err: err.message }, 'origin of a linked retained message not persisted (after a restart it may be sent back)');
    });
    return this.writes;
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

/** A retained source over a scan of the node's retained topics (`filterMatches` keeps the `$`-topic rule). */
export function scanRetained(topics: () => string[], get: (topic: string) => RetainedCopy | undefined): RetainedSource {
  return {
    matching: (filter) => topics().filter((topic) => filterMatches(filter, topic)).map(get).filter((c): c is RetainedCopy => c !== undefined),
    get,
  };
}
