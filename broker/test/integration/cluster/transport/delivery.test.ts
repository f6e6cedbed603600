import type { ConnectedPeer, Disconnection } from '../../../../src/cluster/transport/peer-link.js';
import { SendFailure } from '../../../../src/cluster/transport/errors.js';
import { TcpProxy } from '../../../harness/tcp-proxy.js';
import { Nodes, connectedLink, numbered, numberOf, sleep, waitFor, type TestNode } from './nodes.js';

const nodes = new Nodes();
const proxies: TcpProxy[] = [];
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  await nodes.closeAll();
});

async function startProxy(target: TestNode): Promise<TcpProxy> {
  const proxy = await TcpProxy.start(target.port);
  proxies.push(proxy);
  return proxy;
}

/** Records the numbers carried by messages from `from` on `node`. */
function collect(node: TestNode, from: string, channel = 2): number[] {
  const seen: number[] = [];
  node.transport.on('message', (peer, ch, payload) => {
    if (peer === from && ch === channel) seen.push(numberOf(payload));
  });
  return seen;
}

function connectsOf(node: TestNode, peer: string): number {
  return node.transport.peer(peer)?.stats().connects ?? 0;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

async function linked(a: TestNode, b: TestNode, via: string = b.address): Promise<void> {
  a.transport.connect(via);
  await waitFor('link up on both sides', () => connectedLink(a, b.transport.identity.nodeId) !== undefined
    && connectedLink(b, a.transport.identity.nodeId) !== undefined);
}

describe('cluster transport delivery', () => {
  test('100 000 small messages arrive in order, each acknowledged', async () => {
    const a = await nodes.start({ nodeId: 'node-a' });
    const b = await nodes.start({ nodeId: 'node-b' });
    await linked(a, b);
    const seen = collect(b, 'node-a');
    const sends: Promise<void>[] = [];
    for (let i = 0; i < 100_000; i++) sends.push(a.transport.send('node-b', 2, numbered(i)));
    await Promise.all(sends);
    expect(seen).toEqual(range(100_000));
    const stats = a.transport.peer('node-b')?.stats();
    expect(stats).toMatchObject({ messagesSent: 100_000, resends: 0, unackedMessages: 0, queuedMessages: 0 });
    expect(stats?.framesSent).toBeGreaterThan(100_000);
    // Batching: many frames per socket write, and far fewer ACKs than messages.
    expect(stats?.socketWrites).toBeLessThan(100_000 / 10);
    expect(stats?.acksReceived).toBeLessThan(100_000 / 10);
    expect(b.transport.peer('node-a')?.stats().messagesReceived).toBe(100_000);
  });

  test('a slow receiver makes send wait: in-flight messages and socket buffer stay bounded', async () => {
    const windowMessages = 32;
    const windowBytes = 32 * 1024;
    const a = await nodes.start({ nodeId: 'node-a', link: { windowMessages, windowBytes, socketHighWaterBytes: 16 * 1024, maxQueuedBytes: 3 * 1024 * 1024 } });
    const b = await nodes.start({ nodeId: 'node-b' });
    await linked(a, b);
    // The receiver handles one message per timer tick and acknowledges only what it has handled.
    const handled: number[] = [];
    let chain: Promise<void> = Promise.resolve();
    b.transport.on('message', (_peer, _ch, payload, delivery) => {
      chain = chain.then(() => new Promise<void>((resolve) => setTimeout(() => { handled.push(numberOf(payload)); resolve(); }, 1)));
      delivery.defer(chain);
    });
    const link = a.transport.peer('node-b');
    if (!link) throw new Error('no link');
    let maxUnacked = 0;
    let maxUnackedBytes = 0;
    let maxSocket = 0;
    let resolvedEarly = 0;
    const sampler = setInterval(() => {
      const s = link.stats();
      maxUnacked = Math.max(maxUnacked, s.unackedMessages);
      maxUnackedBytes = Math.max(maxUnackedBytes, s.unackedBytes);
      maxSocket = Math.max(maxSocket, s.socketBufferedBytes);
    }, 2);

    const count = 2000;
    const settled: boolean[] = new Array(count).fill(false);
    const sends = range(count).map((i) => link.send(2, numbered(i, 1024)).then(() => {
      settled[i] = true;
      if (!handled.includes(i)) resolvedEarly++;
    }));
    await sleep(100);
    // Right after the burst almost everything is still waiting behind the window.
    expect(link.stats().queuedMessages).toBeGreaterThan(count / 2);
    expect(settled.filter(Boolean).length).toBeLessThan(count / 2);
    // Beyond the queue limit, send refuses instead of buffering without bound.
    await expect(link.send(2, Buffer.alloc(3 * 1024 * 1024))).rejects.toMatchObject({ code: 'send-queue-full' });

    await Promise.all(sends);
    clearInterval(sampler);
    expect(handled).toEqual(range(count));
    expect(resolvedEarly).toBe(0);
    expect(maxUnacked).toBeLessThanOrEqual(windowMessages);
    expect(maxUnackedBytes).toBeLessThanOrEqual(windowBytes);
    expect(maxSocket).toBeLessThanOrEqual(16 * 1024 + windowBytes);
  });

  test('a producer that waits for writability never queues', async () => {
    const a = await nodes.start({ nodeId: 'node-a', link: { windowMessages: 16 } });
    const b = await nodes.start({ nodeId: 'node-b' });
    await linked(a, b);
    const seen = collect(b, 'node-a');
    const link = a.transport.peer('node-b');
    if (!link) throw new Error('no link');
    const sends: Promise<void>[] = [];
    let maxQueued = 0;
    for (let i = 0; i < 5000; i++) {
      await link.waitWritable();
      sends.push(link.send(2, numbered(i)));
      maxQueued = Math.max(maxQueued, link.stats().queuedMessages);
    }
    await Promise.all(sends);
    expect(maxQueued).toBe(0);
    expect(seen).toEqual(range(5000));
  });

  test('connections cut mid-stream: reconnect with back-off, every message delivered exactly once, in order, both ways', async () => {
    const a = await nodes.start({ nodeId: 'node-a', backoff: { initialDelayMs: 20, maxDelayMs: 200 } });
    const b = await nodes.start({ nodeId: 'node-b' });
    const proxy = await startProxy(b);
    await linked(a, b, proxy.address);
    const atB = collect(b, 'node-a');
    const atA = collect(a, 'node-b');
    const batches = 10;
    const perBatch = 3000;
    const sends: Promise<void>[] = [];
    const unackedAtCut: number[] = [];
    const sendRange = (from: number, to: number): void => {
      for (let i = from; i < to; i++) {
        sends.push(a.transport.send('node-b', 2, numbered(i)));
        sends.push(b.transport.send('node-a', 2, numbered(i)));
      }
    };
    for (let batch = 0; batch < batches; batch++) {
      const first = batch * perBatch;
      if (batch >= 5) {
        sendRange(first, first + perBatch);
        continue;
      }
      // Half the batch flows; the other half is written into a stalled connection and lost with it.
      sendRange(first, first + perBatch / 2);
      await sleep(5);
      proxy.blackhole();
      sendRange(first + perBatch / 2, first + perBatch);
      await sleep(20);
      unackedAtCut.push(a.transport.peer('node-b')?.stats().unackedMessages ?? 0);
      const connectsBefore = [connectsOf(a, 'node-b'), connectsOf(b, 'node-a')];
      proxy.cut();
      proxy.restore();
      if (batch === 2) {
        // A partition that outlasts a few redial attempts: the dialer must back off and keep trying.
        proxy.refuse();
        await sleep(300);
        proxy.restore();
      }
      await waitFor('reconnected after the cut', () => connectsOf(a, 'node-b') > (connectsBefore[0] as number)
        && connectsOf(b, 'node-a') > (connectsBefore[1] as number) && connectedLink(a, 'node-b') !== undefined && connectedLink(b, 'node-a') !== undefined);
    }
    await Promise.all(sends);
    const count = batches * perBatch;
    expect(atB).toEqual(range(count));
    expect(atA).toEqual(range(count));
    expect(unackedAtCut.every((n) => n > 0)).toBe(true);
    const stats = a.transport.peer('node-b')?.stats();
    expect(stats?.connects).toBe(6);
    expect(stats?.sessionResets).toBe(0);
    expect(a.transport.stats().dialFailures + a.transport.stats().handshakeFailures['connection-lost']).toBeGreaterThan(0);
    expect(stats?.resends).toBeGreaterThan(0);
    expect(b.transport.peer('node-a')?.stats().resends).toBeGreaterThan(0);
  });

  test('a silent peer (blackholed connection) is detected by heartbeat on both sides, and the link resumes after healing', async () => {
    const link = { heartbeatIntervalMs: 100, heartbeatTimeoutMs: 500 };
    const a = await nodes.start({ nodeId: 'node-a', link, backoff: { initialDelayMs: 50, maxDelayMs: 100 } });
    const b = await nodes.start({ nodeId: 'node-b', link });
    const proxy = await startProxy(b);
    await linked(a, b, proxy.address);
    const downAtA: Disconnection[] = [];
    const downAtB: Disconnection[] = [];
    a.transport.on('peerDisconnected', (_id, r) => downAtA.push(r));
    b.transport.on('peerDisconnected', (_id, r) => downAtB.push(r));
    const reconnected: ConnectedPeer[] = [];
    a.transport.on('peerConnected', (p) => reconnected.push(p));
    const atB = collect(b, 'node-a');

    proxy.blackhole();
    const cutAt = Date.now();
    const duringPartition = a.transport.send('node-b', 2, numbered(1));
    await waitFor('both sides notice', () => downAtA.length > 0 && downAtB.length > 0, 3000);
    const detectedAfter = Date.now() - cutAt;
    expect(downAtA[0]?.code).toBe('heartbeat-timeout');
    expect(downAtB[0]?.code).toBe('heartbeat-timeout');
    expect(detectedAfter).toBeGreaterThanOrEqual(400);
    expect(detectedAfter).toBeLessThan(2500);

    proxy.restore();
    await duringPartition;
    expect(atB).toEqual([1]);
    expect(reconnected[0]?.session).toBe('resumed');
  });

  test('simultaneous dial from both sides converges on one link, the one dialed by the smaller node id', async () => {
    for (let round = 0; round < 5; round++) {
      const a = await nodes.start({ nodeId: `a-${round}` });
      const b = await nodes.start({ nodeId: `b-${round}` });
      a.transport.connect(b.address);
      b.transport.connect(a.address);
      await waitFor('link up on both sides', () => connectedLink(a, `b-${round}`) !== undefined && connectedLink(b, `a-${round}`) !== undefined);
      await sleep(300);
      const atA = a.transport.peer(`b-${round}`);
      const atB = b.transport.peer(`a-${round}`);
      expect(a.transport.peers()).toHaveLength(1);
      expect(b.transport.peers()).toHaveLength(1);
      expect(atA?.connected && atB?.connected).toBe(true);
      expect(atA?.peer?.direction).toBe('outbound');
      expect(atB?.peer?.direction).toBe('inbound');
      // Stable: no more connection churn once converged.
      const connects = atA?.stats().connects;
      await sleep(300);
      expect(atA?.stats().connects).toBe(connects);
      const got = new Promise<number>((resolve) => b.transport.once('message', (_f, _c, p) => resolve(numberOf(p))));
      await a.transport.send(`b-${round}`, 2, numbered(round));
      expect(await got).toBe(round);
      await nodes.closeAll();
    }
  });

  test('a peer that restarts with a new incarnation fails the pending sends instead of resending them', async () => {
    const a = await nodes.start({ nodeId: 'node-a' });
    const b1 = await nodes.start({ nodeId: 'node-b', incarnation: 1 });
    const proxy = await startProxy(b1);
    await linked(a, b1, proxy.address);
    // b1 receives but never finishes handling, so nothing gets acknowledged.
    b1.transport.on('message', (_p, _c, _payload, delivery) => delivery.defer(new Promise(() => undefined)));
    const pending = range(10).map((i) => a.transport.send('node-b', 2, numbered(i)).then(() => 'acked', (err: unknown) => err));
    await waitFor('b1 got them', () => b1.transport.peer('node-a')?.stats().messagesReceived === 10);

    const b2 = await nodes.start({ nodeId: 'node-b', incarnation: 2 });
    const atB2 = collect(b2, 'node-a');
    const sessions: ConnectedPeer[] = [];
    a.transport.on('peerConnected', (p) => sessions.push(p));
    proxy.setTarget(b2.port);
    await b1.transport.close();

    const outcomes = await Promise.all(pending);
    for (const outcome of outcomes) {
      expect(outcome).toBeInstanceOf(SendFailure);
      expect(outcome).toMatchObject({ code: 'peer-restarted', peer: 'node-b' });
    }
    expect((outcomes[0] as Error).message).toContain('incarnation 1 → 2');
    await waitFor('reconnected to b2', () => sessions.length > 0);
    expect(sessions[0]).toMatchObject({ incarnation: 2, session: 'reset' });
    await a.transport.send('node-b', 2, numbered(99));
    expect(atB2).toEqual([99]);
  });

  test('a peer that dropped the link (same incarnation) makes the pending sends fail with peer-session-lost', async () => {
    const a = await nodes.start({ nodeId: 'node-a' });
    const b = await nodes.start({ nodeId: 'node-b' });
    await linked(a, b);
    b.transport.on('message', (_p, _c, _payload, delivery) => delivery.defer(new Promise(() => undefined)));
    const pending = range(3).map((i) => a.transport.send('node-b', 2, numbered(i)).then(() => 'acked', (err: unknown) => err));
    await waitFor('b got them', () => b.transport.peer('node-a')?.stats().messagesReceived === 3);
    b.transport.removeAllListeners('message');
    b.transport.removePeer('node-a', 'test');
    const outcomes = await Promise.all(pending);
    expect(outcomes.map((o) => (o as SendFailure).code)).toEqual(['peer-session-lost', 'peer-session-lost', 'peer-session-lost']);
    await waitFor('relinked', () => connectedLink(b, 'node-a') !== undefined && connectedLink(a, 'node-b') !== undefined);
    const atB = collect(b, 'node-a');
    await a.transport.send('node-b', 2, numbered(5));
    expect(atB).toEqual([5]);
  });

  test('sends to a node that has not connected yet: refused without a link, queued with ensurePeer', async () => {
    const a = await nodes.start({ nodeId: 'node-a' });
    const b = await nodes.start({ nodeId: 'node-b' });
    await expect(a.transport.send('node-b', 2, numbered(0))).rejects.toMatchObject({ code: 'unknown-peer' });
    const early = a.transport.ensurePeer('node-b');
    const sends = range(100).map((i) => early.send(2, numbered(i)));
    const atB = collect(b, 'node-a');
    await linked(a, b);
    await Promise.all(sends);
    expect(atB).toEqual(range(100));
    expect(a.transport.peer('node-b')).toBe(early);
  });

  test('removing a peer or closing the transport fails its pending sends with link-closed', async () => {
    const a = await nodes.start({ nodeId: 'node-a' });
    const b = await nodes.start({ nodeId: 'node-b' });
    await linked(a, b);
    const never = new Promise(() => undefined);
    a.transport.on('message', (_p, _c, _payload, delivery) => delivery.defer(never));
    b.transport.on('message', (_p, _c, _payload, delivery) => delivery.defer(never));
    const removed = a.transport.peer('node-b');
    const pending = a.transport.send('node-b', 2, numbered(1));
    const pendingAtShutdown = b.transport.send('node-a', 2, numbered(1));
    await waitFor('both got one', () => b.transport.peer('node-a')?.stats().messagesReceived === 1
      && a.transport.peer('node-b')?.stats().messagesReceived === 1);

    a.transport.removePeer('node-b', 'declared dead by membership');
    await expect(pending).rejects.toMatchObject({ code: 'link-closed', message: expect.stringContaining('declared dead by membership') });
    await expect(removed?.send(2, numbered(2))).rejects.toMatchObject({ code: 'link-closed' });
    await expect(a.transport.send('node-b', 2, numbered(2))).rejects.toMatchObject({ code: 'unknown-peer' });

    const shutdownOutcome = expect(pendingAtShutdown).rejects.toMatchObject({ code: 'link-closed', message: expect.stringContaining('shutting down') });
    await b.transport.close();
    await shutdownOutcome;
  });
});
