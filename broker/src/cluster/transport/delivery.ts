/**
 * Reliable, ordered delivery over a succession of connections: sequence numbers, the send window, cumulative
 * acknowledgements, resumption and duplicate suppression. Pure state — no sockets, no timers.
 *
 * Each direction of a link is a *stream* identified by a random session id chosen by its sender. Sequence numbers
 * start at 1 in every stream. On each new connection both sides exchange SESSION frames; a stream resumes only if
 * the receiver still holds it, otherwise the sender starts it over from 1 and fails whatever was pending.
 */
import { randomBytes } from 'node:crypto';
import { Queue } from './queue.js';

export interface OutboundMessage {
  channel: number;
  payload: Buffer;
  /** 0 until the message enters the window. */
  seq: number;
  /** How many times it was written to a connection (more than once = resent after a reconnect). */
  transmissions: number;
  resolve: () => void;
  reject: (error: Error) => void;
}

export interface WindowLimits {
  /** Most messages sent and not yet acknowledged. */
  maxMessages: number;
  /** Most payload bytes sent and not yet acknowledged (one larger message may go alone into an empty window). */
  maxBytes: number;
}

/** The peer broke the protocol (acknowledged what was never sent, skipped a sequence number, ...). */
export class ProtocolViolation extends Error {
  override readonly name = 'ProtocolViolation';
}

/** A random non-zero session id that fits a safe integer (0 means "none" on the wire). */
export function newSessionId(): number {
  const bytes = randomBytes(8);
  const id = (bytes.readUInt32BE(0) & 0x1f_ffff) * 0x1_0000_0000 + bytes.readUInt32BE(4);
  return id === 0 ? 1 : id;
}

export type OpenOutcome = { resumed: true } | { resumed: false; failed: OutboundMessage[] };

export class OutboundStream {
  readonly session: number;
  private nextSeq = 1;
  private acked = 0;
  /** Next sequence number to write on the current connection; lower ones were written on it already. */
  private nextTransmit = 1;
  /** Seq-ordered, contiguous from `acked + 1` to `nextSeq - 1`. */
  private readonly unacked = new Queue<OutboundMessage>();
  /** Sends that do not fit the window yet; no sequence number assigned. */
  private readonly waiting = new Queue<OutboundMessage>();
  private unackedPayloadBytes = 0;
  private waitingPayloadBytes = 0;
  /** Something was written to a connection in this stream (resuming it elsewhere is now meaningful). */
  private started = false;
  resends = 0;

  constructor(private readonly limits: WindowLimits, session: number = newSessionId()) {
    this.session = session;
  }

  get unackedMessages(): number { return this.unacked.length; }
  get unackedBytes(): number { return this.unackedPayloadBytes; }
  get waitingMessages(): number { return this.waiting.length; }
  get waitingBytes(): number { return this.waitingPayloadBytes; }
  /** True while a new message would enter the window at once. */
  get hasRoom(): boolean { return this.waiting.length === 0 && this.fits(0); }

  enqueue(message: OutboundMessage): void {
    if (this.waiting.length === 0 && this.fits(message.payload.length)) {
      this.admit(message);
    } else {
      this.waiting.push(message);
      this.waitingPayloadBytes += message.payload.length;
    }
  }

  /** The next message to write on the current connection, or undefined when all in the window are written. */
  nextToTransmit(): OutboundMessage | undefined {
    if (this.nextTransmit >= this.nextSeq) return undefined;
    const message = this.unacked.at(this.nextTransmit - this.acked - 1) as OutboundMessage;
    this.nextTransmit++;
    if (message.transmissions > 0) this.resends++;
    message.transmissions++;
    this.started = true;
    return message;
  }

  /** Cumulative acknowledgement: everything up to `seq` was received and handled. Returns how many it settled. */
  acknowledge(seq: number): number {
    if (seq >= this.nextSeq) throw new ProtocolViolation(`peer acknowledged sequence number ${seq}, only ${this.nextSeq - 1} were sent`);
    let settled = 0;
    while (this.acked < seq) {
      const message = this.unacked.shift() as OutboundMessage;
      this.acked = message.seq;
      this.unackedPayloadBytes -= message.payload.length;
      message.resolve();
      settled++;
    }
    if (this.nextTransmit <= this.acked) this.nextTransmit = this.acked + 1;
    this.admitWaiting();
    return settled;
  }

  /**
   * A new connection is up and the peer's SESSION arrived. If the peer still holds this stream, continue after
   * what it acknowledged and write the rest again; otherwise start over from 1, failing what may have been lost
   * (nothing is failed when the stream never went out on any connection).
   */
  open(peerHoldsStream: boolean, peerReceived: number): OpenOutcome {
    if (peerHoldsStream) {
      this.acknowledge(peerReceived);
      this.nextTransmit = this.acked + 1;
      return { resumed: true };
    }
    const failed = this.started ? this.takeAll() : [];
    this.renumberFromOne();
    return { resumed: false, failed };
  }

  /** Removes every pending message (window and waiting), e.g. to fail them when the link is closed. */
  takeAll(): OutboundMessage[] {
    const all = [...this.unacked.drain(), ...this.waiting.drain()];
    this.unackedPayloadBytes = 0;
    this.waitingPayloadBytes = 0;
    this.nextSeq = this.acked + 1;
    this.nextTransmit = this.nextSeq;
    return all;
  }

  private renumberFromOne(): void {
    const pending = [...this.unacked.drain(), ...this.waiting.drain()];
    this.unackedPayloadBytes = 0;
    this.waitingPayloadBytes = 0;
    this.acked = 0;
    this.nextSeq = 1;
    this.nextTransmit = 1;
    this.started = false;
    for (const message of pending) {
      message.seq = 0;
      this.enqueue(message);
    }
  }

  private fits(bytes: number): boolean {
    if (this.unacked.length === 0) return true;
    return this.unacked.length < this.limits.maxMessages && this.unackedPayloadBytes + bytes <= this.limits.maxBytes;
  }

  private admit(message: OutboundMessage): void {
    message.seq = this.nextSeq++;
    this.unacked.push(message);
    this.unackedPayloadBytes += message.payload.length;
  }

  private admitWaiting(): void {
    for (let next = this.waiting.peek(); next && this.fits(next.payload.length); next = this.waiting.peek()) {
      this.waiting.shift();
      this.waitingPayloadBytes -= next.payload.length;
      this.admit(next);
    }
  }
}

interface HandlingEntry {
  seq: number;
  done: boolean;
}

export type Arrival = 'deliver' | 'duplicate' | 'gap';

/**
 * The receiving side of the peer's stream. `received` is the highest sequence number delivered to the
 * application (duplicate suppression); `handled` the highest one whose handling finished (what is acknowledged:
 * the application may defer a message's acknowledgement until it has dealt with it).
 */
export class InboundStream {
  peerSession = 0;
  received = 0;
  handled = 0;
  private lastAcked = 0;
  private inHandling = new Queue<HandlingEntry>();

  /** The peer's SESSION arrived: keep the stream if it is the one we hold, else start over. */
  begin(peerSession: number): 'resumed' | 'started' {
    if (peerSession === this.peerSession) return 'resumed';
    this.peerSession = peerSession;
    this.received = 0;
    this.handled = 0;
    this.lastAcked = 0;
    this.inHandling = new Queue();
    return 'started';
  }

  accept(seq: number): Arrival {
    if (seq <= this.received) return 'duplicate';
    if (seq !== this.received + 1) return 'gap';
    this.received = seq;
    return 'deliver';
  }

  /**
   * Record that `seq` was delivered. With `deferred`, returns the function to call once its handling finished;
   * acknowledgements never overtake an unfinished message.
   */
  delivered(seq: number, deferred: boolean): (() => void) | undefined {
    if (!deferred && this.inHandling.length === 0) {
      this.handled = seq;
      return undefined;
    }
    const entry: HandlingEntry = { seq, done: !deferred };
    const queue = this.inHandling;
    queue.push(entry);
    return deferred ? () => { entry.done = true; this.advance(queue); } : undefined;
  }

  /** The cumulative acknowledgement to send now, if it moved since the last one. */
  ackDue(): number | undefined {
    if (this.handled <= this.lastAcked) return undefined;
    this.lastAcked = this.handled;
    return this.handled;
  }

  /** The SESSION frame told the peer about `handled`; no need to acknowledge it again. */
  markAcknowledged(): void {
    this.lastAcked = this.handled;
  }

  private advance(queue: Queue<HandlingEntry>): void {
    if (queue !== this.inHandling) return;
    for (let head = queue.peek(); head?.done; head = queue.peek()) {
      queue.shift();
      this.handled = head.seq;
    }
  }
}
