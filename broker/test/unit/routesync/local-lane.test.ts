import { RouteSyncError } from '../../../src/routesync/errors.js';
import { LocalLane } from '../../../src/routesync/local-lane.js';
import type { LaneDelta } from '../../../src/routesync/messages.js';

function opsOf(delta: LaneDelta | null): string[] {
  return (delta?.ops ?? []).map((o) => `${o.op} ${o.filter}${o.routeId === '' ? '' : `|${o.routeId}`}`);
}

describe('LocalLane subscriber counts', () => {
  it('creates a route at the first subscriber and deletes it after the last', () => {
    const lane = new LocalLane('n1', 1);
    expect(lane.subscribe('a/+', '', 0)).toBe(true);
    expect(lane.subscribe('a/+', '', 0)).toBe(false);
    expect(lane.subscribers('a/+', '')).toBe(2);
    expect(opsOf(lane.takeBatch(100))).toEqual(['add a/+']);
    expect(lane.unsubscribe('a/+', '', 100)).toBe(false);
    expect(lane.takeBatch(200)).toBeNull();
    expect(lane.unsubscribe('a/+', '', 200)).toBe(true);
    expect(opsOf(lane.takeBatch(300))).toEqual(['delete a/+']);
    expect(lane.unsubscribe('a/+', '', 300)).toBe(false);
    expect([...lane.published()]).toEqual([]);
  });

  it('keeps route ids apart', () => {
    const lane = new LocalLane('n1', 1);
    lane.subscribe('s/#', '', 0);
    lane.subscribe('s/#', 'g1', 0);
    expect(opsOf(lane.takeBatch(10)).sort()).toEqual(['add s/#', 'add s/#|g1']);
    expect(lane.publishedSize).toBe(2);
  });

  it('refuses invalid filters and route ids with a typed error', () => {
    const lane = new LocalLane('n1', 1);
    expect(() => lane.subscribe('a/#/b', '', 0)).toThrow(RouteSyncError);
    expect(() => lane.subscribe('$share/g/a', '', 0)).toThrow('route the inner filter');
    expect(() => lane.subscribe('a', 'x\u0000y', 0)).toThrow('route id');
    expect(lane.pendingOps).toBe(0);
  });
});

describe('LocalLane batcher', () => {
  it('cancels an add by a delete of the same route within one batch', () => {
    const lane = new LocalLane('n1', 1);
    lane.subscribe('a', '', 0);
    lane.unsubscribe('a', '', 1);
    expect(lane.pendingOps).toBe(0);
    expect(lane.takeBatch(100)).toBeNull();
    expect(lane.version).toBe(0);
  });

  it('cancels a delete by an add of the same route within one batch', () => {
    const lane = new LocalLane('n1', 1);
    lane.subscribe('a', '', 0);
    lane.takeBatch(100);
    lane.unsubscribe('a', '', 100);
    lane.subscribe('a', '', 101);
    expect(lane.pendingOps).toBe(0);
    expect(lane.takeBatch(200)).toBeNull();
    expect([...lane.published()]).toEqual([{ filter: 'a', routeId: '' }]);
  });

  it('waits up to maxDelayMs for companions', () => {
    const lane = new LocalLane('n1', 1, { maxOps: 100, maxDelayMs: 10 });
    lane.subscribe('a', '', 1000);
    expect(lane.dueAt()).toBe(1010);
    lane.subscribe('b', '', 1005);
    expect(lane.takeBatch(1009)).toBeNull();
    const batch = lane.takeBatch(1010);
    expect(opsOf(batch)).toEqual(['add a', 'add b']);
    expect(batch).toMatchObject({ actor: 'n1', incarnation: 1, base: 0, version: 1 });
    expect(lane.dueAt()).toBeNull();
  });

  it('is due at once when maxOps operations are pending, and splits bigger bursts', () => {
    const lane = new LocalLane('n1', 7, { maxOps: 3, maxDelayMs: 10 });
    for (const f of ['a', 'b', 'c', 'd', 'e']) lane.subscribe(f, '', 50);
    expect(lane.dueAt()).toBe(50);
    const first = lane.takeBatch(50);
    const second = lane.takeBatch(50);
    expect(opsOf(first)).toEqual(['add a', 'add b', 'add c']);
    expect(opsOf(second)).toEqual(['add d', 'add e']);
    expect([first?.base, first?.version, second?.base, second?.version]).toEqual([0, 1, 1, 2]);
    expect(lane.takeBatch(50)).toBeNull();
  });

  it('can be forced before it is due', () => {
    const lane = new LocalLane('n1', 1);
    lane.subscribe('a', '', 0);
    expect(lane.takeBatch(0)).toBeNull();
    expect(opsOf(lane.takeBatch(0, true))).toEqual(['add a']);
  });

  it('publishes exactly the routes of the current version (pending changes excluded)', () => {
    const lane = new LocalLane('n1', 1);
    lane.subscribe('a', '', 0);
    lane.takeBatch(0, true);
    lane.subscribe('b', '', 1);
    lane.unsubscribe('a', '', 1);
    expect([...lane.published()].map((r) => r.filter)).toEqual(['a']);
    lane.takeBatch(1, true);
    expect([...lane.published()].map((r) => r.filter)).toEqual(['b']);
    expect(lane.version).toBe(2);
  });
});
