import { decodeFrame, encodeFrame, PROTOCOL_VERSION, type DecodedFrame, type Frame, type NodeIdentity } from '../../../../src/cluster/transport/codec.js';
import { AcceptorHandshake, DialerHandshake, refusalMessage, type HandshakeResult } from '../../../../src/cluster/transport/handshake.js';

const secret = Buffer.from('a-cluster-secret-of-enough-length');
const dialerId: NodeIdentity = { clusterName: 'eu', nodeId: 'replicant-1', role: 'replicant', incarnation: 3, address: '10.0.0.2:4370' };
const acceptorId: NodeIdentity = { clusterName: 'eu', nodeId: 'core-1', role: 'core', incarnation: 9, address: '10.0.0.1:4370' };

/** Frames go through the real codec, as on a socket. */
function wire(frame: Frame): DecodedFrame {
  return decodeFrame(encodeFrame(frame));
}

interface Run {
  dialer?: HandshakeResult;
  acceptor?: HandshakeResult;
  exchanged: Frame[];
}

/** Plays both machines against each other until neither has anything to send. */
function run(dialer: DialerHandshake, acceptor: AcceptorHandshake): Run {
  const result: Run = { exchanged: [] };
  let toAcceptor: Frame[] = [dialer.start()];
  let toDialer: Frame[] = [];
  while (toAcceptor.length > 0 || toDialer.length > 0) {
    const nextToDialer: Frame[] = [];
    for (const frame of toAcceptor) {
      result.exchanged.push(frame);
      const step = acceptor.onFrame(wire(frame));
      nextToDialer.push(...step.send);
      result.acceptor ??= step.result;
    }
    const nextToAcceptor: Frame[] = [];
    for (const frame of toDialer) {
      result.exchanged.push(frame);
      const step = dialer.onFrame(wire(frame));
      nextToAcceptor.push(...step.send);
      result.dialer ??= step.result;
    }
    toAcceptor = nextToAcceptor;
    toDialer = nextToDialer;
  }
  return result;
}

describe('cluster handshake', () => {
  test('two nodes with the same secret and cluster name authenticate each other', () => {
    const r = run(new DialerHandshake({ identity: dialerId, secret }), new AcceptorHandshake({ identity: acceptorId, secret }));
    expect(r.dialer).toEqual({ ok: true, peer: acceptorId });
    expect(r.acceptor).toEqual({ ok: true, peer: dialerId });
    expect(r.exchanged.map((f) => f.type)).toEqual(['hello', 'challenge', 'auth', 'welcome']);
  });

  test('the secret never appears in any frame', () => {
    const r = run(new DialerHandshake({ identity: dialerId, secret }), new AcceptorHandshake({ identity: acceptorId, secret }));
    for (const frame of r.exchanged) expect(encodeFrame(frame).includes(secret)).toBe(false);
  });

  test('wrong secret: the acceptor refuses the AUTH and the dialer learns why', () => {
    const r = run(new DialerHandshake({ identity: dialerId, secret: Buffer.from('another-secret-entirely-0000') }),
      new AcceptorHandshake({ identity: acceptorId, secret }));
    expect(r.acceptor).toMatchObject({ ok: false, refusal: { reason: 'wrong-secret', origin: 'local' } });
    expect(r.dialer).toMatchObject({ ok: false, refusal: { reason: 'wrong-secret', origin: 'peer' } });
    expect(r.exchanged.map((f) => f.type)).toEqual(['hello', 'challenge', 'auth', 'reject']);
    expect(refusalMessage('wrong-secret')).toBe('cluster peer refused: wrong cluster secret');
  });

  test('a dialer without the secret never receives a proof computed with it', () => {
    const r = run(new DialerHandshake({ identity: dialerId, secret: Buffer.from('guessing-the-secret-000000') }),
      new AcceptorHandshake({ identity: acceptorId, secret }));
    expect(r.exchanged.some((f) => f.type === 'welcome')).toBe(false);
  });

  test('an acceptor that cannot prove the secret is refused by the dialer', () => {
    const dialer = new DialerHandshake({ identity: dialerId, secret });
    dialer.start();
    const challenge: Frame = { type: 'challenge', version: PROTOCOL_VERSION, identity: acceptorId, nonce: Buffer.alloc(32, 5) };
    expect(dialer.onFrame(wire(challenge)).send.map((f) => f.type)).toEqual(['auth']);
    const step = dialer.onFrame(wire({ type: 'welcome', proof: Buffer.alloc(32, 0xaa) }));
    expect(step.result).toMatchObject({ ok: false, refusal: { reason: 'wrong-secret', origin: 'local' } });
    expect(step.send).toEqual([expect.objectContaining({ type: 'reject', reason: 'wrong-secret' })]);
  });

  test('a recorded AUTH is useless against a fresh challenge (replay)', () => {
    const first = run(new DialerHandshake({ identity: dialerId, secret }), new AcceptorHandshake({ identity: acceptorId, secret }));
    const recordedHello = first.exchanged[0] as Frame;
    const recordedAuth = first.exchanged[2] as Frame;
    const acceptor = new AcceptorHandshake({ identity: acceptorId, secret });
    expect(acceptor.onFrame(wire(recordedHello)).send[0]?.type).toBe('challenge');
    expect(acceptor.onFrame(wire(recordedAuth)).result).toMatchObject({ ok: false, refusal: { reason: 'wrong-secret' } });
  });

  test('wrong cluster name is refused at HELLO, before any proof', () => {
    const r = run(new DialerHandshake({ identity: { ...dialerId, clusterName: 'us' }, secret }), new AcceptorHandshake({ identity: acceptorId, secret }));
    expect(r.acceptor).toMatchObject({ ok: false, refusal: { reason: 'wrong-cluster', origin: 'local' } });
    expect(r.dialer).toMatchObject({ ok: false, refusal: { reason: 'wrong-cluster', origin: 'peer' } });
    expect(r.exchanged.map((f) => f.type)).toEqual(['hello', 'reject']);
  });

  test('another protocol version is refused with version-mismatch', () => {
    const acceptor = new AcceptorHandshake({ identity: acceptorId, secret });
    const hello = encodeFrame({ type: 'hello', version: PROTOCOL_VERSION, identity: dialerId, nonce: Buffer.alloc(32) });
    hello.writeUInt16BE(PROTOCOL_VERSION + 1, 9);
    const step = acceptor.onFrame(decodeFrame(hello));
    expect(step.result).toMatchObject({ ok: false, refusal: { reason: 'version-mismatch' } });
    expect(step.send[0]).toMatchObject({ type: 'reject', reason: 'version-mismatch' });
  });

  test('a node that dialed itself is refused', () => {
    const r = run(new DialerHandshake({ identity: acceptorId, secret }), new AcceptorHandshake({ identity: acceptorId, secret }));
    expect(r.acceptor).toMatchObject({ ok: false, refusal: { reason: 'same-node-id' } });
  });

  test('frames out of order are a protocol error', () => {
    const acceptor = new AcceptorHandshake({ identity: acceptorId, secret });
    const step = acceptor.onFrame(wire({ type: 'auth', proof: Buffer.alloc(32) }));
    expect(step.result).toMatchObject({ ok: false, refusal: { reason: 'protocol-error' } });
    const dialer = new DialerHandshake({ identity: dialerId, secret });
    dialer.start();
    expect(dialer.onFrame(wire({ type: 'welcome', proof: Buffer.alloc(32) })).result).toMatchObject({ ok: false, refusal: { reason: 'protocol-error' } });
  });

  test('a tampered CHALLENGE identity breaks both proofs (the transcript binds identities)', () => {
    const dialer = new DialerHandshake({ identity: dialerId, secret });
    const acceptor = new AcceptorHandshake({ identity: acceptorId, secret });
    const hello = wire(dialer.start());
    const challenge = acceptor.onFrame(hello).send[0] as Frame & { type: 'challenge' };
    const forged: Frame = { ...challenge, identity: { ...challenge.identity, incarnation: challenge.identity.incarnation + 1 } };
    const auth = dialer.onFrame(wire(forged)).send[0] as Frame;
    expect(acceptor.onFrame(wire(auth)).result).toMatchObject({ ok: false, refusal: { reason: 'wrong-secret' } });
  });
});
