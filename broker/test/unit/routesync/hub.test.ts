import { decodeMessage, encodeMessage } from '../../../src/routesync/codec.js';
import { RouteSyncError } from '../../../src/routesync/errors.js';
import { RouteSync, type RouteSyncEvent, type RouteSyncOptions } from '../../../src/routesync/hub.js';
import { exportOwnLaneOnly } from '../../../src/routesync/policy.js';

const TTL = 1500;

/** Hubs joined by a perfect channel (through the codec), with time moved by hand. */
class Net {
  now = 0;
  readonly hubs = new Map<string, RouteSync>();
  readonly events: Array<RouteSyncEvent & { at: string }> = [];
  private readonly links = new Set<string>();

  add(actor: string, role: string, extra: Partial<RouteSyncOptions> = {}): RouteSync {
    const hub = new RouteSync({
      cluster: 'c1',
      actor,
      incarnation: 1,
      role,
      ttlMs: TTL,
      onEvent: (e) => this.events.push({ ...e, at: actor }),
      ...extra,
    });
    this.hubs.set(actor, hub);
    return hub;
  }

  link(a: string, b: string): void {
    this.links.add(key(a, b));
    this.hub(a).connect(b, this.now);
    this.hub(b).connect(a, this.now);
    this.pump();
  }

  cut(a: string, b: string): void {
    this.links.delete(key(a, b));
    this.hubs.get(a)?.disconnect(b);
    this.hubs.get(b)?.disconnect(a);
  }

  /** Replaces a hub by a new incarnation (state lost); its links are cut. */
  restart(actor: string, role: string, incarnation: number, extra: Partial<RouteSyncOptions> = {}): RouteSync {
    for (const l of [...this.links]) {
      const [a, b] = l.split('~');
      if (a === actor || b === actor) this.cut(a, b);
    }
    this.hubs.delete(actor);
    return this.add(actor, role, { incarnation, ...extra });
  }

  hub(actor: string): RouteSync {
    const hub = this.hubs.get(actor);
    if (hub === undefined) throw new Error(`no hub ${actor}`);
    return hub;
  }

  /** Delivers messages until nothing is left to send at the current time. */
  pump(): void {
    for (let round = 0; round < 10_000; round++) {
      let moved = false;
      for (const [actor, hub] of this.hubs) {
        if (hub.nextWakeup(this.now) <= this.now) hub.tick(this.now);
        for (const { to, message } of hub.takeOutgoing()) {
          if (!this.links.has(key(actor, to))) continue;
          moved = true;
          this.hubs.get(to)?.receive(actor, decodeMessage(encodeMessage(message)), this.now);
        }
      }
      if (!moved) return;
    }
    throw new Error('the network does not settle');
  }

  /** Moves time forward in the steps the hubs ask for. */
  advance(ms: number): void {
    const end = this.now + ms;
    while (this.now < end) {
      this.pump();
      let next = end;
      for (const hub of this.hubs.values()) next = Math.min(next, hub.nextWakeup(this.now));
      this.now = Math.max(this.now + 1, Math.min(next, end));
    }
    this.pump();
  }

  routes(actor: string): string[] {
    return [...this.hub(actor).table!.routes()].map((r) => `${r.filter}|${r.owner}${r.routeId === '' ? '' : `|${r.routeId}`}`).sort();
  }
}

function key(a: string, b: string): string {
  return a < b ? `${a}~${b}` : `${b}~${a}`;
}

describe('RouteSync between two nodes', () => {
  it('bootstraps each side with the other’s routes at the handshake', () => {
    const net = new Net();
    net.add('a', 'core').subscribe('x/#', 0);
    net.add('b', 'core').subscribe('y', 0, 'g1');
    net.advance(20);
    net.link('a', 'b');
    net.advance(20);
    expect(net.routes('a')).toEqual(['x/#|a', 'y|b|g1']);
    expect(net.routes('b')).toEqual(['x/#|a', 'y|b|g1']);
    expect(net.hub('b').stats().snapshotsApplied).toBe(1);
  });

  it('sends route changes in batches: many subscriptions in one window make few messages', () => {
    const net = new Net();
    const a = net.add('a', 'core', { batch: { maxOps: 4000, maxDelayMs: 10 } });
    net.add('b', 'core');
    net.link('a', 'b');
    net.advance(5);
    for (let i = 0; i < 1000; i++) a.subscribe(`t/${i}/+`, net.now);
    a.subscribe('gone', net.now);
    a.unsubscribe('gone', net.now);
    expect(a.stats().pendingOps).toBe(1000);
    net.advance(15);
    expect(net.hub('b').table!.countOf('a')).toBe(1000);
    expect(a.stats().opsMessagesSent).toBe(1);
    expect(a.stats().opsSent).toBe(1000);
    for (let i = 0; i < 1000; i++) a.unsubscribe(`t/${i}/+`, net.now);
    net.advance(15);
    expect(net.routes('b')).toEqual([]);
  });

  it('keeps a route while any local subscriber remains', () => {
    const net = new Net();
    const a = net.add('a', 'core');
    net.add('b', 'core');
    net.link('a', 'b');
    a.subscribe('x', 0);
    a.subscribe('x', 0);
    net.advance(20);
    a.unsubscribe('x', net.now);
    net.advance(20);
    expect(net.routes('b')).toEqual(['x|a']);
    a.unsubscribe('x', net.now);
    net.advance(20);
    expect(net.routes('b')).toEqual([]);
  });

  it('resends what the peer missed after a reconnect, without a bootstrap', () => {
    const net = new Net();
    const a = net.add('a', 'core');
    net.add('b', 'core');
    net.link('a', 'b');
    a.subscribe('one', net.now);
    net.advance(20);
    const snapshotsBefore = a.stats().snapshotChunksSent;
    net.cut('a', 'b');
    a.subscribe('two', net.now);
    a.unsubscribe('one', net.now);
    net.advance(20);
    expect(net.routes('b')).toEqual(['one|a']);
    net.link('a', 'b');
    net.advance(20);
    expect(net.routes('b')).toEqual(['two|a']);
    expect(a.stats().snapshotChunksSent).toBe(snapshotsBefore);
  });

  it('bootstraps a peer that restarted and lost its table', () => {
    const net = new Net();
    const a = net.add('a', 'core');
    net.add('b', 'replicant');
    net.link('a', 'b');
    a.subscribe('k/+', net.now);
    net.advance(20);
    net.restart('b', 'replicant', 2);
    expect(net.routes('b')).toEqual([]);
    net.link('a', 'b');
    net.advance(20);
    expect(net.routes('b')).toEqual(['k/+|a']);
    expect(a.stats().snapshotChunksSent).toBeGreaterThanOrEqual(1);
  });

  it('replaces every route of an actor that restarts with a higher incarnation', () => {
    const net = new Net();
    net.add('a', 'core').subscribe('old/1', 0);
    net.hub('a').subscribe('kept', 0);
    net.add('b', 'core');
    net.link('a', 'b');
    net.advance(20);
    expect(net.routes('b')).toEqual(['kept|a', 'old/1|a']);
    const a2 = net.restart('a', 'core', 2);
    a2.subscribe('kept', net.now);
    a2.subscribe('new/1', net.now);
    net.link('a', 'b');
    net.advance(20);
    expect(net.routes('b')).toEqual(['kept|a', 'new/1|a']);
    expect(net.events.filter((e) => e.type === 'lane_new' && e.at === 'b').map((e) => e.type === 'lane_new' && e.replacedIncarnation)).toContain(1);
  });

  it('keeps an actor alive with heartbeats and forgets it a TTL after it falls silent', () => {
    const net = new Net();
    const a = net.add('a', 'core');
    net.add('b', 'core');
    net.link('a', 'b');
    a.subscribe('x', net.now);
    net.advance(10 * TTL);
    expect(net.routes('b')).toEqual(['x|a']);
    net.cut('a', 'b');
    const silentSince = net.now;
    net.advance(TTL - 100);
    expect(net.routes('b')).toEqual(['x|a']);
    net.advance(300);
    expect(net.routes('b')).toEqual([]);
    const expired = net.events.find((e) => e.type === 'lane_expired' && e.at === 'b');
    expect(expired).toMatchObject({ actor: 'a', routes: 1 });
    expect(net.now - silentSince).toBeLessThanOrEqual(TTL + 200);
  });

  it('relearns an actor that was forgotten while cut off and comes back with the same incarnation', () => {
    const net = new Net();
    const a = net.add('a', 'replicant');
    net.add('b', 'core');
    net.link('a', 'b');
    a.subscribe('x', net.now);
    net.advance(50);
    net.cut('a', 'b');
    net.advance(2 * TTL);
    expect(net.routes('b')).toEqual([]);
    net.link('a', 'b');
    net.advance(50);
    expect(net.routes('b')).toEqual(['x|a']);
  });
});

describe('RouteSync handshake refusals', () => {
  it('refuses a peer of another cluster, and both sides say so', () => {
    const net = new Net();
    net.add('a', 'core').subscribe('x', 0);
    net.add('b', 'core', { cluster: 'other' });
    net.link('a', 'b');
    net.advance(20);
    expect(net.routes('b')).toEqual([]);
    expect(net.events).toContainEqual(expect.objectContaining({ type: 'stream_refused', at: 'b', peer: 'a', result: 'wrong_cluster' }));
    expect(net.events).toContainEqual(expect.objectContaining({ type: 'stream_rejected', at: 'a', peer: 'b', result: 'wrong_cluster' }));
    expect(net.hub('a').peers().find((p) => p.peer === 'b')?.outbound?.state).toBe('rejected');
  });

  it('refuses an incarnation older than one already seen, telling the newest known', () => {
    const net = new Net();
    net.add('a', 'core', { incarnation: 5 });
    net.add('b', 'core');
    net.link('a', 'b');
    net.advance(20);
    net.restart('a', 'core', 4);
    net.link('a', 'b');
    net.advance(20);
    expect(net.events).toContainEqual(expect.objectContaining({ type: 'stream_rejected', at: 'a', result: 'stale_incarnation', knownIncarnation: 5 }));
  });

  it('refuses a restarted peer that counts connections again from an incarnation already seen (lost state)', () => {
    // As over a cluster link: the receiver is not told when the sender's connection goes, only new inits arrive.
    const net = new Net();
    net.add('a', 'core');
    const b = net.add('b', 'core');
    net.link('a', 'b');
    net.advance(20);
    for (let i = 0; i < 2; i++) {
      net.hub('a').disconnect('b');
      net.hub('a').connect('b', net.now);
      net.advance(20);
    }
    net.add('a', 'core'); // restarted with its state lost: incarnation 1 again, connections counted from 1
    net.hub('a').connect('b', net.now);
    net.advance(20);
    expect(net.events).toContainEqual(expect.objectContaining({ type: 'stream_refused', at: 'b', peer: 'a', result: 'stale_incarnation' }));
    expect(net.events).toContainEqual(expect.objectContaining({ type: 'stream_rejected', at: 'a', result: 'stale_incarnation', knownIncarnation: 1 }));
    expect(b.peers().find((p) => p.peer === 'a')).toBeDefined();
  });

  it('throws a RouteSyncError, changing nothing, when an init claims another actor', () => {
    const net = new Net();
    const b = net.add('b', 'core');
    expect(() =>
      b.receive('a', { type: 'init', protocol: 1, cluster: 'c1', actor: 'mallory', incarnation: 1, role: 'core', conn: 1 }, 0),
    ).toThrow(RouteSyncError);
    expect(b.peers()).toEqual([]);
    expect(b.takeOutgoing()).toEqual([]);
  });

  it('asks for a new handshake when a stream it does not know sends data', () => {
    const b = new Net().add('b', 'core');
    b.receive('a', { type: 'heartbeat', incarnation: 3, conn: 2, afterSeq: 0, lanes: [] }, 0);
    expect(b.takeOutgoing()).toEqual([{ to: 'a', message: { type: 'ack', incarnation: 3, conn: 2, seq: 0, resync: [], reinit: true } }]);
  });

  it('refuses invalid options', () => {
    expect(() => new RouteSync({ cluster: 'c', actor: '', incarnation: 1, role: 'core' })).toThrow('actor "" is empty');
    expect(() => new RouteSync({ cluster: 'c', actor: 'a', incarnation: -1, role: 'core' })).toThrow('incarnation');
    expect(() => new RouteSync({ cluster: 'c', actor: 'a', incarnation: 1, role: 'core', ttlMs: 1000, heartbeatMs: 1000 })).toThrow(
      'heartbeatMs (1000) must be below ttlMs (1000)',
    );
    expect(() => new RouteSync({ cluster: 'c', actor: 'a', incarnation: 1, role: 'core', window: 0 })).toThrow('window must be positive');
  });
});

describe('RouteSync relaying in a region', () => {
  /** c1 — c2 cores; r1 on c1, r2 on c2. */
  function region(): Net {
    const net = new Net();
    for (const c of ['c1', 'c2']) net.add(c, 'core');
    for (const r of ['r1', 'r2']) net.add(r, 'replicant');
    net.link('c1', 'c2');
    net.link('r1', 'c1');
    net.link('r2', 'c2');
    net.advance(20);
    return net;
  }

  it('gives every node the full table, each route with its own owner', () => {
    const net = region();
    net.hub('r1').subscribe('a/+', net.now);
    net.hub('r2').subscribe('a/+', net.now);
    net.hub('c1').subscribe('c/#', net.now);
    net.advance(50);
    const all = ['a/+|r1', 'a/+|r2', 'c/#|c1'];
    for (const node of ['c1', 'c2', 'r1', 'r2']) expect(net.routes(node)).toEqual(all);
    expect([...net.hub('r2').table!.match('a/x')].sort()).toEqual(['r1', 'r2']);
  });

  it('lets a replicant move to another core without losing or duplicating routes', () => {
    const net = region();
    net.hub('r1').subscribe('m', net.now);
    net.advance(50);
    net.cut('r1', 'c1');
    net.link('r1', 'c2');
    net.hub('r1').subscribe('n', net.now);
    net.advance(3 * TTL);
    for (const node of ['c1', 'c2', 'r1', 'r2']) expect(net.routes(node)).toEqual(['m|r1', 'n|r1']);
  });

  it('removes a dead replicant’s routes everywhere within the TTL (plus relay delay)', () => {
    const net = region();
    net.hub('r1').subscribe('z', net.now);
    net.advance(50);
    net.cut('r1', 'c1');
    net.hubs.delete('r1');
    net.advance(TTL + 300);
    for (const node of ['c1', 'c2', 'r2']) expect(net.routes(node)).toEqual([]);
  });

  it('sends only its own lane with exportOwnLaneOnly (a link agent toward a remote region)', () => {
    const net = new Net();
    net.add('agent-a', 'agent', { policy: exportOwnLaneOnly, cluster: 'link' });
    net.add('remote', 'agent', { policy: exportOwnLaneOnly, cluster: 'link' });
    net.add('other', 'agent', { policy: exportOwnLaneOnly, cluster: 'link' });
    net.link('agent-a', 'remote');
    net.link('other', 'agent-a');
    net.hub('other').subscribe('o', net.now);
    net.hub('agent-a').subscribe('eu/#', net.now);
    net.advance(50);
    expect(net.routes('remote')).toEqual(['eu/#|agent-a']);
  });
});
