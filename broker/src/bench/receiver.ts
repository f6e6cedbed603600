import type { MqttClient } from 'mqtt';
import { readHeader, wallClockMs } from './payload.js';
import type { ReceiveReport } from './report.js';
import { ratePerSecond, Sample } from './stats.js';

/** Counts messages arriving at any number of clients and records end-to-end latency from the payload header. */
export class Receiver {
  received = 0;
  private withoutHeader = 0;
  private firstAt: number | undefined;
  private lastAt: number | undefined;
  private readonly latencyMs = new Sample();
  private readonly perPublisher: number[] = [];
  /** Wall-clock ms before which a message's send time puts it in the warm-up: counted, no latency sample. */
  private measureFromMs = -Infinity;
  private warmupMessages = 0;
  /** Told the publisher index of every bench message, e.g. to wake a publisher waiting on its window. */
  onBenchMessage: ((publisherIndex: number) => void) | undefined;

  attach(client: MqttClient): void {
    client.on('message', (_topic: string, payload: Buffer) => this.record(payload));
  }

  record(payload: Uint8Array): void {
    const header = readHeader(payload);
    this.received++;
    this.lastAt = performance.now();
    this.firstAt ??= this.lastAt;
    if (!header) {
      this.withoutHeader++;
      return;
    }
    if (header.sentAtMs >= this.measureFromMs) this.latencyMs.add(wallClockMs() - header.sentAtMs);
    else this.warmupMessages++;
    this.perPublisher[header.publisher] = (this.perPublisher[header.publisher] ?? 0) + 1;
    this.onBenchMessage?.(header.publisher);
  }

  /** Messages sent before `wallClockMs` are counted but leave the latency figures out (`--warmup`). */
  measureFrom(wallClockMs: number): void {
    this.measureFromMs = wallClockMs;
  }

  /** Bench messages received from the publisher with this 1-based index. */
  receivedFrom(publisherIndex: number): number {
    return this.perPublisher[publisherIndex] ?? 0;
  }

  /** `since` is when publishing started (pub); without it the window opens at the first message (sub). */
  report(since?: number, expected?: number): ReceiveReport {
    const opened = since ?? this.firstAt;
    const elapsedMs = opened !== undefined && this.lastAt !== undefined ? this.lastAt - opened : 0;
    const report: ReceiveReport = {
      received: this.received,
      withoutHeader: this.withoutHeader,
      elapsedMs,
      ratePerSec: ratePerSecond(this.received, elapsedMs),
      latencyMs: this.latencyMs.summary(),
    };
    if (this.warmupMessages > 0) report.warmupMessages = this.warmupMessages;
    if (expected !== undefined) {
      report.expected = expected;
      report.missing = Math.max(0, expected - this.received);
    }
    return report;
  }
}
