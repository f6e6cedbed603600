import { RouteTable } from '../../../src/routing/route-table.js';
import { LANE_COMPLETE_ROUTE, LaneStore } from '../../../src/routesync/lane-store.js';
import type { LaneDelta, RouteOp } from '../../../src/routesync/messages.js';
import { RouteSet } from '../../../src/routesync/route-set.js';

const TTL = 15_000;

function setup(holdOverMs = 10 * TTL): { store: LaneStore; table: RouteTable } {
  const table = new RouteTable();
  return { store: new LaneStore('me', table, { ttlMs: TTL, tombstoneMs: 10 * TTL, holdOverMs }), table };
}

function add(filter: string, routeId = ''): RouteOp {
  return { op: 'add', filter, routeId };
}

function del(filter: string, routeId = ''): RouteOp {
  return { op: 'delete', filter, routeId };
}

function delta(actor: string, incarnation: number, base: number, version: number, ops: RouteOp[]): LaneDelta {
  return { actor, incarnation, base, version, ops };
}

function routesOf(table: RouteTable): string[] {
  return [...table.routes()].map((r) => `${r.filter}|${r.owner}`).sort();
}

function snapshot(...filters: string[]): RouteSet {
  return RouteSet.of(filters.map((filter) => ({ filter, routeId: '' })));
}

describe('LaneStore lanes', () => {
  it('keeps one lane per actor: the same filter never conflicts, one delete never removes another actor’s route', () => {
    const { store, table } = setup();
    store.applyDelta(delta('n1', 1, 0, 1, [add('a/+')]), 0);
    store.applyDelta(delta('n2', 1, 0, 1, [add('a/+')]), 0);
    expect(store.applyDelta(delta('n1', 1, 1, 2, [del('a/+')]), 0).outcome).toBe('applied');
    expect(routesOf(table)).toEqual(['a/+|n2']);
    expect([...table.match('a/x')]).toEqual(['n2']);
  });

  it('applies a delta only at its exact base version', () => {
    const { store, table } = setup();
    expect(store.applyDelta(delta('n1', 1, 0, 1, [add('a')]), 0).outcome).toBe('applied');
    expect(store.applyDelta(delta('n1', 1, 2, 3, [add('c')]), 0).outcome).toBe('gap');
    expect(store.applyDelta(delta('n1', 1, 1, 2, [add('b')]), 0).outcome).toBe('applied');
    expect(store.applyDelta(delta('n1', 1, 0, 1, [add('a')]), 0).outcome).toBe('duplicate');
    expect(store.applyDelta(delta('n1', 1, 1, 2, [add('b')]), 0).outcome).toBe('duplicate');
    expect(routesOf(table)).toEqual(['a|n1', 'b|n1']);
    expect(store.get('n1')?.version).toBe(2);
  });

  it('cannot start an unknown lane from a delta that does not start at version 0', () => {
    const { store, table } = setup();
    expect(store.applyDelta(delta('n1', 1, 4, 5, [add('a')]), 0).outcome).toBe('gap');
    expect(routesOf(table)).toEqual([]);
  });

  it('replaces a lane from a later snapshot, changing only the difference', () => {
    const { store, table } = setup();
    store.applySnapshot({ actor: 'n1', incarnation: 1, version: 3 }, snapshot('a', 'b'), 0);
    const result = store.applySnapshot({ actor: 'n1', incarnation: 1, version: 5 }, snapshot('b', 'c'), 0);
    expect(result.change).toEqual({
      kind: 'delta',
      delta: { actor: 'n1', incarnation: 1, base: 3, version: 5, ops: [del('a'), add('c')] },
    });
    expect(store.applySnapshot({ actor: 'n1', incarnation: 1, version: 4 }, snapshot('x'), 0).outcome).toBe('duplicate');
    expect(routesOf(table)).toEqual(['b|n1', 'c|n1']);
  });

  it('ignores everything about its own actor', () => {
    const { store, table } = setup();
    expect(store.applyDelta(delta('me', 1, 0, 1, [add('a')]), 0).outcome).toBe('own');
    expect(store.heartbeat({ actor: 'me', incarnation: 1, version: 1 }, 0)).toBe('own');
    expect(routesOf(table)).toEqual([]);
  });
});

describe('LaneStore incarnations', () => {
  it('a higher incarnation replaces all routes of the older one', () => {
    const { store, table } = setup();
    store.applyDelta(delta('n1', 1, 0, 1, [add('a'), add('b')]), 0);
    const result = store.applySnapshot({ actor: 'n1', incarnation: 2, version: 1 }, snapshot('b', 'c'), 0);
    expect(result.change).toEqual({ kind: 'new', lane: { actor: 'n1', incarnation: 2, version: 1 }, replaced: { actor: 'n1', incarnation: 1 } });
    expect(routesOf(table)).toEqual(['b|n1', 'c|n1']);
  });

  it('a first delta of a higher incarnation (from version 0) replaces the lane too', () => {
    const { store, table } = setup();
    store.applyDelta(delta('n1', 1, 0, 1, [add('a')]), 0);
    expect(store.applyDelta(delta('n1', 2, 0, 1, [add('z')]), 0).outcome).toBe('applied');
    expect(routesOf(table)).toEqual(['z|n1']);
  });

  it('ignores messages of an older incarnation once a newer one was seen', () => {
    const { store, table } = setup();
    store.applyDelta(delta('n1', 2, 0, 1, [add('new')]), 0);
    expect(store.applyDelta(delta('n1', 1, 1, 2, [add('old')]), 0).outcome).toBe('stale');
    expect(store.applySnapshot({ actor: 'n1', incarnation: 1, version: 9 }, snapshot('old'), 0).outcome).toBe('stale');
    expect(store.heartbeat({ actor: 'n1', incarnation: 1, version: 9 }, 0)).toBe('stale');
    expect(routesOf(table)).toEqual(['new|n1']);
  });

  it('a heartbeat of a newer incarnation makes the old one stale but keeps its routes until the new snapshot', () => {
    const { store, table } = setup();
    store.applyDelta(delta('n1', 1, 0, 1, [add('a')]), 0);
    expect(store.heartbeat({ actor: 'n1', incarnation: 2, version: 3 }, 10)).toBe('unknown');
    expect(store.applyDelta(delta('n1', 1, 1, 2, [add('b')]), 10).outcome).toBe('stale');
    expect(routesOf(table)).toEqual(['a|n1']);
    store.applySnapshot({ actor: 'n1', incarnation: 2, version: 3 }, snapshot('a', 'c'), 20);
    expect(routesOf(table)).toEqual(['a|n1', 'c|n1']);
  });

  it('tells a heartbeat that is ahead of the lane (behind) from one that is not', () => {
    const { store } = setup();
    store.applyDelta(delta('n1', 1, 0, 1, [add('a')]), 0);
    expect(store.heartbeat({ actor: 'n1', incarnation: 1, version: 1 }, 0)).toBe('alive');
    expect(store.heartbeat({ actor: 'n1', incarnation: 1, version: 0 }, 0)).toBe('alive');
    expect(store.heartbeat({ actor: 'n1', incarnation: 1, version: 2 }, 0)).toBe('behind');
    expect(store.heartbeat({ actor: 'n9', incarnation: 1, version: 2 }, 0)).toBe('unknown');
  });
});

describe('LaneStore garbage collection', () => {
  it('removes the routes of an actor silent for longer than the TTL, and only those', () => {
    const { store, table } = setup();
    store.applyDelta(delta('n1', 1, 0, 1, [add('a'), add('b')]), 0);
    store.applyDelta(delta('n2', 1, 0, 1, [add('a')]), 0);
    store.heartbeat({ actor: 'n2', incarnation: 1, version: 1 }, 10_000);
    expect(store.gc(TTL)).toEqual([]);
    const expired = store.gc(TTL + 1);
    expect(expired).toEqual([{ actor: 'n1', incarnation: 1, version: 1, routes: [{ filter: 'a', routeId: '' }, { filter: 'b', routeId: '' }] }]);
    expect(routesOf(table)).toEqual(['a|n2']);
    expect(store.gc(10_000 + TTL + 1).map((l) => l.actor)).toEqual(['n2']);
    expect(routesOf(table)).toEqual([]);
  });

  it('remembers an expired incarnation for a while: older ones stay stale, the same one may come back', () => {
    const { store, table } = setup();
    store.applyDelta(delta('n1', 3, 0, 1, [add('a')]), 0);
    store.gc(TTL + 1);
    expect(store.knownIncarnation('n1')).toBe(3);
    expect(store.applySnapshot({ actor: 'n1', incarnation: 2, version: 5 }, snapshot('x'), TTL + 2).outcome).toBe('stale');
    expect(store.applySnapshot({ actor: 'n1', incarnation: 3, version: 1 }, snapshot('a'), TTL + 2).outcome).toBe('applied');
    expect(routesOf(table)).toEqual(['a|n1']);
  });

  it('forgets tombstones after tombstoneMs', () => {
    const { store } = setup();
    store.applyDelta(delta('n1', 3, 0, 1, [add('a')]), 0);
    store.gc(TTL + 1);
    store.gc(TTL + 1 + 10 * TTL + 1);
    expect(store.knownIncarnation('n1')).toBeUndefined();
  });

  it('says when the next lane would expire', () => {
    const { store } = setup();
    expect(store.nextExpiry()).toBeNull();
    store.applyDelta(delta('n1', 1, 0, 1, []), 100);
    expect(store.nextExpiry()).toBe(100 + TTL + 1);
  });
});

describe('LaneStore held-over link routes (a link agent back with a wiped store)', () => {
  const complete = (): RouteOp => add(LANE_COMPLETE_ROUTE.filter, LANE_COMPLETE_ROUTE.routeId);
  const routesWithIds = (table: RouteTable): string[] => [...table.routes()].map((r) => `${r.filter}|${r.owner}|${r.routeId}`).sort();

  function oldAgentLane(store: LaneStore): void {
    store.applyDelta(delta('agent', 5, 0, 1, [add('a/#', '$link/far'), add('b', '$link/far'), add('$LINK/cluster/route/far/+', '$link/$control'), add('c')]), 0);
  }

  it('a new incarnation keeps the old lane’s $link/<link> routes in the sink (not its control or ordinary routes) until its lane is complete', () => {
    const { store, table } = setup();
    oldAgentLane(store);
    expect(store.applyDelta(delta('agent', 9, 0, 1, [add('x')]), 10).outcome).toBe('applied');
    expect(routesWithIds(table)).toEqual(['a/#|agent|$link/far', 'b|agent|$link/far', 'x|agent|']);
    expect([...table.match('a/1')]).toEqual(['agent']);
    // The lane itself is exactly the new incarnation's routes (relayed as such).
    expect(store.get('agent')?.routes.toArray()).toEqual([{ filter: 'x', routeId: '' }]);
    // The remote's bootstrap brings one route back: it stops being held, no flap.
    store.applyDelta(delta('agent', 9, 1, 2, [add('b', '$link/far')]), 20);
    expect(store.get('agent')?.heldOver?.toArray()).toEqual([{ filter: 'a/#', routeId: '$link/far' }]);
    store.applyDelta(delta('agent', 9, 2, 3, [complete()]), 30);
    expect(routesWithIds(table)).toEqual([`${LANE_COMPLETE_ROUTE.filter}|agent|${LANE_COMPLETE_ROUTE.routeId}`, 'b|agent|$link/far', 'x|agent|']);
    expect(store.get('agent')?.heldOver).toBeNull();
  });

  it('a new incarnation whose first snapshot is already complete replaces the lane at once', () => {
    const { store, table } = setup();
    oldAgentLane(store);
    store.applySnapshot({ actor: 'agent', incarnation: 9, version: 4 }, RouteSet.of([{ filter: 'x', routeId: '' }, LANE_COMPLETE_ROUTE]), 10);
    expect(routesWithIds(table)).toEqual([`${LANE_COMPLETE_ROUTE.filter}|agent|${LANE_COMPLETE_ROUTE.routeId}`, 'x|agent|']);
  });

  it('held routes survive same-incarnation snapshots and a further incarnation, and go after holdOverMs at the latest', () => {
    const { store, table } = setup(5000);
    oldAgentLane(store);
    store.applyDelta(delta('agent', 9, 0, 1, [add('x')]), 1000);
    store.applySnapshot({ actor: 'agent', incarnation: 9, version: 3 }, RouteSet.of([{ filter: 'y', routeId: '' }, { filter: 'a/#', routeId: '$link/far' }]), 2000);
    expect(routesWithIds(table)).toEqual(['a/#|agent|$link/far', 'b|agent|$link/far', 'y|agent|']);
    store.applyDelta(delta('agent', 10, 0, 1, [add('z')]), 3000);
    expect(routesWithIds(table)).toEqual(['a/#|agent|$link/far', 'b|agent|$link/far', 'z|agent|']);
    // The deadline is the first hold's.
    expect(store.nextExpiry()).toBe(6000);
    store.gc(5999);
    expect(routesWithIds(table)).toHaveLength(3);
    store.gc(6000);
    expect(routesWithIds(table)).toEqual(['z|agent|']);
  });

  it('an expiring lane takes its held-over routes with it', () => {
    const { store, table } = setup();
    oldAgentLane(store);
    store.applyDelta(delta('agent', 9, 0, 1, []), 10);
    expect(store.gc(10 + TTL + 1).map((l) => l.actor)).toEqual(['agent']);
    expect(routesWithIds(table)).toEqual([]);
  });
});
