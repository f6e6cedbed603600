import type { Logger } from '../log/logger.js';
import { Channel, type Delivery } from './transport/index.js';

/**
 * Small request/notification protocol on the transport's Rpc channel. A message is a JSON header and an optional
 * binary body: `u32 header length | header JSON | body`. Requests carry an id and get exactly one reply.
 */
export type RpcHeader = Record<string, unknown> & { kind: string };

export interface RpcMessage {
  header: RpcHeader;
  body: Buffer;
}

export type RpcHandler = (from: string, message: RpcMessage) => Promise<RpcMessage | void> | RpcMessage | void;

export interface RpcTransport {
  send(nodeId: string, channel: number, payload: Buffer): Promise<void>;
}

interface Envelope extends Record<string, unknown> {
  kind: string;
  requestId?: number;
  replyTo?: number;
  error?: string;
}

export class RpcError extends Error {
  override name = 'RpcError';
}

export class Rpc {
  private readonly handlers = new Map<string, RpcHandler>();
  private readonly pending = new Map<number, { resolve: (m: RpcMessage) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private nextId = 1;

  constructor(private readonly transport: RpcTransport, private readonly logger: Logger) {}

  handle(kind: string, handler: RpcHandler): void {
    this.handlers.set(kind, handler);
  }

  /** One-way message; resolves when the peer's transport acknowledged it. */
  notify(nodeId: string, header: RpcHeader, body: Buffer = EMPTY): Promise<void> {
    return this.transport.send(nodeId, Channel.Rpc, encode(header, body));
  }

  request(nodeId: string, header: RpcHeader, body: Buffer = EMPTY, timeoutMs = 10000): Promise<RpcMessage> {
    const requestId = this.nextId++;
    return new Promise<RpcMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(new RpcError(`${header.kind} to ${nodeId}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(requestId, { resolve, reject, timer });
      this.transport.send(nodeId, Channel.Rpc, encode({ ...header, requestId }, body)).catch((err: Error) => {
        clearTimeout(timer);
        this.pending.delete(requestId);
        reject(new RpcError(`${header.kind} to ${nodeId}: ${err.message}`));
      });
    });
  }

  receive(from: string, payload: Buffer, delivery: Delivery): void {
    let message: { header: Envelope; body: Buffer };
    try {
      message = decode(payload);
    } catch (err) {
      this.logger.warn({ peer: from, err: (err as Error).message }, 'dropped a malformed cluster rpc message');
      return;
    }
    const { header } = message;
    if (header.replyTo !== undefined) return this.settle(header, message.body);
    const handler = this.handlers.get(header.kind);
    if (!handler) {
      this.logger.warn({ peer: from, kind: header.kind }, 'cluster rpc: no handler');
      if (header.requestId !== undefined) void this.reply(from, header.requestId, { kind: header.kind, error: `no handler for ${header.kind}` });
      return;
    }
    const outcome = Promise.resolve().then(() => handler(from, { header, body: message.body }));
    delivery.defer(outcome.then(() => undefined, () => undefined));
    if (header.requestId === undefined) {
      outcome.catch((err: Error) => this.logger.warn({ peer: from, kind: header.kind, err: err.message }, 'cluster rpc notification failed'));
      return;
    }
    const requestId = header.requestId;
    outcome.then(
      (reply) => this.reply(from, requestId, reply?.header ?? { kind: header.kind }, reply?.body),
      (err: Error) => this.reply(from, requestId, { kind: header.kind, error: err.message }),
    );
  }

  close(): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new RpcError('cluster stopping'));
      this.pending.delete(id);
    }
  }

  private settle(header: Envelope, body: Buffer): void {
    const pending = this.pending.get(header.replyTo as number);
    if (!pending) return;
    this.pending.delete(header.replyTo as number);
    clearTimeout(pending.timer);
    if (typeof header.error === 'string') pending.reject(new RpcError(header.error));
    else pending.resolve({ header: header as RpcHeader, body });
  }

  private async reply(to: string, requestId: number, header: Envelope, body: Buffer = EMPTY): Promise<void> {
    try {
      await this.transport.send(to, Channel.Rpc, encode({ ...header, replyTo: requestId }, body));
    } catch (err) {
      this.logger.warn({ peer: to, kind: header.kind, err: (err as Error).message }, 'cluster rpc reply not delivered');
    }
  }
}

const EMPTY = Buffer.alloc(0);

function encode(header: Envelope, body: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const out = Buffer.allocUnsafe(4 + json.length + body.length);
  out.writeUInt32BE(json.length, 0);
  json.copy(out, 4);
  body.copy(out, 4 + json.length);
  return out;
}

function decode(payload: Buffer): { header: Envelope; body: Buffer } {
  if (payload.length < 4) throw new RpcError('rpc message shorter than its length prefix');
  const length = payload.readUInt32BE(0);
  if (4 + length > payload.length) throw new RpcError(`rpc header length ${length} runs past the end`);
  const header = JSON.parse(payload.toString('utf8', 4, 4 + length)) as unknown;
  if (typeof header !== 'object' || header === null || typeof (header as Envelope).kind !== 'string') {
    throw new RpcError('rpc header without a kind');
  }
  return { header: header as Envelope, body: payload.subarray(4 + length) };
}
