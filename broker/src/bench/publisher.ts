import type { BenchClient } from './clients.js';
import type { PubOptions } from './options.js';
import { PayloadFactory } from './payload.js';

export interface Publisher {
  readonly bench: BenchClient;
  readonly topic: string;
  /** How many of the run's subscriptions match `topic`: each message sent should arrive that many times. */
  readonly matchingSubscriptions: number;
  sent: number;
  completed: number;
  inflight: number;
  /** Waiting for subscribers to catch up with --e2e-window. */
  blockedOnWindow: boolean;
}

/** Messages from the publisher with this 1-based index received so far by all in-process subscribers. */
export type DeliveredCount = (publisherIndex: number) => number;

type Wake = { kind: 'immediate'; handle: NodeJS.Immediate } | { kind: 'timeout'; handle: NodeJS.Timeout };

/**
 * Drives every publisher: at --rate messages/s each (staggered so they do not fire in lockstep), or with
 * --rate 0 as fast as flow control allows, i.e. at most --inflight unacknowledged QoS 1/2 messages, and for
 * QoS 0 until the socket reports backpressure (then until 'drain'); with --e2e-window, also at most that
 * many messages per publisher not yet received by its matching subscribers, so broker queues stay bounded.
 * Yields to the event loop between batches so in-process subscribers keep receiving.
 */
export class PublishLoop {
  private readonly payloads: PayloadFactory;
  private readonly wakes = new Map<Publisher, Wake>();
  private startedAt = 0;
  private stopped = false;
  private lastCompletionAt = 0;

  private readonly byIndex = new Map<number, Publisher>();

  constructor(
    private readonly options: PubOptions,
    readonly publishers: readonly Publisher[],
    private readonly delivered: DeliveredCount = () => 0,
  ) {
    this.payloads = new PayloadFactory(options.payloadSize);
    for (const publisher of publishers) this.byIndex.set(publisher.bench.index, publisher);
  }

  /** Called for each message a subscriber receives, to wake a publisher waiting on --e2e-window. */
  onDelivered(publisherIndex: number): void {
    const publisher = this.byIndex.get(publisherIndex);
    if (publisher?.blockedOnWindow) {
      publisher.blockedOnWindow = false;
      this.wake(publisher, 0);
    }
  }

  start(): number {
    this.startedAt = performance.now();
    this.lastCompletionAt = this.startedAt;
    for (const publisher of this.publishers) this.wake(publisher, this.staggerMs(publisher));
    return this.startedAt;
  }

  stop(): void {
    this.stopped = true;
    for (const wake of this.wakes.values()) {
      if (wake.kind === 'immediate') clearImmediate(wake.handle);
      else clearTimeout(wake.handle);
    }
    this.wakes.clear();
  }

  /** Every publisher sent its --messages (never true without --messages). */
  get allSent(): boolean {
    return this.options.messages > 0 && this.publishers.every((p) => p.sent >= this.options.messages);
  }

  get inflight(): number {
    return this.publishers.reduce((sum, p) => sum + p.inflight, 0);
  }

  get lastCompletion(): number {
    return this.lastCompletionAt;
  }

  private pump(publisher: Publisher): void {
    this.wakes.delete(publisher);
    if (this.stopped) return;
    const now = performance.now();
    const windowBudget = this.windowBudget(publisher);
    publisher.blockedOnWindow = windowBudget <= 0;
    const budget = Math.min(this.inflightLimit(publisher) - publisher.inflight, this.dueCount(publisher, now), this.remaining(publisher), windowBudget);
    for (let i = 0; i < budget; i++) {
      this.send(publisher);
      // A QoS 0 callback that did not run synchronously means the socket buffer is full: wait for 'drain'.
      if (this.options.qos === 0 && publisher.inflight > 0) return;
    }
    this.scheduleNext(publisher, now);
  }

  private scheduleNext(publisher: Publisher, now: number): void {
    if (this.remaining(publisher) === 0 || publisher.inflight >= this.inflightLimit(publisher)) return;
    if (this.windowBudget(publisher) <= 0) {
      publisher.blockedOnWindow = true;
      return;
    }
    if (this.options.rate > 0) this.wake(publisher, this.nextDueAt(publisher) - now);
    else if (this.options.qos === 0) this.wake(publisher, 0);
    // QoS 1/2 at full speed: the next completion wakes the publisher.
  }

  private send(publisher: Publisher): void {
    const payload = this.payloads.create(publisher.bench.index, publisher.sent);
    publisher.sent++;
    publisher.inflight++;
    publisher.bench.client.publish(publisher.topic, payload, { qos: this.options.qos }, (error?: Error) => {
      publisher.inflight--;
      if (error) return; // The pool reports the lost connection behind it.
      publisher.completed++;
      this.lastCompletionAt = performance.now();
      this.wake(publisher, 0);
    });
  }

  private wake(publisher: Publisher, delayMs: number): void {
    if (this.stopped || this.wakes.has(publisher)) return;
    const run = (): void => this.pump(publisher);
    const wake: Wake = delayMs > 0 ? { kind: 'timeout', handle: setTimeout(run, delayMs) } : { kind: 'immediate', handle: setImmediate(run) };
    this.wakes.set(publisher, wake);
  }

  private remaining(publisher: Publisher): number {
    return this.options.messages > 0 ? Math.max(0, this.options.messages - publisher.sent) : Number.POSITIVE_INFINITY;
  }

  /** --inflight, lowered to the broker's Receive Maximum: brokers may drop publishes beyond it. */
  private inflightLimit(publisher: Publisher): number {
    const receiveMaximum = publisher.bench.receiveMaximum;
    return receiveMaximum !== undefined && this.options.qos > 0 ? Math.min(receiveMaximum, this.options.inflight) : this.options.inflight;
  }

  private windowBudget(publisher: Publisher): number {
    const window = this.options.e2eWindow;
    if (window === 0 || publisher.matchingSubscriptions === 0) return Number.POSITIVE_INFINITY;
    const outstanding = publisher.sent * publisher.matchingSubscriptions - this.delivered(publisher.bench.index);
    return Math.floor((window - outstanding) / publisher.matchingSubscriptions);
  }

  private dueCount(publisher: Publisher, now: number): number {
    if (this.options.rate === 0) return Number.POSITIVE_INFINITY;
    const elapsedMs = now - this.startedAt - this.staggerMs(publisher);
    return Math.max(0, Math.floor((elapsedMs * this.options.rate) / 1000) + 1 - publisher.sent);
  }

  private nextDueAt(publisher: Publisher): number {
    return this.startedAt + this.staggerMs(publisher) + (publisher.sent * 1000) / this.options.rate;
  }

  private staggerMs(publisher: Publisher): number {
    if (this.options.rate === 0) return 0;
    return ((publisher.bench.index - 1) / this.publishers.length) * (1000 / this.options.rate);
  }
}
