import { createHash } from 'node:crypto';
import type { Logger } from '../log/logger.js';
import { RouteTable } from '../routing/route-table.js';
import type { StoreArea } from '../store/area.js';

export type FilterChange = (op: 'add' | 'delete', filter: string) => void;

const RESTORED = 'restored';

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
  private timer?: NodeJS.Timeout;

  private constructor(private readonly area: StoreArea, private readonly regionChanged: FilterChange, private readonly logger: Logger) {}

  /** Loads the persisted filters; each is reported to the region as an added route. */
  static async open(area: StoreArea, regionChanged: FilterChange, logger: Logger): Promise<RemoteRouteMemory> {
    const memory = new RemoteRouteMemory(area, regionChanged, logger);
    for (const [, value] of await area.range('')) {
      const filter = value.toString('utf8');
      if (memory.restored.add(filter, RESTORED)) regionChanged('add', filter);
    }
    return memory;
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
    return this.writes;
  }

  private persist(op: 'add' | 'delete', filter: string): void {
    const key = createHash('sha256').update(filter).digest('base64url');
    this.writes = this.writes
      .then(() => (op === 'add' ? this.area.put(key, Buffer.from(filter, 'utf8')) : this.area.del(key)))
      .catch((err: Error) => this.logger.warn({ filter, err: err.message }, 'remote route not persisted (a restart may miss it until the remote bootstraps)'));
  }
}
