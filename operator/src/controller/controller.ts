/**
 * The controller: informers (one per kind and watched namespace, or cluster-wide) feed a work queue of
 * RegionalCluster keys (`namespace/name`); workers reconcile them, requeueing failures with back-off. Every change
 * maps to the cluster it concerns: a ClusterLink to its clusterRef, a Secret to the clusters and links that name
 * it, owned objects through their owner reference, pods through their instance label.
 */
import type { V1ConfigMap, V1Deployment, V1OwnerReference, V1Pod, V1PodDisruptionBudget, V1Secret, V1Service, V1StatefulSet } from '@kubernetes/client-node';
import type { Logger } from '../../../broker/src/log/logger.js';
import type { ClusterLink, RegionalCluster } from '../api/types.js';
import type { ApiObject, KubeClient } from '../kube/client.js';
import { describeError, ResilientInformer, type BackoffOptions } from '../kube/informer.js';
import { RESOURCES, type ResourceType } from '../kube/resources.js';
import { FIELD_MANAGER } from '../render/index.js';
import { ClusterReconciler, type Cache, type Caches, type ReconcilerDeps } from './reconciler.js';
import { WorkQueue, type QueueBackoff } from './queue.js';

export interface ControllerOptions {
  client: KubeClient;
  logger: Logger;
  /** Empty: all namespaces. */
  namespaces: readonly string[];
  workers: number;
  /** Every cluster is reconciled at least this often, changes or not. */
  resyncPeriodMs: number;
  reconciler: Omit<ReconcilerDeps, 'client' | 'caches' | 'logger'>;
  informerBackoff?: BackoffOptions;
  queueBackoff?: QueueBackoff;
}

/** Objects the operator applied carry this label; the informers of owned kinds select on it. */
const MANAGED_SELECTOR = `app.kubernetes.io/managed-by=${FIELD_MANAGER}`;

type Owned = ApiObject & { metadata?: { ownerReferences?: V1OwnerReference[]; labels?: Record<string, string> } };

/** Several informers (one per namespace) read as one cache. */
class MultiCache<T extends ApiObject> implements Cache<T> {
  constructor(private readonly informers: readonly ResilientInformer<T>[]) {}

  get(name: string, namespace?: string): T | undefined {
    for (const informer of this.informers) {
      const found = informer.get(name, namespace);
      if (found) return found;
    }
    return undefined;
  }

  list(namespace?: string): readonly T[] {
    return this.informers.flatMap((i) => i.list(namespace));
  }
}

export class Controller {
  private readonly queue: WorkQueue;
  private readonly informers: ResilientInformer<ApiObject>[] = [];
  private readonly caches: Caches;
  private readonly reconciler: ClusterReconciler;
  private readonly logger: Logger;
  private workers: Promise<void>[] = [];
  private resyncTimer?: NodeJS.Timeout;
  private synced = false;
  private stopped = false;

  constructor(private readonly options: ControllerOptions) {
    this.logger = options.logger.child({ component: 'controller' });
    this.queue = new WorkQueue(options.queueBackoff);
    this.caches = {
      clusters: this.watch<RegionalCluster>(RESOURCES.regionalCluster, undefined, (o) => this.enqueue(o.metadata.namespace, o.metadata.name)),
      links: this.watch<ClusterLink>(RESOURCES.clusterLink, undefined, (o) => this.onLink(o)),
      secrets: this.watch<V1Secret>(RESOURCES.secret, undefined, (o) => this.onSecret(o)),
      configMaps: this.watch<V1ConfigMap>(RESOURCES.configMap, MANAGED_SELECTOR, (o) => this.onOwned(o)),
      services: this.watch<V1Service>(RESOURCES.service, MANAGED_SELECTOR, (o) => this.onOwned(o)),
      statefulSets: this.watch<V1StatefulSet>(RESOURCES.statefulSet, MANAGED_SELECTOR, (o) => this.onOwned(o)),
      deployments: this.watch<V1Deployment>(RESOURCES.deployment, MANAGED_SELECTOR, (o) => this.onOwned(o)),
      pods: this.watch<V1Pod>(RESOURCES.pod, MANAGED_SELECTOR, (o) => this.onOwned(o)),
      podDisruptionBudgets: this.watch<V1PodDisruptionBudget>(
        options.reconciler.options.pdbApiVersion === 'policy/v1' ? RESOURCES.pdbV1 : RESOURCES.pdbV1beta1,
        MANAGED_SELECTOR,
        (o) => this.onOwned(o),
      ),
    };
    this.reconciler = new ClusterReconciler({ ...options.reconciler, client: options.client, caches: this.caches, logger: this.logger });
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  /** Starts the informers; workers start once every cache has synced. Returns at once. */
  start(): void {
    for (const informer of this.informers) informer.start();
    void this.startWorkersWhenSynced();
  }

  /** Stops taking work, lets in-flight reconciles finish, stops the informers. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.resyncTimer);
    this.queue.shutDown();
    await Promise.all(this.workers);
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  private watch<T extends ApiObject>(type: ResourceType, labelSelector: string | undefined, handler: (obj: T) => void): Cache<T> {
    const namespaces = this.options.namespaces.length ? this.options.namespaces : [undefined];
    const informers = namespaces.map(
      (namespace) => new ResilientInformer<T>({ client: this.options.client, type, namespace, labelSelector, logger: this.logger, backoff: this.options.informerBackoff }),
    );
    for (const informer of informers) {
      informer.on((_event, obj) => handler(obj));
      this.informers.push(informer as unknown as ResilientInformer<ApiObject>);
    }
    return new MultiCache(informers);
  }

  private async startWorkersWhenSynced(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.waitForSync()));
    if (this.stopped) return;
    this.synced = true;
    this.logger.info({ informers: this.informers.length }, 'caches synced; starting workers');
    this.resyncAll();
    this.resyncTimer = setInterval(() => this.resyncAll(), this.options.resyncPeriodMs);
    this.workers = Array.from({ length: this.options.workers }, () => this.work());
  }

  private resyncAll(): void {
    for (const cluster of this.caches.clusters.list()) this.enqueue(cluster.metadata.namespace, cluster.metadata.name);
    for (const link of this.caches.links.list()) this.onLink(link);
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const [namespace, name] = key.split('/') as [string, string];
      const started = Date.now();
      try {
        const result = await this.reconciler.reconcile(namespace, name);
        this.queue.forget(key);
        if (result.requeueAfterMs) this.queue.addAfter(key, result.requeueAfterMs);
        this.logger.debug({ cluster: key, ms: Date.now() - started }, 'reconciled');
      } catch (err) {
        const retryInMs = this.queue.addRateLimited(key);
        this.logger.warn({ cluster: key, err: describeError(err), retryInMs, failures: this.queue.requeues(key) }, 'reconcile failed');
      } finally {
        this.queue.done(key);
      }
    }
  }

  private enqueue(namespace: string | undefined, name: string | undefined): void {
    if (namespace && name) this.queue.add(`${namespace}/${name}`);
  }

  private onLink(link: ClusterLink): void {
    this.enqueue(link.metadata.namespace, link.spec.clusterRef);
    if (link.status?.clusterRef && link.status.clusterRef !== link.spec.clusterRef) this.enqueue(link.metadata.namespace, link.status.clusterRef);
  }

  private onOwned(obj: Owned): void {
    const owner = obj.metadata?.ownerReferences?.find((r) => r.kind === 'RegionalCluster' && r.apiVersion === RESOURCES.regionalCluster.apiVersion);
    this.enqueue(obj.metadata?.namespace, owner?.name ?? obj.metadata?.labels?.['app.kubernetes.io/instance']);
  }

  /** Owned Secrets go to their owner; other Secrets to every cluster or link (of the namespace) that names them. */
  private onSecret(secret: V1Secret): void {
    const { name, namespace } = secret.metadata ?? {};
    if (secret.metadata?.ownerReferences?.length) return this.onOwned(secret);
    if (!name || !namespace) return;
    for (const cluster of this.caches.clusters.list(namespace)) {
      const auth = cluster.spec.auth?.usersSecret?.name;
      if (auth === name || cluster.spec.listeners?.some((l) => l.tls?.secretName === name)) this.enqueue(namespace, cluster.metadata.name);
    }
    for (const link of this.caches.links.list(namespace)) {
      const { authentication: a, tls } = link.spec;
      if ([a?.passwordSecretRef?.name, a?.clientCertificateSecretRef?.name, tls?.caSecretRef?.name].includes(name)) this.onLink(link);
    }
  }
}
