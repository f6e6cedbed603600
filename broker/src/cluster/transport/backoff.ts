/** Exponential back-off with jitter for redialing a peer. */

export interface BackoffOptions {
  initialDelayMs: number;
  maxDelayMs: number;
  multiplier: number;
  /** Fraction of each delay that is randomised: 0.5 → a delay d becomes uniform in [d/2, d]. */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialDelayMs: 100, maxDelayMs: 10_000, multiplier: 2, jitter: 0.5 };

export class Backoff {
  private attempt = 0;

  constructor(private readonly options: BackoffOptions = DEFAULT_BACKOFF, private readonly random: () => number = Math.random) {
    if (options.initialDelayMs <= 0 || options.maxDelayMs < options.initialDelayMs || options.multiplier < 1 || options.jitter < 0 || options.jitter > 1) {
      throw new RangeError(`invalid back-off options ${JSON.stringify(options)}`);
    }
  }

  /** Delay before the next attempt; each call grows the ceiling until `maxDelayMs`. */
  next(): number {
    const ceiling = Math.min(this.options.maxDelayMs, this.options.initialDelayMs * this.options.multiplier ** this.attempt);
    if (ceiling < this.options.maxDelayMs) this.attempt++;
    return Math.round(ceiling * (1 - this.options.jitter * this.random()));
  }

  /** Called after a successful connection: the next failure starts from the initial delay again. */
  reset(): void {
    this.attempt = 0;
  }
}
