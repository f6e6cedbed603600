import { EventEmitter } from 'node:events';
import { jest } from '@jest/globals';
import type { AuthenticateError, Client } from 'aedes';
import { pino } from 'pino';
import { Rpc } from '../../../src/cluster/rpc.js';
import { SessionTakeover, compareClaims, withSessionTakeover, type TakeoverClient, type TakeoverOptions } from '../../../src/cluster/takeover.js';
import { Delivery } from '../../../src/cluster/transport/index.js';
import { DurablePersistence, emptyState, type StoredPacket } from '../../../src/store/persistence.js';

const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });
const FAST: Partial<TakeoverOptions> = { unreachableWaitMs: 150, requestTimeoutMs: 500, handoverTimeoutMs: 300, busyRetryMs: 2000 };

/** In-process cluster: real Rpc and DurablePersistence per node, a fake link layer that can cut a node off. */
class Net {
  readonly nodes = new Map<string, TestNode>();
  readonly down = new Map<string, number>();
  /** Whether `node`'s route table holds the route (filter, owner): every route is everywhere unless a test says not. */
  routed: (node: string, filter: string, owner: string) => boolean = () => true;

  add(name: string, clock: () => number = Date.now, options: Partial<TakeoverOptions> = FAST): TestNode {
    const node = new TestNode(this, name, clock, options);
    this.nodes.set(name, node);
    return node;
  }

  /** Connects every pair of live nodes (each side sends its claims, as on `peerConnected`). */
  async connectAll(): Promise<void> {
    for (const a of this.nodes.values()) for (const b of this.nodes.values()) if (a !== b && this.reachable(a.name, b.name)) a.takeover.peerConnected(b.name);
    await settle();
  }

  reachable(from: string, to: string): boolean {
    return !this.down.has(from) && !this.down.has(to) && this.nodes.has(to);
  }

  cut(name: string): void {
    this.down.set(name, Date.now());
  }

  async restore(name: string): Promise<void> {
    this.down.delete(name);
    for (const other of this.nodes.values()) {
      if (other.name === name) continue;
      other.takeover.peerConnected(name);
      this.node(name).takeover.peerConnected(other.name);
    }
    await settle();
  }

  node(name: string): TestNode {
    const node = this.nodes.get(name);
    if (!node) throw new Error(`no node ${name}`);
    return node;
  }
}

class TestNode {
  readonly store: DurablePersistence;
  readonly rpc: Rpc;
  readonly takeover: SessionTakeover;
  readonly counts: Record<string, number> = {};
  readonly writes: number[] = [];
  seq = 0;

  constructor(private readonly net: Net, readonly name: string, clock: () => number, options: Partial<TakeoverOptions>) {
    this.store = new DurablePersistence(emptyState(), {
      write: async (ops) => { this.writes.push(ops.length); },
      maxQueuedMessages: 1000, hasRoom: () => true, onQueueFull: () => undefined,
    });
    void this.store.setup({ id: `${name}.1` });
    this.rpc = new Rpc({ send: (to, _channel, payload) => this.send(to, payload) }, logger);
    const peers = {
      get: (nodeId: string) => (net.nodes.has(nodeId) ? { connected: net.reachable(name, nodeId), since: net.down.get(nodeId) ?? net.down.get(name) ?? 0 } : undefined),
      list: () => [...net.nodes.keys()].filter((n) => n !== name).map((nodeId) => ({ nodeId, connected: net.reachable(name, nodeId) })),
    };
    const takeovers = { inc: ({ role }: { role: string }) => { this.counts[role] = (this.counts[role] ?? 0) + 1; } };
    const routes = { has: (filter: string, owner: string) => net.routed(name, filter, owner) };
    this.takeover = new SessionTakeover({ nodeId: name, store: this.store, rpc: this.rpc, peers, takeovers, logger, now: clock, routes }, options);
  }

  private async send(to: string, payload: Buffer): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    if (!this.net.reachable(this.name, to)) throw new Error(`${to} unreachable from ${this.name}`);
    const delivery = new Delivery();
    this.net.node(to).rpc.receive(this.name, payload, delivery);
    await delivery.seal();
  }

  /** A client connects (CleanSession 0), subscribes twice and goes offline; then `count` QoS 1 messages queue for it. */
  async offlineSession(clientId: string, count: number): Promise<void> {
    const client = new FakeClient(clientId);
    await this.takeover.admit(client);
    await this.store.openSession({ id: clientId });
    await this.store.addSubscriptions({ id: clientId }, [{ topic: 'a/+', qos: 1 }, { topic: 'b/#', qos: 2 }]);
    client.close();
    for (let i = 0; i < count; i++) await this.enqueue(clientId, `m${i}`);
    await settle();
  }

  async enqueue(clientId: string, payload: string, qos = 1): Promise<void> {
    await this.store.outgoingEnqueueCombi([{ clientId }], packet(this.name, ++this.seq, payload, qos));
  }

  payloads(clientId: string): string[] {
    const stream = this.store.outgoingStream({ id: clientId }) as unknown as { read(): StoredPacket | null };
    const out: string[] = [];
    for (let p = stream.read(); p !== null; p = stream.read()) out.push(p.cmd === 'pubrel' ? `pubrel:${p.messageId}` : String(p.payload));
    return out;
  }
}

function packet(node: string, counter: number, payload: string, qos: number): StoredPacket {
  return { cmd: 'publish', topic: 'a/x', payload: Buffer.from(payload), qos, retain: false, dup: false, brokerId: `${node}.1`, brokerCounter: counter };
}

class FakeClient implements TakeoverClient {
  readonly conn = new EventEmitter();
  closed = false;
  constructor(readonly id: string, readonly clean = false) {}
  close(done?: () => void): void {
    if (!this.closed) {
      this.closed = true;
      this.conn.emit('close');
    }
    done?.();
  }
}

async function settle(turns = 20): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
}

async function until(probe: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

let net: Net;
beforeEach(() => { net = new Net(); });
afterEach(() => { for (const node of net.nodes.values()) node.takeover.stop(); });

describe('claims', () => {
  test('the later time wins; the node id breaks a tie', () => {
    expect(compareClaims({ time: 2, node: 'a' }, { time: 1, node: 'z' })).toBeGreaterThan(0);
    expect(compareClaims({ time: 1, node: 'b' }, { time: 1, node: 'a' })).toBeGreaterThan(0);
    expect(compareClaims({ time: 1, node: 'a' }, { time: 1, node: 'a' })).toBe(0);
  });

  test('stored sessions are claimed at start and announced to peers; a connect re-claims with a later time', async () => {
    const a = net.add('a');
    await a.offlineSession('c1', 0);
    const restarted = new SessionTakeover({ nodeId: 'a2', store: a.store, rpc: new Rpc({ send: async () => undefined }, logger), peers: { get: () => undefined, list: () => [] }, takeovers: { inc: () => undefined }, logger });
    expect(restarted.registry.ownTime('c1')).toBe(0);
    const b = net.add('b');
    await net.connectAll();
    await a.takeover.admit(new FakeClient('c2'));
    await settle();
    expect(b.takeover.registry.holders('c2')).toEqual(['a']);
  });

  test('a clean connection\'s claim ends with it; a persistent session\'s claim outlives it', async () => {
    const a = net.add('a');
    const b = net.add('b');
    await net.connectAll();
    const clean = new FakeClient('clean', true);
    const persistent = new FakeClient('kept');
    await a.takeover.admit(clean);
    await a.takeover.admit(persistent);
    await a.store.openSession({ id: 'kept' });
    await settle();
    expect(b.takeover.registry.holders('clean')).toEqual(['a']);
    clean.close();
    persistent.close();
    await settle();
    expect(b.takeover.registry.holders('clean')).toEqual([]);
    expect(b.takeover.registry.holders('kept')).toEqual(['a']);
  });
});

describe('takeover of a stored session', () => {
  test('an offline session with queued, in-flight and QoS 2 state moves to the connecting node, exactly once', async () => {
    const a = net.add('a');
    const b = net.add('b');
    await net.connectAll();
    await a.offlineSession('c1', 50);
    await a.store.outgoingUpdate({ id: 'c1' }, { ...packet('a', 1, 'm0', 1), messageId: 7 });
    await a.store.incomingStorePacket({ id: 'c1' }, { cmd: 'publish', topic: 'up', payload: Buffer.from('q2'), qos: 2, messageId: 9 });
    await settle();

    expect(await b.takeover.admit(new FakeClient('c1'))).toBe(true);
    await settle();

    expect(b.payloads('c1')).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}`));
    expect((await b.store.subscriptionsByClient({ id: 'c1' })).map((s) => s.topic).sort()).toEqual(['a/+', 'b/#']);
    expect(await b.store.openSession({ id: 'c1' })).toBe(true);
    expect((await b.store.incomingGetPacket({ id: 'c1' }, { cmd: 'publish', messageId: 9 })).payload).toEqual(Buffer.from('q2'));
    const inFlight = (b.store.exportSession('c1')?.outgoing ?? [])[0];
    expect(inFlight?.messageId).toBe(7);
    expect(a.store.hasSession('c1')).toBe(false);
    expect(a.store.queuedCount('c1')).toBe(0);
    expect(a.counts).toEqual({ handed: 1 });
    expect(b.counts).toEqual({ taken: 1 });
    expect(a.takeover.registry.holders('c1')).toEqual(['b']);
    expect(a.takeover.registry.ownTime('c1')).toBeUndefined();
  });

  test('a message both nodes queued during the handover stays once, at the holder\'s place; the holder\'s late ones go before the taker\'s own; a copy trailing the handover is not queued again', async () => {
    const a = net.add('a');
    const b = net.add('b');
    await net.connectAll();
    await a.offlineSession('c1', 2);
    // Copies of one publish carry the origin's identity on every node (here: publisher node p).
    const [lateOnly, both, trailing, own] = ['late', 'both', 'trailing', 'own'].map((payload, i) => packet('p', i + 1, payload, 2));
    const to = [{ clientId: 'c1' }];
    const importSession = b.store.importSession.bind(b.store);
    let imports = 0;
    b.store.importSession = async (snapshot) => {
      const imported = await importSession(snapshot);
      if (imports++ === 0) {
        await a.store.outgoingEnqueueCombi(to, { ...lateOnly });
        await a.store.outgoingEnqueueCombi(to, { ...both });
        await b.store.outgoingEnqueueCombi(to, { ...both });
        await b.store.outgoingEnqueueCombi(to, { ...own });
        await a.store.outgoingEnqueueCombi(to, { ...trailing });
      }
      return imported;
    };
    await b.takeover.admit(new FakeClient('c1'));
    await settle();
    const expected = ['m0', 'm1', 'late', 'both', 'trailing', 'own'];
    expect(b.payloads('c1')).toEqual(expected);
    // The holder's copy of `trailing` reaches b after the handover: still queued, and also once acknowledged.
    await b.store.outgoingEnqueueCombi(to, { ...trailing });
    expect(b.payloads('c1')).toEqual(expected);
    await b.store.outgoingUpdate({ id: 'c1' }, { ...trailing, messageId: 7 });
    await b.store.outgoingClearMessageId({ id: 'c1' }, { cmd: 'puback', messageId: 7 });
    await b.store.outgoingEnqueueCombi(to, { ...trailing });
    expect(b.payloads('c1')).toEqual(expected.filter((p) => p !== 'trailing'));
    expect(a.store.hasSession('c1')).toBe(false);
  });

  test('the taker commits only once every peer holds its routes; a peer that never does is waited for routeWaitMs', async () => {
    const options = { ...FAST, routeWaitMs: 400, handoverTimeoutMs: 3000 };
    const a = net.add('a', Date.now, options);
    const b = net.add('b', Date.now, options);
    net.add('c', Date.now, options);
    await net.connectAll();
    await a.offlineSession('c1', 1);
    let cHasRoutes = false;
    net.routed = (node, filter, owner) => owner !== 'b' || node !== 'c' || cHasRoutes;
    const admitted = b.takeover.admit(new FakeClient('c1'));
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(a.store.hasSession('c1')).toBe(true); // not committed: c does not route c1's filters to b yet
    cHasRoutes = true;
    await admitted;
    await until(() => !a.store.hasSession('c1'));
    expect(b.payloads('c1')).toEqual(['m0']);

    await b.offlineSession('c2', 1);
    net.routed = (node, filter, owner) => owner !== 'a' || node !== 'c';
    const started = Date.now();
    await a.takeover.admit(new FakeClient('c2'));
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    await until(() => !b.store.hasSession('c2'));
    expect(a.payloads('c2')).toEqual(['m0']);
  });

  test('messages queued on the old node during the handover follow in the commit; none is lost or repeated', async () => {
    const a = net.add('a');
    const b = net.add('b');
    await net.connectAll();
    await a.offlineSession('c1', 3);
    const importSession = b.store.importSession.bind(b.store);
    let imports = 0;
    b.store.importSession = async (snapshot) => {
      if (imports++ === 0) await a.enqueue('c1', 'late');
      return importSession(snapshot);
    };
    await b.takeover.admit(new FakeClient('c1'));
    await settle();
    expect(b.payloads('c1')).toEqual(['m0', 'm1', 'm2', 'late']);
    expect(a.store.hasSession('c1')).toBe(false);
  });

  test('a live connection on the old node is closed and its session handed over', async () => {
    const a = net.add('a');
    const b = net.add('b');
    await net.connectAll();
    await a.offlineSession('c1', 2);
    const old = new FakeClient('c1');
    await a.takeover.admit(old);
    await settle();
    const fresh = new FakeClient('c1');
    expect(await b.takeover.admit(fresh)).toBe(true);
    expect(old.closed).toBe(true);
    expect(fresh.closed).toBe(false);
    expect(b.payloads('c1')).toEqual(['m0', 'm1']);
  });

  test('a CleanSession 1 connect ends the session on the old node instead of moving it', async () => {
    const a = net.add('a');
    const b = net.add('b');
    await net.connectAll();
    await a.offlineSession('c1', 2);
    await settle();
    expect(await b.takeover.admit(new FakeClient('c1', true))).toBe(true);
    expect(a.store.hasSession('c1')).toBe(false);
    expect(b.store.hasSession('c1')).toBe(false);
    expect(b.counts).toEqual({ taken: 1 });
  });
});

describe('concurrent connects of one client id', () => {
  test.each([['a', 'b'], ['b', 'a']])('started in one turn (%s first): the later claim stays connected, the session ends up with it once', async (first, second) => {
    // a's clock is 1 ms behind b's: b's CONNECT is the later one whichever starts first.
    const base = Date.now() + 10_000;
    const a = net.add('a', () => base);
    const b = net.add('b', () => base + 1);
    const c = net.add('c');
    await net.connectAll();
    await c.offlineSession('dup', 20);
    await settle();
    const clients: Record<string, FakeClient> = { a: new FakeClient('dup'), b: new FakeClient('dup') };
    const admitted = await Promise.all([first, second].map((name) => net.node(name as string).takeover.admit(clients[name as string] as FakeClient)));
    // What aedes does next: a persistent CONNECT opens its session; the hook closes a superseded one.
    await Promise.all([first, second].map((name, i) => (admitted[i] ? net.node(name as string).store.openSession({ id: 'dup' }) : clients[name as string]?.close())));
    await until(() => clients.a?.closed === true);
    await until(() => b.payloads('dup').length === 20 && !a.store.hasSession('dup') && !c.store.hasSession('dup'));
    expect(clients.b?.closed).toBe(false);
    expect(b.payloads('dup')).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
    await until(() => a.takeover.registry.holders('dup').join() === 'b' && c.takeover.registry.holders('dup').join() === 'b');
  });

  test('a CONNECT that asks a node holding a later claim is refused', async () => {
    const base = Date.now() + 10_000;
    const a = net.add('a', () => base + 100);
    const b = net.add('b', () => base);
    await net.connectAll();
    const onA = new FakeClient('dup');
    await a.takeover.admit(onA);
    await settle();
    // b's clock lags: its CONNECT gets a claim after a's (it knows a's), so it wins; without that knowledge it loses.
    b.takeover.registry.dropRemote('a', 'dup');
    b.takeover.registry.setRemote('a', 'dup', 0);
    expect(await b.takeover.admit(new FakeClient('dup'))).toBe(false);
    expect(b.counts).toEqual({ superseded: 1 });
    expect(onA.closed).toBe(false);
  });

  test('two nodes that admitted the same id unaware of each other reconcile: the older connection is closed', async () => {
    const base = Date.now() + 10_000;
    const a = net.add('a', () => base);
    const b = net.add('b', () => base + 5);
    net.cut('b');
    const onA = new FakeClient('split');
    const onB = new FakeClient('split');
    await a.offlineSession('split', 4);
    await a.takeover.admit(onA);
    await settle();
    net.down.delete('b');
    await b.takeover.admit(onB);
    await b.store.openSession({ id: 'split' });
    expect(onA.closed).toBe(false);
    await net.restore('b');
    await until(() => onA.closed);
    expect(onB.closed).toBe(false);
    await until(() => b.payloads('split').length === 4);
    expect(a.store.hasSession('split')).toBe(false);
  });
});

describe('an unreachable holder', () => {
  test('the connect proceeds after the bounded wait; the session is merged when the holder returns', async () => {
    const a = net.add('a');
    const b = net.add('b');
    await net.connectAll();
    await a.offlineSession('c1', 5);
    await settle();
    net.cut('a');
    const started = Date.now();
    expect(await b.takeover.admit(new FakeClient('c1'))).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
    expect(b.counts).toEqual({ unreachable: 1 });
    expect(b.payloads('c1')).toEqual([]);
    await b.store.openSession({ id: 'c1' });
    await net.restore('a');
    await until(() => b.payloads('c1').length === 5);
    expect(a.store.hasSession('c1')).toBe(false);
  });

  test('a holder that comes back during the wait hands over', async () => {
    const a = net.add('a', Date.now, { ...FAST, unreachableWaitMs: 2000 });
    const b = net.add('b', Date.now, { ...FAST, unreachableWaitMs: 2000 });
    await net.connectAll();
    await a.offlineSession('c1', 3);
    await settle();
    net.cut('a');
    const admitted = b.takeover.admit(new FakeClient('c1'));
    setTimeout(() => void net.restore('a'), 100);
    expect(await admitted).toBe(true);
    expect(b.payloads('c1')).toEqual(['m0', 'm1', 'm2']);
  });
});

describe('handover interrupted', () => {
  test('no commit in time: the holder keeps the session', async () => {
    const a = net.add('a');
    const b = net.add('b');
    await net.connectAll();
    await a.offlineSession('c1', 2);
    await settle();
    b.store.importSession = async () => {
      net.cut('b');
      throw new Error('disk full');
    };
    await expect(b.takeover.admit(new FakeClient('c1'))).rejects.toThrow('disk full');
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(a.payloads('c1')).toEqual(['m0', 'm1']);
    expect(a.store.hasSession('c1')).toBe(true);
  });

  test('committed but never released: the holder takes the detached session back, queue intact', async () => {
    const a = net.add('a');
    const b = net.add('b');
    await net.connectAll();
    await a.offlineSession('c1', 3);
    await settle();
    const notify = b.rpc.notify.bind(b.rpc);
    b.rpc.notify = (nodeId, header, body) => {
      if (header.kind !== 'session.release') return notify(nodeId, header, body);
      net.cut('b');
      return Promise.resolve();
    };
    await b.takeover.admit(new FakeClient('c1'));
    expect(a.store.hasSession('c1')).toBe(false);
    await until(() => a.store.hasSession('c1'));
    expect(a.payloads('c1')).toEqual(['m0', 'm1', 'm2']);
    expect(await a.store.subscriptionsByTopic('a/x')).toEqual([expect.objectContaining({ clientId: 'c1' })]);
  });
});

describe('withSessionTakeover (aedes hooks)', () => {
  const accept = {
    preConnect: (_c: Client, _p: unknown, done: (e: Error | null, ok: boolean) => void) => done(null, true),
    authenticate: (_c: Client, _u: unknown, _p: unknown, done: (e: AuthenticateError | null, ok: boolean | null) => void) => done(null, true),
  };

  test('a superseded CONNECT is closed without a CONNACK; a failed import answers Server unavailable', async () => {
    const superseded = { admit: async () => false } as unknown as SessionTakeover;
    const failing = { admit: async () => { throw new Error('store closed'); } } as unknown as SessionTakeover;
    const client = new FakeClient('x');
    const outcome = await new Promise<[AuthenticateError | null, boolean | null]>((resolve) => {
      withSessionTakeover(accept, () => superseded).authenticate(client as unknown as Client, undefined, undefined, (e, ok) => resolve([e, ok]));
    });
    expect(outcome).toEqual([null, false]);
    expect(client.closed).toBe(true);
    const [error] = await new Promise<[AuthenticateError | null, boolean | null]>((resolve) => {
      withSessionTakeover(accept, () => failing).authenticate(new FakeClient('y') as unknown as Client, undefined, undefined, (e, ok) => resolve([e, ok]));
    });
    expect(error?.returnCode).toBe(3);
    expect(error?.message).toContain('store closed');
  });

  test('a refused authentication never reaches the takeover', async () => {
    const admit = jest.fn(async () => true);
    const refuse = { ...accept, authenticate: (_c: Client, _u: unknown, _p: unknown, done: (e: AuthenticateError | null, ok: boolean | null) => void) => done(null, false) };
    const ok = await new Promise((resolve) => {
      withSessionTakeover(refuse, () => ({ admit }) as unknown as SessionTakeover).authenticate(new FakeClient('z') as unknown as Client, undefined, undefined, (_e, s) => resolve(s));
    });
    expect(ok).toBe(false);
    expect(admit).not.toHaveBeenCalled();
  });
});
