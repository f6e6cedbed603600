import type { Aedes, AedesPublishPacket, Client } from 'aedes';
import type { Logger } from '../log/logger.js';
import type { RouteTable } from '../routing/route-table.js';
import { Channel, SendFailure, type Delivery } from './transport/index.js';
import { decodeForwarded, encodeForwarded, ForwardDecodeError, type CopyIdentity, type ForwardedMessage } from './forward-codec.js';
import type { ClusterMetrics } from './metrics.js';
import type { ClusterSharedSubscriptions } from './shared-subscriptions.js';

export interface ForwardTransport {
  send(nodeId: string, channel: number, payload: Buffer): Promise<void>;
}

/** Send failures that mean the destination node is gone: its routes are being withdrawn, nothing to retry. */
const DESTINATION_GONE = new Set(['peer-restarted', 'peer-session-lost', 'link-closed', 'unknown-peer']);

/**
 * A copy for this node's embedded link agent, with the identity the sending node gave it (its node id, incarnation,
 * sequence and attempt): called as the copy arrives, before it is published here.
 */
export type CopyArrival = (packet: { topic: string; payload: Buffer; qos: 0 | 1 | 2; retain: boolean; publishId?: string }, copy: CopyIdentity & { node: string }) => void;

/**
 * Routed forwarding: a message published on this node goes to each other node that has a matching route, once,
 * and a QoS ≥ 1 publisher is acknowledged only after every such node acknowledged its copy — which a node does
 * only after aedes published the copy locally (stored for its persistent sessions). Copies that arrive from
 * another node are published locally and never forwarded again. Shared-subscription groups get one copy per group
 * instead, to the node `shares` picks; such a copy is delivered to one member there, not published.
 */
export class Forwarder {
  /** Packets that came from another node: published locally only. */
  private readonly arrived = new WeakSet<object>();
  /** Packets that came from another region over a cluster link: the mark travels with every copy. */
  private readonly linked = new WeakSet<object>();
  private readonly owners = new Set<string>();
  /** Nodes holding `$link/...` routes (link agents), with how many: their copies carry a copy identity. */
  private readonly linkRouteOwners = new Map<string, number>();
  private copySeq = 0;
  /** The embedded link agent of this node: told of each copy with a copy identity as it arrives (see `receive`). */
  copyArrival?: CopyArrival;
  /** Peers that announced they read the origin identity (forward format version 3); others get copies without it. */
  private readonly originReaders = new Set<string>();

  constructor(
    private readonly selfId: string,
    private readonly routes: RouteTable,
    private readonly transport: ForwardTransport,
    private readonly aedes: Aedes,
    private readonly metrics: ClusterMetrics,
    private readonly logger: Logger,
    private readonly shares: ClusterSharedSubscriptions,
    /** This node's incarnation: with the copy sequence, identifies a copy to a link agent across resends. */
    private readonly incarnation = 0,
  ) {}

  /** A route of the regional table appeared or went (keeps track of which nodes are link agents). */
  routeChanged(op: 'add' | 'delete', owner: string, routeId: string): void {
    if (!routeId.startsWith(LINK_ROUTE_PREFIX)) return;
    const count = (this.linkRouteOwners.get(owner) ?? 0) + (op === 'add' ? 1 : -1);
    if (count > 0) this.linkRouteOwners.set(owner, count);
    else this.linkRouteOwners.delete(owner);
  }

  /** Whether `nodeId` reads the origin identity of a copy (it announced so since it connected) or not (it left). */
  readsOrigin(nodeId: string, reads: boolean): void {
    if (reads) this.originReaders.add(nodeId);
    else this.originReaders.delete(nodeId);
  }

  /** The packet came from another node (it is published here only, never forwarded or replicated again). */
  isArrived(packet: object): boolean {
    return this.arrived.has(packet);
  }

  /** The packet came from another region over a cluster link (published here by a link agent). */
  markLinked(packet: object): void {
    this.linked.add(packet);
  }

  /** Published by a link agent here, or a copy of such a message: never to be queued for a link again. */
  isLinked(packet: object): boolean {
    return this.linked.has(packet);
  }

  /** The aedes `published` hook: runs after local delivery and before the publisher's PUBACK/PUBREC. */
  published(packet: AedesPublishPacket, client: Client | null, done: (err?: Error | null) => void): void {
    if (this.arrived.has(packet)) return done();
    const owners = this.owners;
    owners.clear();
    this.routes.matchInto(packet.topic, owners);
    owners.delete(this.selfId);
    const shared = this.shares.match(packet.topic);
    if (owners.size === 0 && shared === null) return done();
    const message: ForwardedMessage = {
      topic: packet.topic, payload: asBuffer(packet.payload), qos: packet.qos, retain: packet.retain,
      publisherClientId: client?.id ?? '', timestamp: Date.now(),
    };
    if (this.linked.has(packet)) message.linked = true;
    const publishId = (packet as { publishId?: unknown }).publishId;
    if (typeof publishId === 'string') message.publishId = publishId;
    // Every node's copy keeps the origin's identity: a session handed between nodes skips what it already holds.
    if (packet.qos > 0 && typeof packet.brokerId === 'string' && packet.brokerId !== '' && Number.isSafeInteger(packet.brokerCounter) && packet.brokerCounter > 0) {
      message.origin = { brokerId: packet.brokerId, counter: packet.brokerCounter };
    }
    const targets = [...owners];
    const agents = new Set(targets.filter((nodeId) => this.linkRouteOwners.has(nodeId)));
    const sends: Promise<unknown>[] = [this.sendRouted(message, targets, agents)];
    if (shared !== null) sends.push(...this.shares.dispatch(shared, message));
    const handedOver = Promise.all(sends);
    if (packet.qos === 0) {
      handedOver.catch((err: Error) => this.logger.warn({ topic: packet.topic, err: err.message }, 'QoS 0 message not forwarded'));
      done();
      return;
    }
    handedOver.then(() => done(), (err: Error) => done(err));
  }

  /** A copy sent by another node: publish it here; the transport acknowledges it once that is done. */
  receive(fromNode: string, payload: Buffer, delivery: Delivery): void {
    const message = decodeArrival(fromNode, payload, this.metrics, this.logger);
    if (!message) return;
    if (message.shareGroup !== undefined) {
      delivery.defer(this.shares.receive(message, fromNode));
      return;
    }
    const packet: { cmd: 'publish'; topic: string; payload: Buffer; qos: 0 | 1 | 2; retain: boolean; dup: boolean; publishId?: string; brokerId?: string; brokerCounter?: number } = {
      cmd: 'publish', topic: message.topic, payload: message.payload, qos: message.qos, retain: message.retain, dup: false,
    };
    // aedes keeps a given identity: this node's queue entries of the message are those of every other node.
    if (message.origin !== undefined) {
      packet.brokerId = message.origin.brokerId;
      packet.brokerCounter = message.origin.counter;
    }
    // A copy published again after a crash of the publisher's node is queued here for nobody twice (store README).
    if (message.publishId !== undefined) packet.publishId = message.publishId;
    this.arrived.add(packet);
    if (message.linked) this.linked.add(packet);
    // In arrival order, before aedes' asynchronous publish steps: the agent's intake marks rely on that order.
    else if (message.copy !== undefined) this.copyArrival?.(packet, { node: fromNode, ...message.copy });
    delivery.defer(new Promise<void>((resolve, reject) => {
      this.aedes.publish(packet as AedesPublishPacket, (err?: Error) => (err ? reject(err) : resolve()));
    }));
  }

  /**
   * `send` to every target. A node that is gone (false) is final for an ordinary node (it left: its routes are
   * withdrawn). When the copies were meant for link agents (`agents`) and none of them took one (gone, and no other
   * agent took it over), nobody queued the message for the link (nor took a carrier from a remote agent): the publish
   * fails and is not acknowledged — the publisher (a client, or a remote agent for its carrier) sends it again, until
   * an agent is back or the gone one's routes left the table.
   */
  private async sendRouted(message: ForwardedMessage, targets: readonly string[], agents: ReadonlySet<string>): Promise<void> {
    const handedOver = await Promise.all(targets.map((nodeId) => this.send(nodeId, message, targets)));
    if (agents.size === 0 || targets.some((nodeId, i) => agents.has(nodeId) && handedOver[i])) return;
    throw new Error(`'${message.topic}' not handed over to link agent(s) ${[...agents].join(', ')} (gone) nor to another agent: not acknowledged, the publisher resends it`);
  }

  /**
   * Hands `message` to another node; resolves false when that node is gone (nothing to retry there). A copy to a
   * link agent gets a copy identity (kept when it is resent to the agent's next incarnation, after each restart);
   * when a link agent is gone for good, the copy goes to the other agents that now hold a matching link route and
   * were not among `sentTo` (the link moved: see link/README.md, "Several agents per region").
   */
  async send(nodeId: string, message: ForwardedMessage, sentTo: readonly string[] = [nodeId]): Promise<boolean> {
    if (message.copy === undefined && this.linkRouteOwners.has(nodeId)) {
      message = { ...message, copy: { incarnation: this.incarnation, seq: ++this.copySeq, attempt: 0 } };
    }
    const payload = encodeForwarded(message.origin === undefined || this.originReaders.has(nodeId) ? message : withoutOrigin(message));
    this.metrics.forwardedOut.inc({ peer: nodeId });
    this.metrics.forwardedBytesOut.inc({ peer: nodeId }, payload.length);
    try {
      await this.transport.send(nodeId, Channel.Forward, payload);
    } catch (err) {
      if (err instanceof SendFailure && AGENT_RESTARTED.has(err.code) && this.holdsLinkRoute(nodeId, message.topic)) {
        // A link agent restarted before acknowledging: dropping the copy would lose it for the link. Its new
        // incarnation restores its link routes at start and takes the copy (at worst queued twice, never lost).
        // Again after each further restart: failing a carrier copy here (after the wait for another agent) is no
        // resend, since the remote's later carriers reach the new incarnation meanwhile and its de-dup mark passes
        // this carrier's sequences, so the remote's resend would be dropped as a duplicate (link/README.md).
        // `peer-session-lost`: the same incarnation no longer holds the stream (a wiped agent store no longer repeats
        // an incarnation: see incarnation.ts).
        this.logger.info({ peer: nodeId, topic: message.topic, attempt: (message.copy?.attempt ?? 0) + 1 }, 'link agent restarted: forwarded message handed over again');
        const again = message.copy ? { ...message, copy: { ...message.copy, attempt: Math.min(message.copy.attempt + 1, MAX_COPY_ATTEMPT) } } : message;
        return this.send(nodeId, again, sentTo);
      }
      if (err instanceof SendFailure && DESTINATION_GONE.has(err.code)) {
        this.metrics.forwardDropped.inc({ peer: nodeId, reason: err.code });
        this.logger.warn({ peer: nodeId, topic: message.topic, reason: err.code }, 'forwarded message not handed over: the node is gone');
        if (message.copy !== undefined) return this.handOverToOtherAgents(nodeId, message, sentTo);
        return false;
      }
      throw new Error(`forwarding '${message.topic}' to ${nodeId} failed: ${(err as Error).message}`);
    }
    return true;
  }

  /**
   * A link agent is gone with a copy it never acknowledged: the agents that hold a matching link route now (the link
   * moved to them) and did not get the copy take it, as a first copy of their own. Resolves false when none does.
   */
  private async handOverToOtherAgents(gone: string, message: ForwardedMessage, sentTo: readonly string[]): Promise<boolean> {
    const candidates = (): Set<string> => new Set(this.routes.matchRoutes(message.topic)
      .filter((route) => route.routeId.startsWith(LINK_ROUTE_PREFIX) && route.owner !== gone && route.owner !== this.selfId && !sentTo.includes(route.owner))
      .map((route) => route.owner));
    let agents = candidates();
    // The agent taking the link over may not hold the link's routes yet (the remote bootstraps it after the move):
    // wait a bounded time for them rather than drop the copy. Only copies that went to the gone agent alone wait.
    const waitUntil = Date.now() + HANDOVER_WAIT_MS;
    const otherAgentHasIt = sentTo.some((node) => node !== gone && this.linkRouteOwners.has(node));
    while (agents.size === 0 && !otherAgentHasIt && Date.now() < waitUntil) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      agents = candidates();
    }
    if (agents.size === 0) return false;
    const { copy: _old, ...rest } = message;
    const fresh: ForwardedMessage = { ...rest, copy: { incarnation: this.incarnation, seq: ++this.copySeq, attempt: 0, handedOver: true } };
    this.logger.info({ gone, agents: [...agents], topic: message.topic }, 'link agent gone: forwarded message handed over to the agents now holding the link');
    const next = [...sentTo, ...agents];
    const results = await Promise.all([...agents].map((nodeId) => this.send(nodeId, fresh, next)));
    return results.some(Boolean);
  }

  private holdsLinkRoute(nodeId: string, topic: string): boolean {
    return this.routes.matchRoutes(topic).some((route) => route.owner === nodeId && route.routeId.startsWith(LINK_ROUTE_PREFIX));
  }
}

/** A copy's attempt has 7 bits (forward-codec.ts); only "first send or not" matters to the agent's intake marks. */
const MAX_COPY_ATTEMPT = 127;

/** Send failures after which a link agent's next incarnation is there to take the copy again. */
const AGENT_RESTARTED = new Set(['peer-restarted', 'peer-session-lost']);

/** How long a copy of a gone link agent waits for another agent to hold a matching link route. */
const HANDOVER_WAIT_MS = 10_000;

/** Route ids of a link agent's remote routes (`link/region.ts`): the owner queues what matches them durably. */
const LINK_ROUTE_PREFIX = '$link/';

/**
 * Decodes a copy that arrived on the Forward channel and counts it; a malformed one is counted, logged and
 * dropped (undefined), never thrown.
 */
export function decodeArrival(fromNode: string, payload: Buffer, metrics: ClusterMetrics, logger: Logger): ForwardedMessage | undefined {
  let message: ForwardedMessage;
  try {
    message = decodeForwarded(payload);
  } catch (err) {
    if (!(err instanceof ForwardDecodeError)) throw err;
    metrics.forwardRejected.inc({ peer: fromNode });
    logger.warn({ peer: fromNode, err: err.message }, 'dropped a malformed forwarded message');
    return undefined;
  }
  metrics.forwardedIn.inc({ peer: fromNode });
  metrics.forwardedBytesIn.inc({ peer: fromNode }, payload.length);
  return message;
}

function withoutOrigin(message: ForwardedMessage): ForwardedMessage {
  const { origin: _origin, ...rest } = message;
  return rest;
}

function asBuffer(payload: string | Buffer): Buffer {
  return typeof payload === 'string' ? Buffer.from(payload) : payload;
}
