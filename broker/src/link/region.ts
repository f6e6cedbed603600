import { rendezvousWinner } from '../routing/rendezvous.js';
import type { RegionRetained } from './retained-sync.js';
import { RouteTable, type RouteSink } from '../routing/route-table.js';

/** A change of the regional route table: a route (filter, owner, route id) appeared or went. */
export type RegionRouteListener = (op: 'add' | 'delete', filter: string, owner: string, routeId: string) => void;

/** The regional route table as a link agent sees it: a clustered node's (embedded agent) or a sidecar's. */
export interface RegionRoutes {
  /** Every route of the regional table now (as 'add'), then every change, until the returned function is called. */
  watchRoutes(listener: RegionRouteListener): () => void;
  /** A route owned by the agent's actor in the regional table: the remote wants what matches it. Counted. */
  addRoute(filter: string, routeId: string): void;
  deleteRoute(filter: string, routeId: string): void;
}

/** A message published into the local region. */
export interface RegionMessage {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  publisherClientId: string;
  timestamp?: number;
  /** Identity of a message that came over a link (`linkedPublishId`): the same on every resend of it. */
  publishId?: string;
}

/** The regional cluster of an agent embedded in a clustered node (`ClusterNode`). */
export interface LinkRegion extends RegionRoutes {
  /** Resolves once the node's regional table is complete (or the bounded wait gave up): see `TableReadiness`. */
  readonly tableReady: Promise<void>;
  /** Marks a packet published from a link, so that every copy forwarded inside the region keeps the mark. */
  markLinked(packet: object): void;
  /** Published from a link here or in another node of the region: never queued for a link again. */
  isLinked(packet: object): boolean;
  /** Calls `handler` with each copy another node forwards to this one with a copy identity, as it arrives. */
  onCopyArrival?(handler: (packet: ArrivedCopy, copy: { node: string; incarnation: number; seq: number; attempt: number }) => void): void;
}

/** A copy forwarded to the embedded agent's node, before it is published there. */
export interface ArrivedCopy {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  publishId?: string;
}

/** The regional cluster of a sidecar agent: it has no broker, so it publishes by cluster forwarding. */
export interface SidecarRegion extends RegionRoutes {
  /** Resolves once the regional table is here: what the links export is known (a link dials its remote then). */
  readonly tableReady: Promise<void>;
  /** The region's retained messages; `ready` once the first copy from a core is here (see RegionRetained). */
  readonly retained: RegionRetained;
  /**
   * Sends a copy to every node with a matching route, and stores a linked retained message on every node; resolves
   * when all acknowledged it (QoS ≥ 1).
   */
  publish(message: RegionMessage, linked: boolean): Promise<void>;
  /** The region's live link agents (node ids, sorted), this one included. */
  liveAgents(): string[];
  /** Calls `listener` when an agent connects or disconnects; returns the function that stops it. */
  onAgentsChanged(listener: () => void): () => void;
  /** Routes the `$LINK` control messages of `remote`'s agents to this agent / stops doing so. */
  claimControl(remote: string): void;
  releaseControl(remote: string): void;
  /** The agent begins to stop: copies it cannot hand over or take from now on are not acknowledged. */
  beginStop(): void;
}

/**
 * Which agent serves link `link`: rendezvous hashing of (link, agent) over the live agents — every agent computes
 * the same answer from the same member list, and an agent leaving or joining moves only the links it wins or won.
 */
export function activeAgentFor(link: string, agents: readonly string[]): string | undefined {
  return rendezvousWinner(link, agents);
}

/** Route id of the remote routes of link `name` in the regional table: never exported to any link (no loops). */
export function linkRouteId(name: string): string {
  return `${LINK_ROUTE_PREFIX}${name}`;
}

export function isLinkRouteId(routeId: string): boolean {
  return routeId.startsWith(LINK_ROUTE_PREFIX);
}

const LINK_ROUTE_PREFIX = '$link/';

/**
 * The routes remote agents hold here (the receiver hub's sink): a route table for matching, plus the union of
 * their filters, reported as it changes (first remote agent on a filter → 'add', last one gone → 'delete').
 */
export class RemoteRoutes implements RouteSink {
  readonly table = new RouteTable();
  private readonly filters = new Map<string, number>();

  constructor(private readonly changed: (op: 'add' | 'delete', filter: string) => void) {}

  add(filter: string, owner: string, routeId: string): boolean {
    if (!this.table.add(filter, owner, routeId)) return false;
    const count = this.filters.get(filter) ?? 0;
    this.filters.set(filter, count + 1);
    if (count === 0) this.changed('add', filter);
    return true;
  }

  delete(filter: string, owner: string, routeId: string): boolean {
    if (!this.table.delete(filter, owner, routeId)) return false;
    const count = this.filters.get(filter) ?? 0;
    if (count > 1) {
      this.filters.set(filter, count - 1);
    } else {
      this.filters.delete(filter);
      this.changed('delete', filter);
    }
    return true;
  }
}

/**
 * The holder marker of a link in the regional table: a route `$LINK/cluster/term/<remote>/<term>` (route id
 * `$link/$control`, never published to) in the lane of the agent active for link `<remote>`. Every agent of the
 * region sees who holds each link, with which term, also while the holder is dead and its lane not yet expired.
 */
export function holderMarkerFilter(remote: string, term: number): string {
  return `$LINK/cluster/term/${remote}/${term}`;
}

export function parseHolderMarker(filter: string): { remote: string; term: number } | null {
  const match = /^\$LINK\/cluster\/term\/([^/]+)\/(\d+)$/.exec(filter);
  return match ? { remote: match[1], term: Number(match[2]) } : null;
}

/** A link's holders as the region shows them: agent → term. */
export type LinkHolders = ReadonlyMap<string, number>;

/**
 * Who serves a link (sticky): a live holder keeps it — the highest term among live holders, ties broken by
 * rendezvous; a holder that is away but within its grace keeps it too (nobody takes over: `wait`); otherwise the
 * rendezvous winner among the live agents takes it (`take`, with a term above every term seen).
 */
export function stickyHolder(link: string, holders: LinkHolders, live: readonly string[], withinGrace: (agent: string) => boolean):
  { agent: string; term: number; kind: 'keep' } | { kind: 'wait'; agents: string[] } | { agent: string | undefined; term: number; kind: 'take' } {
  const liveHolders = [...holders].filter(([agent]) => live.includes(agent));
  if (liveHolders.length > 0) {
    const top = Math.max(...liveHolders.map(([, term]) => term));
    const tied = liveHolders.filter(([, term]) => term === top).map(([agent]) => agent);
    return { agent: activeAgentFor(link, tied) as string, term: top, kind: 'keep' };
  }
  const waiting = [...holders.keys()].filter(withinGrace);
  if (waiting.length > 0) return { kind: 'wait', agents: waiting };
  return { agent: activeAgentFor(link, live), term: Math.max(0, ...holders.values()) + 1, kind: 'take' };
}

/**
 * The marker of an embedded agent (a node started with `--links`) serving link `<remote>` in a regional cluster: the
 * route `$LINK/cluster/embedded/<remote>/<term>` (route id `$link/$control`, never published to) in its node's lane.
 * A second node with the same link sees it and yields (`embeddedKeeper`). Sidecars ignore it.
 */
export function embeddedMarkerFilter(remote: string, term: number): string {
  return `$LINK/cluster/embedded/${remote}/${term}`;
}

export function parseEmbeddedMarker(filter: string): { remote: string; term: number } | null {
  const match = /^\$LINK\/cluster\/embedded\/([^/]+)\/(\d+)$/.exec(filter);
  return match ? { remote: match[1], term: Number(match[2]) } : null;
}

/** What an embedded agent does with a link another agent of its region may serve too (`embeddedKeeper`). */
export type EmbeddedDecision =
  | { kind: 'keep'; term: number }
  | { kind: 'take'; term: number }
  | { kind: 'yield'; to: string; by: 'sidecar' | 'embedded' };

/**
 * Which embedded agent serves a link (sticky, no duplicates): any sidecar holder (holder marker or control routes)
 * wins over every embedded agent; an embedded agent that does not hold the link yields to any embedded holder; of
 * several embedded holders (nodes started together) the highest term keeps it, equal terms the smallest node id.
 * With no holder at all it takes the link with a term above every term it knew.
 */
export function embeddedKeeper(self: string, own: { holding?: number; known: number }, embedded: LinkHolders, sidecars: readonly string[]): EmbeddedDecision {
  const sidecar = sidecars.filter((agent) => agent !== self).sort()[0];
  if (sidecar !== undefined) return { kind: 'yield', to: sidecar, by: 'sidecar' };
  const holders = new Map([...embedded].filter(([agent]) => agent !== self));
  if (own.holding !== undefined) holders.set(self, own.holding);
  if (holders.size === 0) return { kind: 'take', term: own.known + 1 };
  const [top, term] = [...holders].sort(([a, ta], [b, tb]) => tb - ta || (a < b ? -1 : a > b ? 1 : 0))[0];
  return top === self ? { kind: 'keep', term } : { kind: 'yield', to: top, by: 'embedded' };
}

/** A node that yields link `<remote>` (`embeddedKeeper`) says so: the keeper waits for it to take over when it stops cleanly. */
export function embeddedStandbyFilter(remote: string): string {
  return `$LINK/cluster/embedded-standby/${remote}`;
}

export function parseEmbeddedStandby(filter: string): string | null {
  return /^\$LINK\/cluster\/embedded-standby\/([^/]+)$/.exec(filter)?.[1] ?? null;
}
