import { decodeMessage, encodeMessage } from '../../../src/routesync/codec.js';
import { RouteSync, type RouteSyncOptions } from '../../../src/routesync/hub.js';
import type { LaneDelta, SyncMessage } from '../../../src/routesync/messages.js';
import type { Rng } from './prng.js';

/**
 * A simulated region for property tests: cores and replicants running RouteSync hubs, connected by a channel that
 * delays, reorders, drops and duplicates messages, with disconnects, restarts (incarnation bump, in-memory state
 * lost) and kills. Every message goes through the codec. Time is simulated.
 */

export interface SimConfig {
  cores: number;
  replicants: number;
  /** Channel misbehaviour while a connection is up. */
  dropRate: number;
  duplicateRate: number;
  /** Maximum one-way delay; messages of one connection may overtake each other when `reorder`. */
  maxDelayMs: number;
  reorder: boolean;
  /** Chance that a message of a broken connection is still delivered later (as if it had been delayed). */
  staleDeliveryRate: number;
  /** Subscriptions that survive a restart (persistent sessions). */
  persistentSubscriptions: boolean;
  hub: Partial<RouteSyncOptions>;
  /** Log every delivered message (for debugging a failing seed). */
  trace?: boolean;
}

interface SimNode {
  id: string;
  role: 'core' | 'replicant';
  up: boolean;
  incarnation: number;
  hub: RouteSync | null;
  /** The truth: local subscriber counts by `filter|routeId`. */
  subscribers: Map<string, number>;
  /** For a replicant: the core it talks to. */
  core: string | null;
  upAt: number;
}

interface InFlight {
  deliverAt: number;
  order: number;
  from: string;
  to: string;
  bytes: Buffer;
  /** The connection it was sent on; a message of a broken connection is normally lost. */
  connection: number;
}

const FILTERS = ['a/b', 'a/+', 'a/#', '#', '+/b', 'c', 'c/d/#', '$SYS/x', 'a/+/c', '/'];
const ROUTE_IDS = ['', '', '', 'g1'];

export class Simulation {
  now = 0;
  readonly nodes = new Map<string, SimNode>();
  /** Live connections by pair key, with an id so that stale messages can be told apart. */
  private readonly connections = new Map<string, number>();
  private nextConnection = 1;
  private inFlight: InFlight[] = [];
  private order = 0;
  private chaos = true;
  readonly log: string[] = [];

  constructor(
    private readonly rng: Rng,
    private readonly config: SimConfig,
  ) {
    for (let i = 0; i < config.cores; i++) this.addNode(`core${i}`, 'core');
    for (let i = 0; i < config.replicants; i++) this.addNode(`rep${i}`, 'replicant');
    for (const node of this.nodes.values()) this.start(node);
    this.wireAll();
  }

  // ── scenario ───────────────────────────────────────────────────────────────────────────────────────────

  /** Random churn for `durationMs`. */
  churn(durationMs: number): void {
    const end = this.now + durationMs;
    let nextAction = this.now;
    while (this.now < end) {
      if (this.now >= nextAction) {
        this.randomAction();
        nextAction = this.now + 1 + this.rng.int(15);
      }
      this.runUntil(Math.min(end, nextAction));
    }
  }

  /** `count` random subscriptions on nodes that are up (no other churn). */
  subscribeSome(count: number): void {
    for (let i = 0; i < count; i++) this.randomSubscribe();
  }

  /** Stops churn and channel faults, restores the topology among the nodes that are up, and lets time pass. */
  quiesce(durationMs: number): void {
    this.chaos = false;
    this.inFlight = this.inFlight.filter((m) => this.connections.get(pairKey(m.from, m.to)) === m.connection);
    for (const node of this.nodes.values()) {
      if (node.role === 'replicant' && node.up && !this.coreIsUp(node.core)) this.moveReplicant(node);
    }
    this.wireAll();
    this.runUntil(this.now + durationMs);
  }

  /** For every node that is up: its table as `filter|owner|routeId` strings, and the true set. */
  tables(): Array<{ node: string; actual: string[]; expected: string[] }> {
    const expected = this.trueRoutes();
    return [...this.nodes.values()]
      .filter((n) => n.up && n.hub !== null)
      .map((n) => ({
        node: n.id,
        actual: [...(n.hub as RouteSync).table!.routes()].map((r) => `${r.filter}|${r.owner}|${r.routeId}`).sort(),
        expected,
      }));
  }

  trueRoutes(): string[] {
    const routes: string[] = [];
    for (const node of this.nodes.values()) {
      if (!node.up) continue;
      for (const [key, count] of node.subscribers) {
        if (count <= 0) continue;
        const [filter, routeId] = key.split('|');
        routes.push(`${filter}|${node.id}|${routeId}`);
      }
    }
    return routes.sort();
  }

  // ── actions ────────────────────────────────────────────────────────────────────────────────────────────

  private randomAction(): void {
    const roll = this.rng.next();
    if (roll < 0.4) this.randomSubscribe();
    else if (roll < 0.7) this.randomUnsubscribe();
    else if (roll < 0.8) this.randomDisconnect();
    else if (roll < 0.88) this.wireAll();
    else if (roll < 0.93) this.randomRestart();
    else if (roll < 0.94) this.randomKill();
    else if (roll < 0.97) this.randomMove();
    else this.reviveOne();
  }

  private randomSubscribe(): void {
    const node = this.randomUpNode();
    if (node === null) return;
    const filter = this.rng.pick(FILTERS);
    const routeId = this.rng.pick(ROUTE_IDS);
    const key = `${filter}|${routeId}`;
    node.subscribers.set(key, (node.subscribers.get(key) ?? 0) + 1);
    (node.hub as RouteSync).subscribe(filter, this.now, routeId);
    this.log.push(`${this.now} ${node.id} +${key}`);
  }

  private randomUnsubscribe(): void {
    const node = this.randomUpNode();
    if (node === null) return;
    const keys = [...node.subscribers.keys()].filter((k) => (node.subscribers.get(k) ?? 0) > 0);
    if (keys.length === 0) return;
    const key = this.rng.pick(keys);
    node.subscribers.set(key, (node.subscribers.get(key) as number) - 1);
    const [filter, routeId] = key.split('|');
    (node.hub as RouteSync).unsubscribe(filter, this.now, routeId);
    this.log.push(`${this.now} ${node.id} -${key}`);
  }

  private randomDisconnect(): void {
    const pairs = [...this.connections.keys()];
    if (pairs.length === 0) return;
    const [a, b] = this.rng.pick(pairs).split('~');
    this.breakConnection(a, b);
    this.log.push(`${this.now} cut ${a}~${b}`);
  }

  private randomRestart(): void {
    const node = this.randomUpNode();
    if (node === null || !this.mayStop(node)) return;
    this.stop(node);
    node.upAt = this.now + this.rng.between(0, 200);
    this.log.push(`${this.now} restart ${node.id}`);
  }

  private randomKill(): void {
    const node = this.randomUpNode();
    if (node === null || !this.mayStop(node)) return;
    this.stop(node);
    node.upAt = Number.POSITIVE_INFINITY;
    this.log.push(`${this.now} kill ${node.id}`);
  }

  private reviveOne(): void {
    const dead = [...this.nodes.values()].filter((n) => !n.up);
    if (dead.length === 0) return;
    const node = this.rng.pick(dead);
    node.upAt = Math.min(node.upAt, this.now);
  }

  private randomMove(): void {
    const replicants = [...this.nodes.values()].filter((n) => n.role === 'replicant' && n.up);
    if (replicants.length === 0) return;
    const node = this.rng.pick(replicants);
    this.moveReplicant(node);
    this.log.push(`${this.now} move ${node.id} → ${node.core}`);
  }

  // ── nodes and connections ──────────────────────────────────────────────────────────────────────────────

  private addNode(id: string, role: 'core' | 'replicant'): void {
    this.nodes.set(id, { id, role, up: false, incarnation: 0, hub: null, subscribers: new Map(), core: null, upAt: 0 });
  }

  private start(node: SimNode): void {
    node.incarnation++;
    node.up = true;
    node.hub = new RouteSync({
      cluster: 'sim',
      actor: node.id,
      incarnation: node.incarnation,
      role: node.role,
      ...this.config.hub,
    });
    this.recordHistory(node.id);
    if (!this.config.persistentSubscriptions) node.subscribers.clear();
    for (const [key, count] of node.subscribers) {
      const [filter, routeId] = key.split('|');
      for (let i = 0; i < count; i++) node.hub.subscribe(filter, this.now, routeId);
    }
    if (node.role === 'replicant' && !this.coreIsUp(node.core)) this.moveReplicant(node);
  }

  private stop(node: SimNode): void {
    for (const key of [...this.connections.keys()]) {
      const [a, b] = key.split('~');
      if (a === node.id || b === node.id) this.breakConnection(a, b);
    }
    node.up = false;
    node.hub = null;
  }

  /** Never stops the last core that is up (replicants need one to sync through). */
  private mayStop(node: SimNode): boolean {
    if (node.role !== 'core') return true;
    return [...this.nodes.values()].filter((n) => n.role === 'core' && n.up).length > 1;
  }

  private coreIsUp(core: string | null): boolean {
    return core !== null && this.nodes.get(core)?.up === true;
  }

  private moveReplicant(node: SimNode): void {
    const cores = [...this.nodes.values()].filter((n) => n.role === 'core' && n.up && n.id !== node.core);
    if (cores.length === 0) return;
    if (node.core !== null && this.connections.has(pairKey(node.id, node.core))) this.breakConnection(node.id, node.core);
    node.core = this.rng.pick(cores).id;
    if (node.up) this.openConnection(node.id, node.core);
  }

  /** The wanted topology among nodes that are up: cores in a full mesh, each replicant to its core. */
  private wireAll(): void {
    const up = [...this.nodes.values()].filter((n) => n.up);
    for (const a of up) {
      if (a.role === 'core') {
        for (const b of up) if (b.role === 'core' && a.id < b.id) this.openConnection(a.id, b.id);
      } else if (this.coreIsUp(a.core)) {
        this.openConnection(a.id, a.core as string);
      }
    }
  }

  private openConnection(a: string, b: string): void {
    const key = pairKey(a, b);
    if (this.connections.has(key)) return;
    this.connections.set(key, this.nextConnection++);
    this.hubOf(a)?.connect(b, this.now);
    this.hubOf(b)?.connect(a, this.now);
    this.flush(a);
    this.flush(b);
  }

  private breakConnection(a: string, b: string): void {
    if (!this.connections.delete(pairKey(a, b))) return;
    this.hubOf(a)?.disconnect(b);
    this.hubOf(b)?.disconnect(a);
  }

  /** Origin content of every (actor, incarnation, version) ever published, to check relayed lanes against. */
  private readonly history = new Map<string, string>();

  /** Records the own lane of `id` at its current version. */
  private recordHistory(id: string): void {
    const hub = this.hubOf(id);
    if (hub === null) return;
    const own = hub.lanes()[0];
    const key = `${own.actor}/${own.incarnation}/${own.version}`;
    const content = hub.ownRoutes().map((r) => `${r.filter}|${r.routeId}`).sort().join(',');
    const known = this.history.get(key);
    if (known !== undefined && known !== content) throw new Error(`${key} published twice with different content`);
    this.history.set(key, content);
  }

  /** A batch may move the own lane several versions in one tick: learn the intermediate ones from its deltas. */
  private recordOwnDeltas(id: string, deltas: readonly LaneDelta[]): void {
    for (const delta of deltas) {
      if (delta.actor !== id) continue;
      const base = this.history.get(`${id}/${delta.incarnation}/${delta.base}`);
      if (base === undefined) continue;
      const routes = new Set(base === '' ? [] : base.split(','));
      for (const op of delta.ops) {
        if (op.op === 'add') routes.add(`${op.filter}|${op.routeId}`);
        else routes.delete(`${op.filter}|${op.routeId}`);
      }
      const key = `${id}/${delta.incarnation}/${delta.version}`;
      const content = [...routes].sort().join(',');
      const known = this.history.get(key);
      if (known !== undefined && known !== content) throw new Error(`${key} sent as [${content}], published as [${known}]`);
      this.history.set(key, content);
    }
  }

  /** Invariant: every lane a hub holds is exactly what its origin published at that version. */
  private checkLanes(id: string): void {
    const hub = this.hubOf(id);
    if (hub === null) return;
    for (const lane of hub.lanes()) {
      if (lane.local) continue;
      const key = `${lane.actor}/${lane.incarnation}/${lane.version}`;
      const content = hub.laneRoutes(lane.actor).map((r) => `${r.filter}|${r.routeId}`).sort().join(',');
      const origin = this.history.get(key);
      if (origin !== content) {
        throw new Error(`${id} holds lane ${key} as [${content}], its origin published [${origin ?? 'nothing'}]\n${this.log.slice(-30).join('\n')}`);
      }
    }
  }

  private hubOf(id: string): RouteSync | null {
    const node = this.nodes.get(id);
    return node?.up === true ? node.hub : null;
  }

  private randomUpNode(): SimNode | null {
    const up = [...this.nodes.values()].filter((n) => n.up);
    return up.length === 0 ? null : this.rng.pick(up);
  }

  // ── time and the channel ───────────────────────────────────────────────────────────────────────────────

  runUntil(end: number): void {
    for (;;) {
      this.startDueNodes();
      this.deliverDue();
      for (const node of this.nodes.values()) {
        if (node.hub === null || node.hub.nextWakeup(this.now) > this.now) continue;
        node.hub.tick(this.now);
        this.recordHistory(node.id);
        this.flush(node.id);
      }
      const next = this.nextEventTime();
      if (next > end) break;
      this.now = Math.max(this.now + 1, next);
    }
    this.now = end;
  }

  private nextEventTime(): number {
    let next = Number.POSITIVE_INFINITY;
    for (const m of this.inFlight) next = Math.min(next, m.deliverAt);
    for (const node of this.nodes.values()) {
      if (node.hub !== null) next = Math.min(next, node.hub.nextWakeup(this.now));
      else next = Math.min(next, node.upAt);
    }
    return next;
  }

  private startDueNodes(): void {
    for (const node of this.nodes.values()) {
      if (node.up || node.upAt > this.now) continue;
      this.start(node);
      this.log.push(`${this.now} start ${node.id} inc ${node.incarnation}`);
      this.wireAll();
    }
  }

  private flush(id: string): void {
    const hub = this.hubOf(id);
    if (hub === null) return;
    for (const { to, message } of hub.takeOutgoing()) {
      if (message.type === 'ops') this.recordOwnDeltas(id, message.deltas);
      const connection = this.connections.get(pairKey(id, to));
      if (connection === undefined) continue;
      const bytes = encodeMessage(message);
      if (this.chaos && this.rng.chance(this.config.dropRate)) continue;
      this.send(id, to, bytes, connection);
      if (this.chaos && this.rng.chance(this.config.duplicateRate)) this.send(id, to, bytes, connection);
    }
  }

  private send(from: string, to: string, bytes: Buffer, connection: number): void {
    const delay = this.chaos ? this.rng.int(this.config.maxDelayMs + 1) : 1 + this.rng.int(3);
    // Without reordering, a message never overtakes an earlier one of the same connection.
    let deliverAt = this.now + delay;
    if (!this.config.reorder || !this.chaos) {
      for (const m of this.inFlight) {
        if (m.from === from && m.to === to && m.connection === connection) deliverAt = Math.max(deliverAt, m.deliverAt);
      }
    }
    this.inFlight.push({ deliverAt, order: this.order++, from, to, bytes, connection });
  }

  private deliverDue(): void {
    const due = this.inFlight.filter((m) => m.deliverAt <= this.now).sort((x, y) => x.deliverAt - y.deliverAt || x.order - y.order);
    if (due.length === 0) return;
    this.inFlight = this.inFlight.filter((m) => m.deliverAt > this.now);
    for (const m of due) {
      const hub = this.hubOf(m.to);
      if (hub === null) continue;
      const live = this.connections.get(pairKey(m.from, m.to)) === m.connection;
      if (!live && !(this.chaos && this.rng.chance(this.config.staleDeliveryRate))) continue;
      const message = decodeMessage(m.bytes);
      if (this.config.trace) this.log.push(`${this.now} ${m.from}→${m.to}${live ? '' : ' (stale)'} ${describe(message)}`);
      hub.receive(m.from, message, this.now);
      this.checkLanes(m.to);
      this.flush(m.to);
    }
  }
}

function describe(m: SyncMessage): string {
  switch (m.type) {
    case 'init':
      return `init ${m.actor}#${m.incarnation} conn ${m.conn}`;
    case 'init_ack':
      return `init_ack ${m.result} conn ${m.conn} lanes ${m.lanes.map((l) => `${l.actor}#${l.incarnation}@${l.version}`).join(' ')}`;
    case 'ops':
      return `ops ${m.incarnation}/${m.conn} seq ${m.seq} ${m.deltas.map((d) => `${d.actor}#${d.incarnation} ${d.base}→${d.version} [${d.ops.map((o) => `${o.op === 'add' ? '+' : '-'}${o.filter}|${o.routeId}`).join(' ')}]`).join('; ')}`;
    case 'snapshot':
      return `snapshot ${m.incarnation}/${m.conn} seq ${m.seq} ${m.lane.actor}#${m.lane.incarnation}@${m.lane.version} part ${m.part}${m.last ? ' last' : ''} [${m.routes.map((r) => `${r.filter}|${r.routeId}`).join(' ')}]`;
    case 'heartbeat':
      return `hb ${m.incarnation}/${m.conn} after ${m.afterSeq} ${m.lanes.map((l) => `${l.actor}#${l.incarnation}@${l.version}`).join(' ')}`;
    case 'ack':
      return `ack ${m.incarnation}/${m.conn} seq ${m.seq}${m.reinit ? ' reinit' : ''} resync ${m.resync.map((r) => r.actor).join(' ')}`;
  }
}

function pairKey(a: string, b: string): string {
  return a < b ? `${a}~${b}` : `${b}~${a}`;
}
