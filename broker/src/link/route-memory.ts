import { createHash } from 'node:crypto';
import type { Logger } from '../log/logger.js';
import { RouteTable } from '../routing/route-table.js';
import type { AreaOp, StoreArea } from '../store/area.js';

export type FilterChange = (op: 'add' | 'delete', filter: string) => void;

const RESTORED = 'restored';
/** Filters up to this many UTF-8 bytes are their own store key; longer ones are keyed by their sha256 (key size limit). */
const DIRECT_KEY_MAX_BYTES = 200;

/**
 * The store key of a persisted filter. Hashing every filter cost ≈ 10 % of a 100 k-route bootstrap's CPU, so a short
 * filter is its own key. Stores written before keyed every filter by its bare base64url sha256 (no `/` in it, so
 * never equal to these keys); `open` moves them.
 */
export function filterKey(filter: string): string {
  return Buffer.byteLength(filter, 'utf8') <= DIRECT_KEY_MAX_BYTES ? `f/${filter}` : `h/${createHash('sha256').update(filter).digest('base64url')}`;
}

/**
 * The union of the remote agents' filters of one link, persisted. A restarted agent knows no remote route until the
 * remote agents bootstrap it again; meanwhile the filters it had are *restored*: they match (`matches`) and stay in
 * the region (`regionChanged`) until the remote confirms them (a live route on the same filter) or a route TTL has
 * passed without that (`expireRestored`). So a message published right after the restart is still queued for the
 * link, and in a cluster the agent's new lane keeps pulling what the remote wants instead of dropping it for a while.
 */
export class RemoteRouteMemory {
  private readonly restored = new RouteTable();
  private readonly live = new Set<string>();
  private writes: Promise<void> = Promise.resolve();
  /** Changes not written yet (filter → last op), written as one batch: a bootstrap adds ~100 k at once. */
  private readonly unwritten = new Map<string, 'add' | 'delete'>();
  private timer?: NodeJS.Timeout;

  private constructor(private readonly area: StoreArea, private readonly regionChanged: FilterChange, private readonly logger: Logger) {}

  /** Loads the persisted filters; each is reported to the region as an added route. */
  static async open(area: StoreArea, regionChanged: FilterChange, logger: Logger): Promise<RemoteRouteMemory> {
    const memory = new RemoteRouteMemory(area, regionChanged, logger);
    const moved: AreaOp[] = [];
    for (const [key, value] of await area.range('')) {
      const filter = value.toString('utf8');
      if (key !== filterKey(filter)) moved.push({ type: 'del', key }, { type: 'put', key: filterKey(filter), value });
      if (memory.restored.add(filter, RESTORED)) regionChanged('add', filter);
    }
    if (moved.length > 0) {
      await area.batch(moved).catch((err: Error) => logger.warn({ routes: moved.length / 2, err: err.message }, 'remote routes kept under their old store keys (moved at the next start)'));
    }
    return memory;
  }

  /**
   * Filters another agent of the region held for this link (it went away and this agent takes the link over): they
   * are restored like this agent's own at start — matched and held in the region until the remote confirms them
   * (its bootstrap with the new agent) or `expireAfter` drops them. Returns how many were new.
   */
  adopt(filters: Iterable<string>): number {
    let added = 0;
    for (const filter of filters) {
      if (this.live.has(filter) || !this.restored.add(filter, RESTORED)) continue;
      this.regionChanged('add', filter);
      this.persist('add', filter);
      added++;
    }
    return added;
  }

  get restoredCount(): number {
    return this.restored.size;
  }

  /** Does a restored (not yet confirmed) filter match `topic`? */
  matches(topic: string): boolean {
    return this.restored.size > 0 && this.restored.match(topic).size > 0;
  }

  /** The live union changed (first remote agent on a filter, or the last one gone). */
  liveChanged(op: 'add' | 'delete', filter: string): void {
    if (op === 'add') {
      this.live.add(filter);
      // A restored filter confirmed by the remote is already in the region: from now on the live routes decide.
      if (!this.restored.delete(filter, RESTORED)) this.regionChanged('add', filter);
      this.persist('add', filter);
    } else {
      this.live.delete(filter);
      this.regionChanged('delete', filter);
      this.persist('delete', filter);
    }
  }

  /** Drops the restored filters the remote did not confirm within `ms` of now. */
  expireAfter(ms: number): void {
    clearTimeout(this.timer);
    if (this.restored.size === 0) return;
    this.timer = setTimeout(() => this.expireRestored(), ms);
    this.timer.unref();
  }

  expireRestored(): void {
    const stale = [...this.restored.routes()].map((r) => r.filter);
    if (stale.length > 0) this.logger.info({ routes: stale.length }, 'restored remote routes not confirmed by the remote: dropped');
    for (const filter of stale) {
      this.restored.delete(filter, RESTORED);
      this.regionChanged('delete', filter);
      this.persist('delete', filter);
    }
  }

  /** The link stops: its routes leave the region; what is persisted stays for its next start. */
  withdraw(): void {
    clearTimeout(this.timer);
    const all = new Set([...this.live, ...[...this.restored.routes()].map((r) => r.filter)]);
    for (const filter of all) this.regionChanged('delete', filter);
  }

  /** Resolves when every change so far is written. */
  flushed(): Promise<void> {
    if (this.unwritten.size > 0) this.writeUnwritten();
    return this.writes;
  }

  private persist(op: 'add' | 'delete', filter: string): void {
    if (this.unwritten.size === 0) queueMicrotask(() => this.writeUnwritten());
    this.unwritten.set(filter, op);
  }

  /** The changes of this turn of the event loop, in one store batch after the previous one. */
  private writeUnwritten(): void {
    if (this.unwritten.size === 0) return;
    const ops: AreaOp[] = [...this.unwritten].map(([filter, op]) => {
      const key = filterKey(filter);
      return op === 'add' ? { type: 'put', key, value: Buffer.from(filter, 'utf8') } : { type: 'del', key };
    });
    this.unwritten.clear();
    this.writes = this.writes
      .then(() => this.area.batch(ops))
      .catch((err: Error) => this.logger.warn({ routes: ops.length, first: ops[0]?.key, err: err.message }, 'remote routes not persisted (a restart may miss them until the remote bootstraps)'));
  }
}
