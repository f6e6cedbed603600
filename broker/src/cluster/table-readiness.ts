import type { Logger } from '../log/logger.js';
import type { RouteSync } from '../routesync/index.js';
import type { Member, Membership } from './membership.js';

/** What the readiness check reads of a cluster member (a node, or a sidecar link agent). */
export interface RegionalTableView {
  sync: RouteSync;
  membership: Membership;
  /**
   * The peers whose route-sync streams bring this actor the other lanes: the upstream core of a replicant or a
   * sidecar, every connected core of a core.
   */
  tableSources(): string[];
  /** A replicant or a sidecar gets the table from a core only: it is not ready without one. */
  needsSource: boolean;
  /** Every address discovery found at the start was dialed at least once (reached, or failed). */
  discoverySettled(): boolean;
}

export interface TableReadinessOptions {
  /** Upper bound of the wait (ms); then ready anyway, logged as a warning with what is missing. */
  waitMs: number;
  /** Members seen in the previous incarnation (`RememberedMembers`): a whole-region restart waits for them too. */
  remembered: ReadonlyMap<string, { role: string }>;
  /** Roles whose lanes must be here: a node needs every node's and agent's lane, a sidecar the nodes' only. */
  roles: ReadonlySet<string>;
  logger: Logger;
  pollMs?: number;
}

/** Why the table is not complete yet: members without a (current) lane, sources whose bootstrap is not through. */
export interface TableGaps {
  noSource: boolean;
  discovery: boolean;
  sources: string[];
  disconnected: string[];
  withoutLane: string[];
}

/**
 * "The regional table is complete": every lane this actor must know is here, so routing a publish (or a linked
 * message) with it reaches every subscriber of the region. Complete when
 * - discovery's first addresses were all dialed once, and (replicant, sidecar) an upstream core is chosen;
 * - every stream that brings the table (`tableSources`) is open and no snapshot is half received;
 * - every connected member of the required roles has its lane here at its current incarnation;
 * - every member remembered from the previous incarnation is connected again with its lane (a whole-region restart:
 *   the nodes come back one by one, and the first ones must not take their empty tables for complete).
 * Bounded: after `waitMs` it resolves anyway and logs what was missing (a remembered node that is gone for good).
 */
export class TableReadiness {
  readonly ready: Promise<void>;
  private resolveReady!: () => void;
  private done = false;
  private completeTable = false;
  private poll?: NodeJS.Timeout;
  private giveUp?: NodeJS.Timeout;
  private readonly startedAt = Date.now();

  constructor(private readonly view: RegionalTableView, private readonly options: TableReadinessOptions) {
    this.ready = new Promise((resolve) => { this.resolveReady = resolve; });
  }

  /** True once ready (complete, or the wait gave up). */
  get isReady(): boolean { return this.done; }
  /** True when readiness came from a complete table, false after a timeout (or before). */
  get complete(): boolean { return this.completeTable; }

  /** Starts checking (every `pollMs`, and on `check()`); the bound starts now. */
  start(): void {
    if (this.done || this.poll) return;
    this.poll = setInterval(() => this.check(), this.options.pollMs ?? 50);
    this.giveUp = setTimeout(() => this.finish(false), this.options.waitMs);
    this.check();
  }

  stop(): void {
    clearInterval(this.poll);
    clearTimeout(this.giveUp);
  }

  /** Re-evaluates now (a peer connected, a lane arrived). */
  check(): void {
    if (this.done) return;
    if (isEmpty(this.gaps())) this.finish(true);
  }

  gaps(): TableGaps {
    const { view, options } = this;
    const sources = view.tableSources();
    const peers = new Map(view.sync.peers().map((p) => [p.peer, p.inbound]));
    const lanes = new Map(view.sync.lanes().filter((l) => !l.local).map((l) => [l.actor, l.incarnation]));
    const members = new Map(view.membership.list().map((m): [string, Member] => [m.nodeId, m]));
    const required = new Set<string>();
    for (const m of members.values()) if (m.connected && options.roles.has(m.role)) required.add(m.nodeId);
    for (const [nodeId, m] of options.remembered) if (options.roles.has(m.role)) required.add(nodeId);
    const disconnected: string[] = [];
    const withoutLane: string[] = [];
    for (const nodeId of [...required].sort()) {
      const member = members.get(nodeId);
      if (!member?.connected) disconnected.push(nodeId);
      else if ((lanes.get(nodeId) ?? -1) < member.incarnation) withoutLane.push(nodeId);
    }
    return {
      noSource: view.needsSource && sources.length === 0,
      discovery: !view.discoverySettled(),
      sources: sources.filter((peer) => { const inbound = peers.get(peer); return !inbound || inbound.assembling > 0; }),
      disconnected,
      withoutLane,
    };
  }

  private finish(complete: boolean): void {
    if (this.done) return;
    this.done = true;
    this.completeTable = complete;
    this.stop();
    const lanes = this.view.sync.lanes().length;
    const waitedMs = Date.now() - this.startedAt;
    if (complete) this.options.logger.info({ lanes, waitedMs }, 'regional route table complete');
    else this.options.logger.warn({ lanes, waitedMs, missing: this.gaps() }, 'regional route table still incomplete after the wait (nodes without routes, or unreachable): going on with it');
    this.resolveReady();
  }
}

function isEmpty(gaps: TableGaps): boolean {
  return !gaps.noSource && !gaps.discovery && gaps.sources.length === 0 && gaps.disconnected.length === 0 && gaps.withoutLane.length === 0;
}
