import type { LaneDelta, OpsMessage, RouteSpec, SenderMessage, SnapshotMessage } from '../../../src/routesync/messages.js';
import { OutboundSession, mergeDeltas, type OutboundOptions } from '../../../src/routesync/outbound.js';

const OPTIONS: OutboundOptions = {
  cluster: 'c',
  actor: 'me',
  incarnation: 1,
  role: 'core',
  maxOps: 4,
  batchDelayMs: 10,
  snapshotChunkRoutes: 2,
  snapshotChunkBytes: 1 << 20,
  window: 2,
  retransmitMs: 100,
  handshakeRetryMs: 50,
  heartbeatMs: 1000,
  maxRetainedOps: 100,
};

/** A source holding one lane 'x' whose routes and version the test sets. */
function source(routes: RouteSpec[], version: number) {
  return { lane: (actor: string) => (actor === 'x' ? { incarnation: 1, version, routes: () => routes } : undefined) };
}

function delta(base: number, version: number, ...filters: string[]): LaneDelta {
  return { actor: 'x', incarnation: 1, base, version, ops: filters.map((filter) => ({ op: 'add', filter, routeId: '' })) };
}

function ready(session: OutboundSession, lanes: Array<{ actor: string; incarnation: number; version: number }>): SenderMessage[] {
  const out: SenderMessage[] = [];
  session.connect(0, out);
  const report = session.acceptInitAck(
    { type: 'init_ack', incarnation: 1, conn: session.connection, result: 'ok', cluster: 'c', actor: 'peer', actorIncarnation: 1, role: 'core', knownIncarnation: 0, lanes },
    0,
  );
  session.resume(report ?? new Map());
  return out;
}

function poll(session: OutboundSession, now: number): SenderMessage[] {
  const out: SenderMessage[] = [];
  session.poll(now, out);
  return out;
}

describe('OutboundSession', () => {
  it('retries init until answered', () => {
    const session = new OutboundSession('peer', source([], 0), OPTIONS);
    const out: SenderMessage[] = [];
    session.connect(0, out);
    expect(out.map((m) => m.type)).toEqual(['init']);
    expect(poll(session, 10)).toEqual([]);
    expect(poll(session, 50).map((m) => m.type)).toEqual(['init']);
    expect(session.nextWakeup(50)).toBe(100);
  });

  it('bootstraps a lane the peer lacks in chunks, holding back to the window until acks come', () => {
    const routes = ['a', 'b', 'c', 'd', 'e'].map((filter) => ({ filter, routeId: '' }));
    const session = new OutboundSession('peer', source(routes, 3), OPTIONS);
    session.track({ actor: 'x', incarnation: 1, version: 3 }, false);
    ready(session, []);
    const first = poll(session, 1).filter((m): m is SnapshotMessage => m.type === 'snapshot');
    expect(first.map((m) => [m.seq, m.part, m.last, m.routes.length])).toEqual([[1, 0, false, 2], [2, 1, false, 2]]);
    expect(session.nextWakeup(1)).not.toBe(1); // window full: nothing more until an ack
    session.acceptAck({ type: 'ack', incarnation: 1, conn: 1, seq: 2, resync: [], reinit: false }, 2, []);
    const rest = poll(session, 2).filter((m): m is SnapshotMessage => m.type === 'snapshot');
    expect(rest.map((m) => [m.seq, m.part, m.last, m.routes.map((r) => r.filter)])).toEqual([[3, 2, true, ['e']]]);
  });

  it('retransmits unacknowledged messages after retransmitMs', () => {
    const session = new OutboundSession('peer', source([], 0), OPTIONS);
    session.track({ actor: 'x', incarnation: 1, version: 0 }, false);
    ready(session, [{ actor: 'x', incarnation: 1, version: 0 }]);
    session.enqueue(delta(0, 1, 'a'));
    const sent = poll(session, 1).filter((m) => m.type === 'ops');
    expect(sent).toHaveLength(1);
    expect(poll(session, 50).filter((m) => m.type === 'ops')).toEqual([]);
    expect(poll(session, 101).filter((m) => m.type === 'ops')).toEqual(sent);
  });

  it('merges consecutive deltas of a lane up to maxOps and packs lanes into one message', () => {
    const session = new OutboundSession('peer', source([], 0), OPTIONS);
    session.track({ actor: 'x', incarnation: 1, version: 0 }, false);
    ready(session, [{ actor: 'x', incarnation: 1, version: 0 }]);
    session.enqueue(delta(0, 1, 'a'));
    session.enqueue(delta(1, 2, 'b', 'c'));
    session.enqueue(delta(2, 3, 'd', 'e'));
    const ops = poll(session, 1).filter((m): m is OpsMessage => m.type === 'ops');
    expect(ops.map((m) => m.deltas.map((d) => `${d.base}→${d.version}:${d.ops.length}`))).toEqual([['0→2:3'], ['2→3:2']]);
  });

  it('resends the deltas a reconnecting peer lacks instead of a snapshot', () => {
    const session = new OutboundSession('peer', source([], 3), OPTIONS);
    session.track({ actor: 'x', incarnation: 1, version: 0 }, false);
    ready(session, [{ actor: 'x', incarnation: 1, version: 0 }]);
    session.enqueue(delta(0, 1, 'a'));
    poll(session, 1);
    session.acceptAck({ type: 'ack', incarnation: 1, conn: 1, seq: 1, resync: [], reinit: false }, 2, []);
    session.enqueue(delta(1, 2, 'b'));
    poll(session, 3);
    session.disconnect();
    session.enqueue(delta(2, 3, 'c'));
    ready(session, [{ actor: 'x', incarnation: 1, version: 1 }]);
    const resent = poll(session, 10);
    expect(resent.filter((m) => m.type === 'snapshot')).toEqual([]);
    const ops = resent.filter((m): m is OpsMessage => m.type === 'ops');
    expect(ops.flatMap((m) => m.deltas.map((d) => `${d.base}→${d.version}`))).toEqual(['1→3']);
  });

  it('starts a snapshot when the peer asks for a resync', () => {
    const session = new OutboundSession('peer', source([{ filter: 'z', routeId: '' }], 5), OPTIONS);
    session.track({ actor: 'x', incarnation: 1, version: 5 }, false);
    ready(session, [{ actor: 'x', incarnation: 1, version: 5 }]);
    expect(poll(session, 1).filter((m) => m.type === 'snapshot')).toEqual([]);
    session.acceptAck({ type: 'ack', incarnation: 1, conn: 1, seq: 0, resync: [{ actor: 'x', incarnation: 1 }], reinit: false }, 2, []);
    const snaps = poll(session, 2).filter((m): m is SnapshotMessage => m.type === 'snapshot');
    expect(snaps.map((m) => [m.lane.version, m.last, m.routes])).toEqual([[5, true, [{ filter: 'z', routeId: '' }]]]);
  });

  it('starts over with a new connection when the peer does not know the stream', () => {
    const session = new OutboundSession('peer', source([], 0), OPTIONS);
    ready(session, []);
    const out: SenderMessage[] = [];
    session.acceptAck({ type: 'ack', incarnation: 1, conn: 1, seq: 0, resync: [], reinit: true }, 5, out);
    expect(out).toEqual([expect.objectContaining({ type: 'init', conn: 2 })]);
    expect(session.state).toBe('handshake');
  });

  it('ignores acks of other streams', () => {
    const session = new OutboundSession('peer', source([], 0), OPTIONS);
    ready(session, []);
    const out: SenderMessage[] = [];
    session.acceptAck({ type: 'ack', incarnation: 9, conn: 1, seq: 0, resync: [], reinit: true }, 5, out);
    session.acceptAck({ type: 'ack', incarnation: 1, conn: 7, seq: 0, resync: [], reinit: true }, 5, out);
    expect(out).toEqual([]);
    expect(session.state).toBe('ready');
  });
});

describe('mergeDeltas', () => {
  it('keeps the later operation on a route', () => {
    const a: LaneDelta = { actor: 'x', incarnation: 1, base: 0, version: 1, ops: [{ op: 'add', filter: 'a', routeId: '' }] };
    const b: LaneDelta = { actor: 'x', incarnation: 1, base: 1, version: 2, ops: [{ op: 'delete', filter: 'a', routeId: '' }, { op: 'add', filter: 'b', routeId: 'g' }] };
    expect(mergeDeltas(a, b)).toEqual({
      actor: 'x',
      incarnation: 1,
      base: 0,
      version: 2,
      ops: [{ op: 'delete', filter: 'a', routeId: '' }, { op: 'add', filter: 'b', routeId: 'g' }],
    });
  });
});
