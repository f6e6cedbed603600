/**
 * A cache of one resource kind (one namespace or all), kept by client-node's `makeInformer` and made to survive
 * the API server: client-node relists by itself on 410 Gone (expired resource version), but on any other error —
 * a refused connection, a failed list, a watch that cannot start — it reports the error and stops for good. Here
 * every error schedules a restart with exponential back-off; the restart resumes the watch from the last seen
 * resource version, which the server either honours or answers with 410, and then the informer relists.
 */
import { makeInformer, type Informer, type KubernetesListObject, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';
import type { Logger } from '../../../broker/src/log/logger.js';
import type { ApiObject, KubeClient } from './client.js';
import { resourcePath, type ResourceType } from './resources.js';

export type InformerEvent = 'add' | 'update' | 'delete';
export type InformerHandler<T> = (event: InformerEvent, obj: T) => void;

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Healthy for this long: the next error starts again from initialMs. */
  resetAfterMs: number;
}

export const DEFAULT_INFORMER_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 30_000, resetAfterMs: 60_000 };

/** Delay before the next restart, given the previous one and how long the informer ran since its last start. */
export function nextBackoff(previousMs: number | undefined, healthyForMs: number, options: BackoffOptions): number {
  if (previousMs === undefined || healthyForMs >= options.resetAfterMs) return options.initialMs;
  return Math.min(previousMs * 2, options.maxMs);
}

export interface ResilientInformerOptions {
  client: KubeClient;
  type: ResourceType;
  namespace?: string;
  labelSelector?: string;
  logger: Logger;
  backoff?: BackoffOptions;
}

/**
 * client-node's cache holds the objects exactly as they came off the wire (JSON); `T` names what they are. The
 * casts below only restate that for client-node's KubernetesObject typing.
 */
export class ResilientInformer<T extends ApiObject> {
  private readonly informer: Informer<KubernetesObject> & ObjectCache<KubernetesObject>;
  private readonly logger: Logger;
  private readonly backoff: BackoffOptions;
  private readonly handlers: InformerHandler<T>[] = [];
  private stopped = true;
  private synced = false;
  private syncWaiters: (() => void)[] = [];
  private restartTimer?: NodeJS.Timeout;
  private lastDelayMs?: number;
  private startedAt = 0;
  private errors = 0;
  private lists = 0;
  /** What the informer is, for logs: `secrets in meridian`. */
  readonly description: string;

  constructor(private readonly options: ResilientInformerOptions) {
    const { client, type, namespace, labelSelector } = options;
    this.description = `${type.plural}${namespace ? ` in ${namespace}` : ' (all namespaces)'}${labelSelector ? ` [${labelSelector}]` : ''}`;
    this.logger = options.logger.child({ informer: this.description });
    this.backoff = options.backoff ?? DEFAULT_INFORMER_BACKOFF;
    const list = async () => {
      this.lists += 1;
      const result = await client.list<KubernetesObject>(type, { namespace, labelSelector });
      this.logger.debug({ items: result.items.length, resourceVersion: result.metadata?.resourceVersion, relist: this.lists > 1 }, 'listed');
      if (this.lists > 1) this.logger.info({ items: result.items.length }, 'relisted');
      return result as KubernetesListObject<KubernetesObject>;
    };
    this.informer = makeInformer<KubernetesObject>(client.kubeconfig, resourcePath(type, { namespace }), list, labelSelector);
    this.informer.on('add', (obj) => this.emit('add', obj as T));
    this.informer.on('update', (obj) => this.emit('update', obj as T));
    this.informer.on('delete', (obj) => this.emit('delete', obj as T));
    this.informer.on('error', (err?: unknown) => this.onError(err));
  }

  on(handler: InformerHandler<T>): void {
    this.handlers.push(handler);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.informer.get(name, namespace) as T | undefined;
  }

  list(namespace?: string): readonly T[] {
    return this.informer.list(namespace) as readonly T[];
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  /** Number of full lists so far (the first, then one per relist). */
  get listCount(): number {
    return this.lists;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.run();
  }

  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    await this.informer.stop();
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    const errorsBefore = this.errors;
    this.startedAt = Date.now();
    try {
      await this.informer.start();
    } catch (err) {
      this.onError(err);
      return;
    }
    // start() resolves once the list is done and the watch is open, or after it reported an error.
    if (this.errors === errorsBefore && !this.stopped) this.markSynced();
  }

  private markSynced(): void {
    if (this.synced) return;
    this.synced = true;
    this.logger.debug('synced');
    for (const resolve of this.syncWaiters.splice(0)) resolve();
  }

  private onError(err: unknown): void {
    this.errors += 1;
    if (this.stopped || this.restartTimer) return;
    const delay = nextBackoff(this.lastDelayMs, Date.now() - this.startedAt, this.backoff);
    this.lastDelayMs = delay;
    this.logger.warn({ err: describeError(err), retryInMs: delay }, 'watch failed; restarting');
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      void this.run();
    }, delay);
  }

  private emit(event: InformerEvent, obj: T): void {
    for (const handler of this.handlers) {
      try {
        handler(event, obj);
      } catch (err) {
        this.logger.error({ err: describeError(err), event }, 'informer handler failed');
      }
    }
  }
}

export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  if (err && typeof err === 'object') {
    const { statusCode, code, message } = err as { statusCode?: number; code?: string | number; message?: string };
    return [statusCode, code, message].filter((x) => x !== undefined).join(' ') || JSON.stringify(err);
  }
  return String(err);
}
