import type { Logger } from '../log/logger.js';
import type { StoreArea } from '../store/area.js';

export interface RememberedMember {
  role: string;
  address: string;
}

/**
 * The cluster members this node (or sidecar) was connected to, kept in its store (area `cluster-members`, key =
 * node id, value = JSON `{role, address}`), so that after a restart it knows whom to wait for before it takes its
 * regional table for complete (`TableReadiness`). Only ids and roles matter for that; the address is informative.
 * A member leaves the list when its lane expires while it is disconnected (it left the cluster), or when it did not
 * come back during the whole readiness wait after a restart (`settle`): it then costs at most one bounded wait.
 */
export class RememberedMembers {
  private readonly current = new Map<string, RememberedMember>();
  private settled = false;

  private constructor(
    private readonly area: StoreArea,
    /** The members of the previous incarnation, as loaded at the start. */
    readonly previous: ReadonlyMap<string, RememberedMember>,
    private readonly logger: Logger,
  ) {}

  static async open(area: StoreArea, logger: Logger): Promise<RememberedMembers> {
    const previous = new Map<string, RememberedMember>();
    for (const [nodeId, value] of await area.range('')) {
      const member = parseMember(value);
      if (member) previous.set(nodeId, member);
      else logger.warn({ nodeId, area: area.name }, 'unreadable remembered cluster member ignored');
    }
    return new RememberedMembers(area, previous, logger);
  }

  /** A peer connected in this incarnation. */
  seen(nodeId: string, member: RememberedMember): void {
    const known = this.current.get(nodeId) ?? this.previous.get(nodeId);
    this.current.set(nodeId, member);
    if (known?.role === member.role && known.address === member.address) return;
    this.write(this.area.put(nodeId, Buffer.from(JSON.stringify(member))), nodeId);
  }

  /** The member left the cluster: its lane expired while it was disconnected. */
  forget(nodeId: string): void {
    const had = this.current.delete(nodeId) || (!this.settled && this.previous.has(nodeId));
    if (had) this.write(this.area.del(nodeId), nodeId);
  }

  /** The readiness wait is over: members of the previous incarnation not seen since are not waited for again. */
  settle(): void {
    if (this.settled) return;
    this.settled = true;
    const gone = [...this.previous.keys()].filter((nodeId) => !this.current.has(nodeId));
    if (gone.length === 0) return;
    this.logger.info({ members: gone }, 'cluster members of the previous run not back during the wait: no longer waited for at a restart');
    this.write(this.area.batch(gone.map((key) => ({ type: 'del', key }))), gone.join(','));
  }

  private write(done: Promise<void>, nodeId: string): void {
    done.catch((err: Error) => this.logger.warn({ nodeId, err: err.message }, 'could not update the remembered cluster members'));
  }
}

function parseMember(value: Buffer): RememberedMember | undefined {
  try {
    const parsed = JSON.parse(value.toString('utf8')) as Partial<RememberedMember>;
    return typeof parsed.role === 'string' && typeof parsed.address === 'string' ? { role: parsed.role, address: parsed.address } : undefined;
  } catch {
    return undefined;
  }
}
