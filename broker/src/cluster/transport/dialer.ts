/** Keeps one cluster address dialed: redials with back-off whenever the link it reached is down. */
import type { Logger } from '../../log/logger.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import type { PeerLink } from './peer-link.js';

export type DialOnce = (address: string) => Promise<PeerLink>;

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    timer.unref();
    signal.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}

/** Resolves when `link` has no connection any more (or at once if it has none), or when stopped. */
function untilDetached(link: PeerLink, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted || !link.attached || link.isClosed) return resolve();
    const done = (): void => {
      link.off('disconnected', done);
      link.off('closed', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    link.on('disconnected', done);
    link.on('closed', done);
    signal.addEventListener('abort', done, { once: true });
  });
}

export class PersistentDialer {
  private readonly abort = new AbortController();
  private readonly backoff: Backoff;
  private failuresInARow = 0;
  /** Node reached at this address last time, for logs. */
  private reached: string | undefined;

  constructor(
    readonly address: string,
    private readonly dialOnce: DialOnce,
    backoff: BackoffOptions,
    private readonly logger: Logger,
  ) {
    this.backoff = new Backoff(backoff);
  }

  start(): void {
    void this.run();
  }

  stop(): void {
    this.abort.abort();
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      const link = await this.attempt();
      if (link) await untilDetached(link, signal);
      if (signal.aborted) return;
      const wait = this.backoff.next();
      this.logger.debug({ address: this.address, node: this.reached, delayMs: wait }, 'redialing cluster peer after back-off');
      await delay(wait, signal);
    }
  }

  private async attempt(): Promise<PeerLink | undefined> {
    try {
      const link = await this.dialOnce(this.address);
      if (this.failuresInARow > 0) this.logger.info({ address: this.address, node: link.nodeId, failures: this.failuresInARow }, 'cluster peer reachable again');
      this.failuresInARow = 0;
      this.reached = link.nodeId;
      this.backoff.reset();
      return link;
    } catch (err) {
      this.failuresInARow++;
      // Each failure is logged where it happened (handshake refusals at error); here only the first of a streak.
      const level = this.failuresInARow === 1 ? 'warn' : 'debug';
      this.logger[level]({ address: this.address, node: this.reached, failures: this.failuresInARow, err: (err as Error).message }, 'cannot reach cluster peer; will retry with back-off');
      return undefined;
    }
  }
}
