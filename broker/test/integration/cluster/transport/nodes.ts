import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { NodeRole } from '../../../../src/cluster/transport/codec.js';
import { ClusterTransport, type ClusterTransportOptions } from '../../../../src/cluster/transport/server.js';
import type { PeerLink } from '../../../../src/cluster/transport/peer-link.js';
import type { BackoffOptions } from '../../../../src/cluster/transport/backoff.js';
import type { PeerLinkOptions } from '../../../../src/cluster/transport/peer-link.js';

export const SECRET = Buffer.from('integration-test-cluster-secret-0123456789');

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export interface TestNode {
  transport: ClusterTransport;
  port: number;
  address: string;
  logs: LogLine[];
}

export interface NodeSpec {
  nodeId: string;
  clusterName?: string;
  secret?: Buffer;
  role?: NodeRole;
  incarnation?: number;
  link?: Partial<PeerLinkOptions>;
  backoff?: Partial<BackoffOptions>;
  handshakeTimeoutMs?: number;
  tls?: ClusterTransportOptions['tls'];
  /** Listen on this port instead of a free one. */
  port?: number;
}

/** Starts transports on 127.0.0.1 with captured JSON logs, and closes them all in `closeAll()`. */
export class Nodes {
  private readonly started: TestNode[] = [];

  async start(spec: NodeSpec): Promise<TestNode> {
    const logs: LogLine[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as LogLine);
        done();
      },
    });
    const transport = new ClusterTransport({
      identity: {
        clusterName: spec.clusterName ?? 'test-cluster', nodeId: spec.nodeId, role: spec.role ?? 'core',
        incarnation: spec.incarnation ?? 1, address: 'pending',
      },
      secret: spec.secret ?? SECRET,
      logger: pino({ level: 'debug' }, sink),
      link: { heartbeatIntervalMs: 200, heartbeatTimeoutMs: 2000, ...spec.link },
      backoff: { initialDelayMs: 50, maxDelayMs: 500, ...spec.backoff },
      handshakeTimeoutMs: spec.handshakeTimeoutMs ?? 2000,
      tls: spec.tls,
    });
    const bound = await transport.listen(spec.port ?? 0, '127.0.0.1');
    transport.identity.address = `127.0.0.1:${bound.port}`;
    const node = { transport, port: bound.port, address: `127.0.0.1:${bound.port}`, logs };
    this.started.push(node);
    return node;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.started.splice(0).map((n) => n.transport.close()));
  }
}

export async function waitFor(what: string, predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function connectedLink(node: TestNode, peerId: string): PeerLink | undefined {
  const link = node.transport.peer(peerId);
  return link?.connected ? link : undefined;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Payload carrying a counter, so receivers can check order and exactly-once. */
export function numbered(i: number, size = 16): Buffer {
  const buf = Buffer.alloc(Math.max(size, 4));
  buf.writeUInt32BE(i, 0);
  return buf;
}

export function numberOf(payload: Buffer): number {
  return payload.readUInt32BE(0);
}
