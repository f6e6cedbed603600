import { performance } from 'node:perf_hooks';
import { decodeMessage, encodeMessage, type RouteSync } from '../routesync/index.js';

/** Sends one encoded route-sync message to a peer; returns false when it cannot go now (route sync retransmits). */
export type SyncSend = (peer: string, frame: Buffer) => void;

/**
 * Moves time and messages for one RouteSync hub: ticks it at its next wakeup and after every input, and hands
 * what it wants to send to `send`. The hub is pure; this is its only clock.
 */
export class HubDriver {
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(readonly sync: RouteSync, private readonly send: SyncSend) {}

  now(): number {
    return performance.now();
  }

  /** A route-sync frame from `peer`; throws CodecError / RouteSyncError (the caller drops that peer). */
  receive(peer: string, frame: Buffer): void {
    this.sync.receive(peer, decodeMessage(frame), this.now());
    this.pump();
  }

  connect(peer: string): void {
    this.sync.connect(peer, this.now());
    this.pump();
  }

  disconnect(peer: string): void {
    this.sync.disconnect(peer);
    this.pump();
  }

  subscribe(filter: string): void {
    this.sync.subscribe(filter, this.now());
    this.schedule();
  }

  unsubscribe(filter: string): void {
    this.sync.unsubscribe(filter, this.now());
    this.schedule();
  }

  /** Runs the hub now, sends what it produced and sets the timer for its next wakeup. */
  pump(): void {
    if (this.stopped) return;
    const now = this.now();
    this.sync.tick(now);
    for (const { to, message } of this.sync.takeOutgoing()) this.send(to, encodeMessage(message));
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    const now = this.now();
    const delay = Math.max(0, Math.ceil(this.sync.nextWakeup(now) - now));
    this.timer = setTimeout(() => this.pump(), delay);
    this.timer.unref();
  }
}
