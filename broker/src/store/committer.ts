import type { Logger } from '../log/logger.js';
import type { KvEngine, KvOp } from './engine.js';

export interface CommitPolicy {
  /** fsync every commit before its writers' promises resolve. */
  sync: boolean;
  /** How long the first write of a batch waits for others to join its commit (0 = same event-loop turn). */
  commitDelayMs: number;
}

interface PendingWrite {
  ops: KvOp[];
  versions: number[];
  resolve: () => void;
  reject: (err: Error) => void;
}

interface OverlayEntry {
  value: Buffer | null;
  version: number;
}

/**
 * Group commit: writes queue up and go to the engine together in one atomic commit; each writer's promise
 * resolves once the commit holding its ops is done (fsynced when `sync`). Commits run one at a time, in order,
 * so the disk always holds a prefix of the writes in the order they were issued.
 * Writes not yet committed stay readable through `pending()` (read-your-writes for store areas).
 */
export class GroupCommitter {
  private queue: PendingWrite[] = [];
  private queuedSince = 0;
  private committing = false;
  /** Committed batches whose fsync is still running. */
  private syncing = 0;
  /** Cancels the scheduled commit, when one is scheduled. */
  private cancelScheduled: (() => void) | undefined;
  private readonly overlay = new Map<string, OverlayEntry>();
  private version = 0;
  private closed = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly engine: KvEngine,
    private readonly policy: CommitPolicy,
    private readonly logger: Logger,
    private readonly onCommit?: (seconds: number) => void,
  ) {}

  write(ops: KvOp[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error('store is closed: write refused'));
    return new Promise((resolve, reject) => {
      const versions = ops.map((op) => {
        const version = ++this.version;
        this.overlay.set(op.key, { value: op.type === 'put' ? op.value : null, version });
        return version;
      });
      if (this.queue.length === 0) this.queuedSince = Date.now();
      this.queue.push({ ops, versions, resolve, reject });
      this.schedule();
    });
  }

  /** Value written but not yet committed: a Buffer, null for a pending delete, undefined when none is pending. */
  pending(key: string): Buffer | null | undefined {
    return this.overlay.get(key)?.value;
  }

  pendingWithPrefix(prefix: string): [string, Buffer | null][] {
    const found: [string, Buffer | null][] = [];
    for (const [key, entry] of this.overlay) if (key.startsWith(prefix)) found.push([key, entry.value]);
    return found;
  }

  /** Resolves when every write issued so far is committed. */
  async flush(): Promise<void> {
    if (this.queue.length === 0 && !this.committing && this.syncing === 0) return;
    const idle = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    if (this.cancelScheduled) {
      this.cancelScheduled();
      this.cancelScheduled = undefined;
      void this.commitQueued();
    }
    await idle;
  }

  /** Commits what is queued, then refuses further writes. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  private schedule(): void {
    if (this.committing || this.cancelScheduled) return;
    const flushing = this.idleWaiters.length > 0;
    const wait = flushing ? 0 : Math.max(0, this.queuedSince + this.policy.commitDelayMs - Date.now());
    const fire = (): void => {
      this.cancelScheduled = undefined;
      void this.commitQueued();
    };
    if (wait > 0) {
      const timer = setTimeout(fire, wait);
      this.cancelScheduled = () => clearTimeout(timer);
    } else {
      const immediate = setImmediate(fire);
      this.cancelScheduled = () => clearImmediate(immediate);
    }
  }

  /**
   * Commits the queued batch. With `sync` the writers wait for the fsync, but the next batch is committed
   * meanwhile (LMDB's overlapping sync flushes outside the write lock), so commits pipeline with fsyncs.
   */
  private async commitQueued(): Promise<void> {
    if (this.committing || this.queue.length === 0) return this.notifyIdle();
    const batch = this.queue;
    this.queue = [];
    this.committing = true;
    const ops = batch.flatMap((w) => w.ops);
    const started = process.hrtime.bigint();
    const done = (): void => {
      this.onCommit?.(Number(process.hrtime.bigint() - started) / 1e9);
      this.settle(batch, undefined);
    };
    const fail = (cause: unknown): void => {
      const err = new Error(`store commit of ${ops.length} operations failed: ${(cause as Error).message}`, { cause });
      this.logger.error({ err, operations: ops.length }, 'store commit failed');
      this.settle(batch, err);
    };
    try {
      if (ops.length > 0) await this.engine.commit(ops);
      if (this.policy.sync) {
        this.syncing++;
        this.engine.flushed().then(done, fail).finally(() => {
          this.syncing--;
          this.notifyIdle();
        });
      } else {
        done();
      }
    } catch (cause) {
      fail(cause);
    } finally {
      this.committing = false;
    }
    if (this.queue.length > 0) this.schedule();
    else this.notifyIdle();
  }

  private settle(batch: PendingWrite[], err: Error | undefined): void {
    for (const w of batch) {
      w.ops.forEach((op, i) => {
        if (this.overlay.get(op.key)?.version === w.versions[i]) this.overlay.delete(op.key);
      });
      if (err) w.reject(err);
      else w.resolve();
    }
  }

  private notifyIdle(): void {
    if (this.queue.length > 0 || this.committing || this.syncing > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
