import net from 'node:net';
import { readFileSync } from 'node:fs';
import { encodeFrame, FrameDecoder, PROTOCOL_VERSION, type DecodedFrame } from '../../../../src/cluster/transport/codec.js';
import { DialFailure } from '../../../../src/cluster/transport/server.js';
import type { ConnectedPeer } from '../../../../src/cluster/transport/peer-link.js';
import { createTestPki } from '../../../harness/certs.js';
import { Nodes, connectedLink, sleep, waitFor, type LogLine, type TestNode } from './nodes.js';

const nodes = new Nodes();
afterEach(() => nodes.closeAll());

function refusals(node: TestNode, message: string): LogLine[] {
  return node.logs.filter((l) => l.msg === message);
}

async function expectDialRefused(dialer: TestNode, acceptor: TestNode, reason: string): Promise<void> {
  const failure = await dialer.transport.dial(acceptor.address).then(() => undefined, (err: unknown) => err);
  expect(failure).toBeInstanceOf(DialFailure);
  expect(failure).toMatchObject({ reason });
}

/** Speaks the handshake by hand: writes raw frames, returns the frames the node answers with until it closes. */
async function rawExchange(port: number, frames: Buffer[]): Promise<DecodedFrame[]> {
  const socket = net.connect(port, '127.0.0.1');
  const decoder = new FrameDecoder();
  const received: DecodedFrame[] = [];
  socket.on('data', (chunk: Buffer) => received.push(...decoder.push(chunk)));
  await new Promise((resolve) => socket.once('connect', resolve));
  for (const frame of frames) socket.write(frame);
  await new Promise((resolve) => socket.once('close', resolve));
  return received;
}

describe('cluster transport handshake over TCP', () => {
  test('two nodes authenticate, see each other\'s identity, and exchange messages', async () => {
    const a = await nodes.start({ nodeId: 'node-a', role: 'replicant', incarnation: 7 });
    const b = await nodes.start({ nodeId: 'node-b', role: 'core', incarnation: 3 });
    const seenByA: ConnectedPeer[] = [];
    const seenByB: ConnectedPeer[] = [];
    a.transport.on('peerConnected', (p) => seenByA.push(p));
    b.transport.on('peerConnected', (p) => seenByB.push(p));
    const received: string[] = [];
    b.transport.on('message', (from, channel, payload) => received.push(`${from}/${channel}/${payload.toString()}`));

    a.transport.connect(b.address);
    await waitFor('both sides connected', () => seenByA.length === 1 && seenByB.length === 1);
    expect(seenByA[0]).toMatchObject({ nodeId: 'node-b', role: 'core', incarnation: 3, address: b.address, direction: 'outbound', session: 'new' });
    expect(seenByB[0]).toMatchObject({ nodeId: 'node-a', role: 'replicant', incarnation: 7, address: a.address, direction: 'inbound', session: 'new' });

    await a.transport.send('node-b', 1, Buffer.from('hello b'));
    expect(received).toEqual(['node-a/1/hello b']);
    const echoed = new Promise<string>((resolve) => a.transport.once('message', (_f, _c, p) => resolve(p.toString())));
    await b.transport.send('node-a', 3, Buffer.from('hello a'));
    expect(await echoed).toBe('hello a');
  });

  test('wrong secret: refused on both sides with the reason in the log, no link on either', async () => {
    const a = await nodes.start({ nodeId: 'node-a', secret: Buffer.from('not-the-cluster-secret-at-all') });
    const b = await nodes.start({ nodeId: 'node-b' });
    await expectDialRefused(a, b, 'wrong-secret');
    await waitFor('acceptor log', () => refusals(b, 'cluster peer refused: wrong cluster secret').length === 1);
    expect(refusals(b, 'cluster peer refused: wrong cluster secret')[0]).toMatchObject({ side: 'acceptor', refusedBy: 'this node', level: 50 });
    expect(refusals(a, 'cluster peer refused: wrong cluster secret')[0]).toMatchObject({ side: 'dialer', refusedBy: 'peer', level: 50 });
    expect(a.transport.stats().handshakeFailures['wrong-secret']).toBe(1);
    expect(b.transport.stats().handshakeFailures['wrong-secret']).toBe(1);
    expect(a.transport.peers()).toHaveLength(0);
    expect(b.transport.peers()).toHaveLength(0);
  });

  test('a persistent dialer with the wrong secret keeps retrying, spaced by back-off', async () => {
    const a = await nodes.start({ nodeId: 'node-a', secret: Buffer.from('not-the-cluster-secret-at-all'), backoff: { initialDelayMs: 100, maxDelayMs: 400 } });
    const b = await nodes.start({ nodeId: 'node-b' });
    a.transport.connect(b.address);
    await sleep(1500);
    const attempts = b.transport.stats().handshakeFailures['wrong-secret'];
    // Without back-off this would be hundreds; with delays 100, 200, 400, 400... it is a handful.
    expect(attempts).toBeGreaterThanOrEqual(3);
    expect(attempts).toBeLessThanOrEqual(8);
    expect(b.transport.peers()).toHaveLength(0);
  });

  test('wrong cluster name: refused on both sides with the reason in the log', async () => {
    const a = await nodes.start({ nodeId: 'node-a', clusterName: 'us-east' });
    const b = await nodes.start({ nodeId: 'node-b', clusterName: 'eu-west' });
    await expectDialRefused(a, b, 'wrong-cluster');
    await waitFor('acceptor log', () => refusals(b, 'cluster peer refused: wrong cluster name').length === 1);
    expect(refusals(a, 'cluster peer refused: wrong cluster name')).toHaveLength(1);
    expect(String(refusals(b, 'cluster peer refused: wrong cluster name')[0]?.detail)).toContain("'us-east'");
  });

  test('a HELLO of another protocol version is answered with REJECT version-mismatch', async () => {
    const b = await nodes.start({ nodeId: 'node-b' });
    const hello = encodeFrame({
      type: 'hello', version: PROTOCOL_VERSION, nonce: Buffer.alloc(32),
      identity: { clusterName: 'test-cluster', nodeId: 'future-node', role: 'core', incarnation: 1, address: '127.0.0.1:1' },
    });
    hello.writeUInt16BE(PROTOCOL_VERSION + 1, 9);
    const answer = await rawExchange(b.port, [hello]);
    expect(answer).toEqual([expect.objectContaining({ type: 'reject', reason: 'version-mismatch' })]);
    await waitFor('acceptor log', () => refusals(b, 'cluster peer refused: protocol version mismatch').length === 1);
  });

  test('something that is not a cluster peer is disconnected and counted as a protocol error', async () => {
    const b = await nodes.start({ nodeId: 'node-b' });
    const answer = await rawExchange(b.port, [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]);
    expect(answer).toEqual([]);
    await waitFor('failure counted', () => b.transport.stats().handshakeFailures['protocol-error'] === 1);
  });

  test('a node that dials its own address is refused and does not link to itself', async () => {
    const a = await nodes.start({ nodeId: 'node-a' });
    await expectDialRefused(a, a, 'same-node-id');
    expect(a.transport.peers()).toHaveLength(0);
  });

  test('a silent connection is dropped at the handshake deadline', async () => {
    const b = await nodes.start({ nodeId: 'node-b', handshakeTimeoutMs: 300 });
    const started = Date.now();
    await rawExchange(b.port, []);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(b.transport.stats().handshakeFailures.timeout).toBe(1);
  });

  describe('with TLS', () => {
    const pki = createTestPki();
    const server = { cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) };
    const client = { ca: readFileSync(pki.caCert), servername: 'localhost' };

    test('nodes authenticate over TLS and exchange messages', async () => {
      const a = await nodes.start({ nodeId: 'node-a', tls: { server, client } });
      const b = await nodes.start({ nodeId: 'node-b', tls: { server, client } });
      a.transport.connect(b.address);
      await waitFor('link up', () => connectedLink(a, 'node-b') !== undefined);
      const got = new Promise<string>((resolve) => b.transport.once('message', (_f, _c, p) => resolve(p.toString())));
      await a.transport.send('node-b', 2, Buffer.from('over tls'));
      expect(await got).toBe('over tls');
    });

    test('a dialer that does not trust the listener certificate never links', async () => {
      const a = await nodes.start({ nodeId: 'node-a', tls: { server, client: { servername: 'localhost' } } });
      const b = await nodes.start({ nodeId: 'node-b', tls: { server, client } });
      await expect(a.transport.dial(b.address)).rejects.toMatchObject({ reason: 'connect-failed' });
      await waitFor('listener counted the TLS failure', () => b.transport.stats().handshakeFailures['tls-error'] === 1);
      expect(b.transport.peers()).toHaveLength(0);
    });
  });
});
