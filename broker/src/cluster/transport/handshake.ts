/**
 * Mutual authentication of two cluster nodes: pure state machines, fed decoded frames, answering with frames to
 * send and, at the end, the authenticated peer or the reason it was refused.
 *
 *   dialer                                   acceptor
 *   HELLO(version, identity, nonceD)   →     checks magic, version, cluster name, node id
 *                                      ←     CHALLENGE(version, identity, nonceA)   | REJECT
 *   checks the same                          
 *   AUTH(HMAC(secret, "dialer"   ‖ T)) →     verifies                                
 *                                      ←     WELCOME(HMAC(secret, "acceptor" ‖ T))  | REJECT wrong-secret
 *   verifies (REJECT wrong-secret if not)
 *
 * T is the canonical encoding of HELLO followed by CHALLENGE, so each proof binds both nonces and both identities.
 * The acceptor proves knowledge of the secret only to a dialer that has already proved it: a stranger never gets
 * an HMAC computed with the secret. The secret itself is never sent.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  encodeFrame, NONCE_BYTES, PROTOCOL_VERSION,
  type ChallengeFrame, type DecodedFrame, type Frame, type HelloFrame, type NodeIdentity, type RefusalReason, type RejectFrame,
} from './codec.js';

const DIALER_LABEL = Buffer.from('meridian-cluster-auth/v1 dialer\0');
const ACCEPTOR_LABEL = Buffer.from('meridian-cluster-auth/v1 acceptor\0');

export interface HandshakeConfig {
  /** This node; `identity.clusterName` is also the cluster name the peer must have. */
  identity: NodeIdentity;
  secret: Buffer;
  /** Source of nonces; only tests replace it. */
  nonce?: () => Buffer;
}

/** `local`: this side refused the peer; `peer`: the peer refused this side (we got its REJECT). */
export type RefusalOrigin = 'local' | 'peer';

export interface Refusal {
  reason: RefusalReason;
  detail: string;
  origin: RefusalOrigin;
}

export type HandshakeResult = { ok: true; peer: NodeIdentity } | { ok: false; refusal: Refusal };

export interface HandshakeStep {
  /** Frames to write, in order (a REJECT is always the last one, the connection closes after it). */
  send: Frame[];
  /** Set once the handshake is over, one way or the other. */
  result?: HandshakeResult;
}

const REFUSAL_TEXT: Record<RefusalReason, string> = {
  'wrong-secret': 'wrong cluster secret',
  'wrong-cluster': 'wrong cluster name',
  'version-mismatch': 'protocol version mismatch',
  'same-node-id': 'peer has this node\'s own node id',
  'protocol-error': 'protocol error',
  unknown: 'unknown reason',
};

/** The log line both sides write for a refused handshake, e.g. `cluster peer refused: wrong cluster secret`. */
export function refusalMessage(reason: RefusalReason): string {
  return `cluster peer refused: ${REFUSAL_TEXT[reason]}`;
}

function proof(secret: Buffer, label: Buffer, hello: HelloFrame, challenge: ChallengeFrame): Buffer {
  return createHmac('sha256', secret).update(label).update(encodeFrame(hello)).update(encodeFrame(challenge)).digest();
}

function proofMatches(expected: Buffer, received: Buffer): boolean {
  return expected.length === received.length && timingSafeEqual(expected, received);
}

function refuse(reason: RefusalReason, detail: string): HandshakeStep {
  const reject: RejectFrame = { type: 'reject', reason, detail };
  return { send: [reject], result: { ok: false, refusal: { reason, detail, origin: 'local' } } };
}

function refusedByPeer(frame: RejectFrame): HandshakeStep {
  return { send: [], result: { ok: false, refusal: { reason: frame.reason, detail: frame.detail, origin: 'peer' } } };
}

function unexpected(frame: DecodedFrame, waitingFor: string): HandshakeStep {
  return refuse('protocol-error', `expected ${waitingFor}, got ${frame.type.toUpperCase()}`);
}

/** Version, cluster name and node id checks, the same on both sides. */
function checkPeerIdentity(local: NodeIdentity, version: number, peer: NodeIdentity): HandshakeStep | undefined {
  if (version !== PROTOCOL_VERSION) return refuse('version-mismatch', `this node speaks version ${PROTOCOL_VERSION}, peer ${version}`);
  if (peer.clusterName !== local.clusterName) {
    return refuse('wrong-cluster', `this node is in cluster '${local.clusterName}', peer '${peer.nodeId}' in '${peer.clusterName}'`);
  }
  if (peer.nodeId === local.nodeId) {
    return refuse('same-node-id', `peer at '${peer.address}' also calls itself '${peer.nodeId}' (a node dialed itself, or two nodes share a name)`);
  }
  return undefined;
}

abstract class Handshake {
  protected finished = false;
  protected readonly newNonce: () => Buffer;

  constructor(protected readonly config: HandshakeConfig) {
    this.newNonce = config.nonce ?? (() => randomBytes(NONCE_BYTES));
  }

  get done(): boolean {
    return this.finished;
  }

  onFrame(frame: DecodedFrame): HandshakeStep {
    if (this.finished) return { send: [] };
    const step = frame.type === 'reject' ? refusedByPeer(frame) : this.step(frame);
    if (step.result) this.finished = true;
    return step;
  }

  protected abstract step(frame: DecodedFrame): HandshakeStep;
}

export class DialerHandshake extends Handshake {
  private hello: HelloFrame | undefined;
  private challenge: ChallengeFrame | undefined;

  /** The opening HELLO. */
  start(): HelloFrame {
    this.hello = { type: 'hello', version: PROTOCOL_VERSION, identity: this.config.identity, nonce: this.newNonce() };
    return this.hello;
  }

  protected step(frame: DecodedFrame): HandshakeStep {
    if (!this.hello) return refuse('protocol-error', `got ${frame.type.toUpperCase()} before HELLO was sent`);
    if (!this.challenge) {
      if (frame.type !== 'challenge') return unexpected(frame, 'CHALLENGE');
      const mismatch = checkPeerIdentity(this.config.identity, frame.version, frame.identity);
      if (mismatch) return mismatch;
      this.challenge = frame;
      return { send: [{ type: 'auth', proof: proof(this.config.secret, DIALER_LABEL, this.hello, frame) }] };
    }
    if (frame.type !== 'welcome') return unexpected(frame, 'WELCOME');
    const expected = proof(this.config.secret, ACCEPTOR_LABEL, this.hello, this.challenge);
    if (!proofMatches(expected, frame.proof)) return refuse('wrong-secret', 'the acceptor\'s proof does not match this node\'s cluster secret');
    return { send: [], result: { ok: true, peer: this.challenge.identity } };
  }
}

export class AcceptorHandshake extends Handshake {
  private hello: HelloFrame | undefined;
  private challenge: ChallengeFrame | undefined;

  protected step(frame: DecodedFrame): HandshakeStep {
    if (!this.hello) {
      if (frame.type === 'foreign-hello') return refuse('version-mismatch', `this node speaks version ${PROTOCOL_VERSION}, peer ${frame.version}`);
      if (frame.type !== 'hello') return unexpected(frame, 'HELLO');
      const mismatch = checkPeerIdentity(this.config.identity, frame.version, frame.identity);
      if (mismatch) return mismatch;
      this.hello = frame;
      this.challenge = { type: 'challenge', version: PROTOCOL_VERSION, identity: this.config.identity, nonce: this.newNonce() };
      return { send: [this.challenge] };
    }
    if (frame.type !== 'auth' || !this.challenge) return unexpected(frame, 'AUTH');
    const expected = proof(this.config.secret, DIALER_LABEL, this.hello, this.challenge);
    if (!proofMatches(expected, frame.proof)) return refuse('wrong-secret', `proof from '${this.hello.identity.nodeId}' does not match this node's cluster secret`);
    const welcome: Frame = { type: 'welcome', proof: proof(this.config.secret, ACCEPTOR_LABEL, this.hello, this.challenge) };
    return { send: [welcome], result: { ok: true, peer: this.hello.identity } };
  }
}
