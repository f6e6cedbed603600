/**
 * One TCP (or TLS) connection carrying frames: decodes what arrives, batches what leaves into one socket write
 * per tick, reports its own end exactly once. It knows nothing of handshakes or delivery; whoever owns it at the
 * moment (the handshake, then a peer link) sets the handler.
 */
import type { Socket } from 'node:net';
import { CodecError, FrameDecoder, encodeFrame, type CloseReason, type DecodedFrame, type Frame } from './codec.js';

export type ConnectionEndCode =
  | 'socket-closed'
  | 'socket-error'
  | 'codec-error'
  | 'protocol-error'
  | 'peer-closed'
  | 'local-close'
  | 'heartbeat-timeout'
  | 'handshake-timeout';

export interface ConnectionEnd {
  code: ConnectionEndCode;
  detail: string;
  /** For `peer-closed`: the reason in the peer's CLOSE frame. */
  peerReason?: CloseReason;
}

export interface FrameHandler {
  onFrame(frame: DecodedFrame): void;
  /** All frames of one received chunk were handed over. */
  onChunkEnd?(): void;
  /** The write buffer went below its limit after `wantWritable()`. */
  onWritable?(): void;
  onEnd(end: ConnectionEnd): void;
}

export interface WireCounters {
  /** Socket writes; far fewer than frames, as the frames of one tick go out in one write. */
  socketWrites: number;
  framesSent: number;
  framesReceived: number;
  bytesSent: number;
  bytesReceived: number;
}

export function newWireCounters(): WireCounters {
  return { socketWrites: 0, framesSent: 0, framesReceived: 0, bytesSent: 0, bytesReceived: 0 };
}

export interface ConnectionOptions {
  maxFrameBytes: number;
  /** Socket buffer plus this tick's unsent frames above which the connection reports itself congested. */
  highWaterBytes: number;
}

const CONCAT_LIMIT_BYTES = 256 * 1024;
const FORCE_DESTROY_AFTER_MS = 2000;

export class FramedConnection {
  /** `ip:port` of the other end, for logs. */
  readonly remote: string;
  counters: WireCounters = newWireCounters();
  private readonly decoder: FrameDecoder;
  private handler: FrameHandler | undefined;
  /** Frames that arrived while nobody owned the connection (between handshake and link). */
  private backlog: DecodedFrame[] = [];
  private outbox: Buffer[] = [];
  private outboxBytes = 0;
  private flushScheduled = false;
  private writableWanted = false;
  private ended: ConnectionEnd | undefined;
  private endReported = false;

  constructor(private readonly socket: Socket, private readonly options: ConnectionOptions) {
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.decoder = new FrameDecoder(options.maxFrameBytes);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.checkWritable());
    socket.on('error', (err) => this.finish({ code: 'socket-error', detail: err.message }));
    socket.on('close', () => this.finish({ code: 'socket-closed', detail: 'connection closed' }));
  }

  get isEnded(): boolean {
    return this.ended !== undefined;
  }

  get bufferedBytes(): number {
    return this.socket.writableLength + this.outboxBytes;
  }

  get congested(): boolean {
    return this.bufferedBytes >= this.options.highWaterBytes;
  }

  setMaxFrameBytes(limit: number): void {
    this.decoder.setMaxFrameBytes(limit);
  }

  /** Hand the connection to a new owner (or to nobody: frames are then held until the next owner takes over). */
  setHandler(handler: FrameHandler | undefined): void {
    this.handler = handler;
    if (!handler) return;
    const held = this.backlog;
    this.backlog = [];
    for (const frame of held) {
      if (this.handler !== handler || this.endReported) return;
      handler.onFrame(frame);
    }
    if (held.length > 0) handler.onChunkEnd?.();
    if (this.ended && !this.endReported) this.reportEnd();
  }

  write(frame: Frame): void {
    if (this.ended) return;
    const bytes = encodeFrame(frame);
    this.outbox.push(bytes);
    this.outboxBytes += bytes.length;
    this.counters.framesSent++;
    this.counters.bytesSent += bytes.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(() => this.flush());
    }
  }

  /** Ask for `onWritable` once the connection is no longer congested. */
  wantWritable(): void {
    this.writableWanted = true;
  }

  /** Send a CLOSE frame, then end the connection. */
  close(reason: CloseReason, detail: string): void {
    this.write({ type: 'close', reason, detail });
    this.end({ code: 'local-close', detail: `${reason}: ${detail}` });
  }

  /** Write what is queued, then end the connection (the peer reads everything up to here). */
  end(end: ConnectionEnd): void {
    if (this.ended) return;
    this.flush();
    this.ended = end;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), FORCE_DESTROY_AFTER_MS).unref();
    this.reportEnd();
  }

  /** Drop the connection at once, queued frames included. */
  destroy(end: ConnectionEnd): void {
    if (!this.ended) this.ended = end;
    this.socket.destroy();
    this.reportEnd();
  }

  private onData(chunk: Buffer): void {
    if (this.ended) return;
    this.counters.bytesReceived += chunk.length;
    let frames: DecodedFrame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      const detail = err instanceof CodecError ? `${err.code}: ${err.message}` : String(err);
      this.destroy({ code: 'codec-error', detail });
      return;
    }
    this.counters.framesReceived += frames.length;
    for (const frame of frames) {
      if (this.ended) return;
      if (frame.type === 'close') {
        this.destroy({ code: 'peer-closed', detail: `peer closed the connection (${frame.reason}): ${frame.detail}`, peerReason: frame.reason });
        return;
      }
      if (this.handler) this.handler.onFrame(frame);
      else this.backlog.push(frame);
    }
    if (this.handler && !this.ended) this.handler.onChunkEnd?.();
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.outbox.length === 0 || this.socket.destroyed) return;
    const chunks = this.outbox;
    const total = this.outboxBytes;
    this.outbox = [];
    this.outboxBytes = 0;
    this.counters.socketWrites++;
    if (chunks.length === 1 || total <= CONCAT_LIMIT_BYTES) {
      this.socket.write(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, total));
    } else {
      this.socket.cork();
      for (const chunk of chunks) this.socket.write(chunk);
      this.socket.uncork();
    }
    this.checkWritable();
  }

  private checkWritable(): void {
    if (!this.writableWanted || this.congested || this.ended) return;
    this.writableWanted = false;
    this.handler?.onWritable?.();
  }

  private finish(end: ConnectionEnd): void {
    if (!this.ended) this.ended = end;
    this.reportEnd();
  }

  private reportEnd(): void {
    if (this.endReported || !this.ended || !this.handler) return;
    this.endReported = true;
    this.outbox = [];
    this.outboxBytes = 0;
    this.handler.onEnd(this.ended);
  }
}
