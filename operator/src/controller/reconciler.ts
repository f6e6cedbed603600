/**
 * One reconcile of one RegionalCluster and the ClusterLinks that refer to it: observe (informer caches), render
 * (pure), server-side apply, observe the workloads and the brokers, write status, record Events. Links are
 * handled with their cluster so that one worker owns a cluster's links ConfigMap at a time; their finalizer is
 * removed only after the links ConfigMap no longer carries them and no link agent lists them any more (or, when
 * agents do not answer or keep listing it, after a bounded wait, with a Warning Event).
 */
import { randomBytes } from 'node:crypto';
import type { V1ConfigMap, V1Deployment, V1Pod, V1PodDisruptionBudget, V1Secret, V1Service, V1StatefulSet } from '@kubernetes/client-node';
import type { Logger } from '../../../broker/src/log/logger.js';
import { withClusterLinkDefaults, withRegionalClusterDefaults } from '../api/defaults.js';
import type { ClusterLink, Condition, RegionalCluster } from '../api/types.js';
import { summarizeIssues, validateClusterLink, validateRegionalCluster } from '../api/validate.js';
import { isConflict, isNotFound, type ApiObject, type KubeClient } from '../kube/client.js';
import type { EventRecorder } from '../kube/events.js';
import { describeError } from '../kube/informer.js';
import { RESOURCES } from '../kube/resources.js';
import { CONFIG_HASH_ANNOTATION, FIELD_MANAGER, objectNames, PORTS, renderRegionalCluster, type RenderedObject, type RenderResult, type SecretData } from '../render/index.js';
import { CLUSTER_SECRET_KEY } from '../render/names.js';
import { tlsSecretNames } from '../render/pod.js';
import { canonicalJson, sha256Hex } from '../render/serialize.js';
import { mergeAgentPolls, podsListing, type AgentEndpoint, type AgentPoll, type LinkAgents, type MergedAgents } from './link-agents.js';
import { clusterStatus, type ReconcileOutcome } from './cluster-status.js';
import { findCondition } from './conditions.js';
import { credentialsWithout, linkNamesIn, linksConfigMapWithout, removalStep } from './link-removal.js';
import { clusterLinkStatus, linkSecretProblems, type LinkPlacement } from './link-status.js';

export const LINK_FINALIZER = 'meridian.dev/link-cleanup';

export interface Cache<T> {
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): readonly T[];
}

export interface Caches {
  clusters: Cache<RegionalCluster>;
  links: Cache<ClusterLink>;
  secrets: Cache<V1Secret>;
  configMaps: Cache<V1ConfigMap>;
  services: Cache<V1Service>;
  statefulSets: Cache<V1StatefulSet>;
  deployments: Cache<V1Deployment>;
  pods: Cache<V1Pod>;
  podDisruptionBudgets: Cache<V1PodDisruptionBudget>;
}

export interface ReconcilerOptions {
  clusterDomain: string;
  pdbApiVersion: 'policy/v1' | 'policy/v1beta1';
  /** Admin port of the link agents (/api/v1/links) in the core pods. */
  linkAgentAdminPort: number;
  /** How often link status is refreshed from the link agents while some run. */
  linkStatusIntervalMs: number;
  /** How long after its deletion a ClusterLink waits for every agent to drop the link before its finalizer goes anyway. */
  linkRemovalTimeoutMs: number;
}

export interface ReconcilerDeps {
  client: KubeClient;
  caches: Caches;
  events: EventRecorder;
  agents: LinkAgents;
  logger: Logger;
  options: ReconcilerOptions;
}

export interface ReconcileResult {
  requeueAfterMs?: number;
}

/** A failed step, with the condition reason it maps to. */
class StepError extends Error {
  constructor(
    readonly reason: 'ApplyFailed' | 'RenderFailed' | 'ClusterSecretFailed',
    message: string,
  ) {
    super(message);
  }
}

interface Applied {
  render: RenderResult;
  statefulSet?: V1StatefulSet;
  deployment?: V1Deployment;
  clientService?: V1Service;
}

const nowIso = (): string => new Date().toISOString();
const objectKey = (o: ApiObject): string => `${o.kind}/${o.metadata?.namespace}/${o.metadata?.name}`;

/** A merge patch that sets `next` and removes the top-level fields of `previous` that `next` lacks. */
function replacingPatch(previous: object | undefined, next: object): Record<string, unknown> {
  const patch: Record<string, unknown> = { ...next };
  for (const key of Object.keys(previous ?? {})) if (!(key in next)) patch[key] = null;
  return patch;
}

const conditionChanged = (before: Condition | undefined, after: Condition | undefined): boolean =>
  before?.status !== after?.status || before?.reason !== after?.reason || before?.message !== after?.message;

export class ClusterReconciler {
  /** Per object: hash of the desired object this process last applied, and the object the apply left. */
  private readonly applied = new Map<string, { desired: string; resourceVersion?: string; generation?: number }>();
  /** Per ClusterLink being deleted (uid): how often its agents were found still listing it (for the back-off). */
  private readonly removalAttempts = new Map<string, number>();

  constructor(private readonly deps: ReconcilerDeps) {}

  async reconcile(namespace: string, name: string): Promise<ReconcileResult> {
    const raw = this.deps.caches.clusters.get(name, namespace);
    const links = this.deps.caches.links.list(namespace).filter((l) => l.spec.clusterRef === name);
    if (!raw || raw.metadata.deletionTimestamp) {
      if (!raw) this.forgetApplied(namespace, name);
      await this.reconcileOrphanLinks(name, links);
      return {};
    }
    const cluster = withRegionalClusterDefaults(raw);
    const secrets = this.referencedSecrets(cluster, links);
    const { outcome, applied, failure } = await this.validateAndApply(raw, cluster, links, secrets);
    const pods = this.podsOf(cluster);
    const endpoints = cluster.spec.linkAgent?.enabled === false ? [] : agentEndpoints(pods, this.deps.options.linkAgentAdminPort);
    const polls = links.length && endpoints.length ? await this.deps.agents.poll(endpoints) : [];
    const removalRetryMs = await this.reconcileLinks(cluster, links, secrets, applied?.render, outcome, polls);
    await this.writeClusterStatus(raw, cluster, outcome, pods, applied);
    if (failure) throw failure;
    const delays = [...(links.length && endpoints.length ? [this.deps.options.linkStatusIntervalMs] : []), ...(removalRetryMs === undefined ? [] : [removalRetryMs])];
    return delays.length ? { requeueAfterMs: Math.min(...delays) } : {};
  }

  // ---- the cluster ----

  private async validateAndApply(
    raw: RegionalCluster,
    cluster: RegionalCluster,
    links: readonly ClusterLink[],
    secrets: SecretData,
  ): Promise<{ outcome: ReconcileOutcome; applied?: Applied; failure?: StepError }> {
    const issues = validateRegionalCluster(cluster, { clusterName: raw.status?.clusterName, region: raw.status?.region });
    if (issues.length) return { outcome: { kind: 'invalid', issues } };
    try {
      const applied = await this.apply(raw, cluster, links, secrets);
      const { render } = applied;
      return { outcome: { kind: 'applied', objects: render.objects.length, configHash: render.configHash, replicantSelector: render.replicantSelector }, applied };
    } catch (err) {
      const failure = err instanceof StepError ? err : new StepError('ApplyFailed', describeError(err));
      await this.deps.events.record(raw, 'Warning', failure.reason, failure.message);
      return { outcome: { kind: 'failed', reason: failure.reason, message: failure.message }, failure };
    }
  }

  private referencedSecrets(cluster: RegionalCluster, links: readonly ClusterLink[]): SecretData {
    const names = new Set<string>(tlsSecretNames(cluster));
    if (cluster.spec.auth?.usersSecret) names.add(cluster.spec.auth.usersSecret.name);
    for (const link of links) {
      const { authentication: auth, tls } = link.spec;
      if (auth?.passwordSecretRef) names.add(auth.passwordSecretRef.name);
      if (auth?.clientCertificateSecretRef) names.add(auth.clientCertificateSecretRef.name);
      if (tls?.caSecretRef) names.add(tls.caSecretRef.name);
    }
    const data: SecretData = {};
    for (const secretName of [...names].sort()) {
      const secret = this.deps.caches.secrets.get(secretName, cluster.metadata.namespace);
      if (secret) data[secretName] = secret.data ?? {};
    }
    return data;
  }

  private render(cluster: RegionalCluster, links: readonly ClusterLink[], secrets: SecretData, clusterSecret: string): RenderResult {
    try {
      return renderRegionalCluster({
        cluster,
        links,
        clusterSecret,
        secrets,
        options: { clusterDomain: this.deps.options.clusterDomain, pdbApiVersion: this.deps.options.pdbApiVersion },
      });
    } catch (err) {
      throw new StepError('RenderFailed', describeError(err));
    }
  }

  /** The cluster secret's value: the existing one, or a new one created once (a second writer loses with 409). */
  private async clusterSecret(raw: RegionalCluster, cluster: RegionalCluster, links: readonly ClusterLink[], secrets: SecretData): Promise<string> {
    const { namespace } = cluster.metadata;
    const name = objectNames(cluster).clusterSecret;
    const decode = (s: V1Secret | undefined): string | undefined => {
      const value = s?.data?.[CLUSTER_SECRET_KEY];
      return value ? Buffer.from(value, 'base64').toString('utf8') : undefined;
    };
    try {
      // The cache may lag behind a Secret this operator just created: ask the server before generating.
      const existing = this.deps.caches.secrets.get(name, namespace) ?? (await this.deps.client.get<V1Secret>(RESOURCES.secret, namespace, name));
      const value = decode(existing);
      if (value) return value;
      const generated = randomBytes(32).toString('base64url');
      if (existing) return generated;
      const secret = this.render(cluster, links, secrets, generated).objects.find((o) => o.kind === 'Secret' && o.metadata?.name === name);
      if (!secret) throw new Error(`render produced no Secret ${name}`);
      try {
        await this.deps.client.create(secret, FIELD_MANAGER);
      } catch (err) {
        if (!isConflict(err)) throw err;
        const raced = decode(await this.deps.client.get<V1Secret>(RESOURCES.secret, namespace, name));
        if (!raced) throw new Error(`Secret ${name} exists but has no key ${CLUSTER_SECRET_KEY}`);
        return raced;
      }
      await this.deps.events.record(raw, 'Normal', 'ClusterSecretCreated', `generated the cluster secret in Secret ${name}`);
      return generated;
    } catch (err) {
      if (err instanceof StepError) throw err;
      throw new StepError('ClusterSecretFailed', `cluster secret ${name}: ${describeError(err)}`);
    }
  }

  private cached(obj: RenderedObject): ApiObject | undefined {
    const { name, namespace } = obj.metadata ?? {};
    if (!name) return undefined;
    const caches = this.deps.caches;
    const cache: Cache<ApiObject> | undefined = (
      {
        ConfigMap: caches.configMaps,
        Secret: caches.secrets,
        Service: caches.services,
        StatefulSet: caches.statefulSets,
        Deployment: caches.deployments,
        PodDisruptionBudget: caches.podDisruptionBudgets,
      } as Record<string, Cache<ApiObject>>
    )[obj.kind ?? ''];
    return cache?.get(name, namespace);
  }

  private async apply(raw: RegionalCluster, cluster: RegionalCluster, links: readonly ClusterLink[], secrets: SecretData): Promise<Applied> {
    const clusterSecret = await this.clusterSecret(raw, cluster, links, secrets);
    const render = this.render(cluster, links, secrets, clusterSecret);
    const names = objectNames(cluster);
    const previousHash = this.deps.caches.statefulSets.get(names.core, cluster.metadata.namespace)?.spec?.template.metadata?.annotations?.[CONFIG_HASH_ANNOTATION];
    const changed: string[] = [];
    const result: Applied = { render };
    for (const obj of render.objects) {
      const { live, changed: didChange } = await this.applyObject(obj);
      if (didChange) changed.push(`${obj.kind}/${obj.metadata?.name}`);
      if (obj.kind === 'StatefulSet') result.statefulSet = live as V1StatefulSet | undefined;
      if (obj.kind === 'Deployment') result.deployment = live as V1Deployment | undefined;
      if (obj.kind === 'Service' && obj.metadata?.name === names.clientService) result.clientService = live as V1Service | undefined;
    }
    changed.push(...(await this.deleteDisabledBudgets(cluster, render)));
    if (changed.length) await this.deps.events.record(raw, 'Normal', 'Applied', `applied ${changed.join(', ')}`);
    if (previousHash && previousHash !== render.configHash) {
      await this.deps.events.record(raw, 'Normal', 'RollingUpdate', `startup configuration changed (config hash ${previousHash.slice(0, 12)} → ${render.configHash.slice(0, 12)}): pods roll`);
    }
    return result;
  }

  /**
   * Server-side applies one object, unless this process applied the same desired object before and the live one
   * is still what that apply left (same resourceVersion): kube-apiserver before 1.23 rewrites managedFields
   * timestamps on some no-op applies (StatefulSets with claim templates), which would make every reconcile a
   * write and a watch event. "Changed" means the apply changed the object: for workloads their generation
   * (spec), for the rest their resourceVersion.
   */
  private async applyObject(obj: RenderedObject): Promise<{ live: ApiObject | undefined; changed: boolean }> {
    const key = objectKey(obj);
    const desired = sha256Hex(canonicalJson(obj));
    const cached = this.cached(obj) as (ApiObject & { metadata?: { generation?: number } }) | undefined;
    const last = this.applied.get(key);
    if (last && last.desired === desired && cached?.metadata?.resourceVersion === last.resourceVersion) return { live: cached, changed: false };
    let after: ApiObject & { metadata?: { generation?: number } };
    try {
      after = await this.deps.client.apply(obj, FIELD_MANAGER);
    } catch (err) {
      this.applied.delete(key);
      throw new StepError('ApplyFailed', `applying ${obj.kind} ${obj.metadata?.name}: ${describeError(err)}`);
    }
    const before = last ?? (cached?.metadata ? { resourceVersion: cached.metadata.resourceVersion, generation: cached.metadata.generation } : undefined);
    const workload = obj.kind === 'StatefulSet' || obj.kind === 'Deployment';
    const changed = !before || (workload ? before.generation !== after.metadata?.generation : before.resourceVersion !== after.metadata?.resourceVersion);
    this.applied.set(key, { desired, resourceVersion: after.metadata?.resourceVersion, generation: after.metadata?.generation });
    if (changed) this.deps.logger.debug({ object: key, before, after: after.metadata?.resourceVersion }, 'apply changed the object');
    return { live: after, changed };
  }

  private forgetApplied(namespace: string, name: string): void {
    const names = objectNames({ metadata: { name } } as RegionalCluster);
    for (const key of this.applied.keys()) {
      const [, ns, objectName] = key.split('/');
      if (ns === namespace && Object.values(names).includes(objectName ?? '')) this.applied.delete(key);
    }
  }

  /** A disruption budget turned off in the spec: delete the one this cluster owns. */
  private async deleteDisabledBudgets(cluster: RegionalCluster, render: RenderResult): Promise<string[]> {
    const names = objectNames(cluster);
    const type = this.deps.options.pdbApiVersion === 'policy/v1' ? RESOURCES.pdbV1 : RESOURCES.pdbV1beta1;
    const rendered = new Set(render.objects.filter((o) => o.kind === 'PodDisruptionBudget').map((o) => o.metadata?.name));
    const deleted: string[] = [];
    for (const name of [names.core, names.replicant].filter((n) => !rendered.has(n))) {
      const pdb = this.deps.caches.podDisruptionBudgets.get(name, cluster.metadata.namespace);
      if (!pdb?.metadata?.ownerReferences?.some((r) => r.uid === cluster.metadata.uid)) continue;
      try {
        await this.deps.client.delete(type, cluster.metadata.namespace, name);
      } catch (err) {
        throw new StepError('ApplyFailed', `deleting PodDisruptionBudget ${name}: ${describeError(err)}`);
      }
      this.applied.delete(`PodDisruptionBudget/${cluster.metadata.namespace}/${name}`);
      deleted.push(`deleted PodDisruptionBudget/${name}`);
    }
    return deleted;
  }

  private podsOf(cluster: RegionalCluster): V1Pod[] {
    return this.deps.caches.pods
      .list(cluster.metadata.namespace)
      .filter((p) => p.metadata?.labels?.['app.kubernetes.io/name'] === 'meridian' && p.metadata.labels['app.kubernetes.io/instance'] === cluster.metadata.name);
  }

  private async writeClusterStatus(raw: RegionalCluster, cluster: RegionalCluster, outcome: ReconcileOutcome, pods: V1Pod[], applied: Applied | undefined): Promise<void> {
    const names = objectNames(cluster);
    const ns = cluster.metadata.namespace;
    const status = clusterStatus({
      cluster: raw.status ? { ...cluster, status: raw.status } : cluster,
      outcome,
      statefulSet: applied?.statefulSet ?? this.deps.caches.statefulSets.get(names.core, ns),
      deployment: applied?.deployment ?? this.deps.caches.deployments.get(names.replicant, ns),
      clientService: applied?.clientService ?? this.deps.caches.services.get(names.clientService, ns),
      pods,
      now: nowIso(),
    });
    const before = findCondition(raw.status?.conditions, 'ConfigApplied');
    const after = findCondition(status.conditions, 'ConfigApplied');
    if (outcome.kind === 'invalid' && conditionChanged(before, after)) await this.deps.events.record(raw, 'Warning', 'InvalidSpec', summarizeIssues(outcome.issues));
    if (canonicalJson(raw.status ?? {}) === canonicalJson(status)) return;
    await this.patchStatus(RESOURCES.regionalCluster, raw, replacingPatch(raw.status, status));
  }

  private async patchStatus(type: typeof RESOURCES.regionalCluster | typeof RESOURCES.clusterLink, obj: ApiObject, status: Record<string, unknown>): Promise<void> {
    try {
      await this.deps.client.mergePatch(type, obj.metadata?.namespace, obj.metadata?.name ?? '', { status }, { subresource: 'status', fieldManager: FIELD_MANAGER });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  // ---- the links ----

  private async reconcileLinks(
    cluster: RegionalCluster,
    links: readonly ClusterLink[],
    secrets: SecretData,
    render: RenderResult | undefined,
    outcome: ReconcileOutcome,
    polls: readonly AgentPoll[],
  ): Promise<number | undefined> {
    const agents = mergeAgentPolls(polls);
    let retryMs: number | undefined;
    for (const raw of links) {
      if (raw.metadata.deletionTimestamp) {
        const wait = await this.finalizeLink(cluster, raw, links, render !== undefined, polls);
        if (wait !== undefined) retryMs = Math.min(retryMs ?? wait, wait);
        continue;
      }
      await this.ensureFinalizer(raw);
      const link = withClusterLinkDefaults(raw);
      const issues = validateClusterLink(link, cluster, { clusterRef: raw.status?.clusterRef, remoteClusterName: raw.status?.remoteClusterName });
      const placement = issues.length ? ({ kind: 'invalid', issues } as const) : this.placement(cluster, link, render, outcome);
      await this.writeLinkStatus(raw, link, placement, linkSecretProblems(link, secrets), agents);
    }
    return retryMs;
  }

  /**
   * Where a valid link ended up: in the links file or left out by this render (and why); without a render (invalid
   * cluster, failed apply) the agents keep the last applied file, so the live ConfigMap tells.
   */
  private placement(cluster: RegionalCluster, link: ClusterLink, render: RenderResult | undefined, outcome: ReconcileOutcome): LinkPlacement {
    const configMap = objectNames(cluster).linksConfigMap;
    if (render) {
      const skipped = render.links.skipped.find((s) => s.link === link.metadata.name);
      return skipped ? { kind: 'skipped', skipped } : { kind: 'included', configMap };
    }
    if (linkNamesIn(this.deps.caches.configMaps.get(configMap, cluster.metadata.namespace)).has(link.spec.remote.clusterName)) return { kind: 'included', configMap };
    const reason = outcome.kind === 'invalid' ? 'InvalidSpec' : 'NotApplied';
    const message = outcome.kind === 'invalid' ? summarizeIssues(outcome.issues) : outcome.kind === 'failed' ? outcome.message : 'not rendered';
    return { kind: 'clusterNotApplied', cluster: cluster.metadata.name, reason, message };
  }

  private async writeLinkStatus(
    raw: ClusterLink,
    link: ClusterLink,
    placement: LinkPlacement,
    secretProblems: readonly string[],
    agents: MergedAgents | undefined,
  ): Promise<void> {
    const status = clusterLinkStatus({
      link: raw.status ? { ...link, status: raw.status } : link,
      placement,
      secretProblems,
      runtime: agents?.links.get(link.spec.remote.clusterName),
      agentsAnswered: (agents?.answered ?? 0) > 0,
      agentFileErrors: agents?.fileErrors,
      now: nowIso(),
    });
    const before = findCondition(raw.status?.conditions, 'Configured');
    const after = findCondition(status.conditions, 'Configured');
    if (after && conditionChanged(before, after)) {
      await this.deps.events.record(raw, after.status === 'True' ? 'Normal' : 'Warning', after.status === 'True' ? 'Configured' : after.reason, after.message);
    }
    if (canonicalJson(raw.status ?? {}) === canonicalJson(status)) return;
    await this.patchStatus(RESOURCES.clusterLink, raw, replacingPatch(raw.status, status));
  }

  private async ensureFinalizer(link: ClusterLink): Promise<void> {
    const finalizers = link.metadata.finalizers ?? [];
    if (finalizers.includes(LINK_FINALIZER)) return;
    await this.patchFinalizers(link, [...finalizers, LINK_FINALIZER]);
  }

  private async patchFinalizers(link: ClusterLink, finalizers: string[]): Promise<void> {
    try {
      await this.deps.client.mergePatch(RESOURCES.clusterLink, link.metadata.namespace, link.metadata.name, {
        metadata: { finalizers, resourceVersion: link.metadata.resourceVersion },
      });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /**
   * A ClusterLink being deleted: it is no longer in the links ConfigMap (the render leaves deleted links out; when
   * the cluster could not be rendered it is cut out of the live ConfigMap); the agents drop it when the kubelet has
   * updated their mounted file. The finalizer goes once no agent lists the link; until then the cluster is requeued
   * with back-off (the returned delay), and after linkRemovalTimeoutMs the finalizer goes anyway with a Warning
   * Event naming the agents that still list it or did not answer (a dead pod must not block the deletion).
   */
  private async finalizeLink(cluster: RegionalCluster, link: ClusterLink, links: readonly ClusterLink[], rendered: boolean, polls: readonly AgentPoll[]): Promise<number | undefined> {
    const finalizers = link.metadata.finalizers ?? [];
    if (!finalizers.includes(LINK_FINALIZER)) return undefined;
    const remote = link.spec.remote.clusterName;
    const configMap = objectNames(cluster).linksConfigMap;
    const sharedRemote = links.some((l) => l !== link && !l.metadata.deletionTimestamp && l.spec.remote.clusterName === remote);
    if (sharedRemote) return this.removeFinalizer(link, 'Normal', 'LinkRemoved', `another ClusterLink of ${cluster.metadata.name} links to ${remote}: the agents keep that link`);
    if (!rendered) await this.cutLinkFromLiveObjects(cluster, remote);
    const uid = link.metadata.uid ?? link.metadata.name;
    const attempt = this.removalAttempts.get(uid) ?? 0;
    const step = removalStep({
      remote,
      configMap,
      listing: podsListing(polls, remote),
      unanswered: polls.flatMap((p) => ('error' in p ? [p.error] : [])),
      asked: polls.length,
      waitedMs: Date.now() - Date.parse(link.metadata.deletionTimestamp ?? ''),
      timeoutMs: this.deps.options.linkRemovalTimeoutMs,
      attempt,
    });
    if (step.kind === 'remove') return this.removeFinalizer(link, step.type, step.reason, step.message);
    this.removalAttempts.set(uid, attempt + 1);
    if (step.event) await this.deps.events.record(link, 'Normal', 'AwaitingAgents', step.event);
    return step.retryInMs;
  }

  private async removeFinalizer(link: ClusterLink, type: 'Normal' | 'Warning', reason: string, message: string): Promise<undefined> {
    await this.patchFinalizers(link, (link.metadata.finalizers ?? []).filter((f) => f !== LINK_FINALIZER));
    this.removalAttempts.delete(link.metadata.uid ?? link.metadata.name);
    await this.deps.events.record(link, type, reason, message);
    return undefined;
  }

  private async cutLinkFromLiveObjects(cluster: RegionalCluster, remote: string): Promise<void> {
    const names = objectNames(cluster);
    const ns = cluster.metadata.namespace;
    const configMap = this.deps.caches.configMaps.get(names.linksConfigMap, ns);
    const credentials = this.deps.caches.secrets.get(names.linkCredentials, ns);
    const updates = [configMap && linksConfigMapWithout(configMap, remote), credentials && credentialsWithout(credentials, remote)];
    for (const obj of updates) if (obj) await this.deps.client.apply(obj, FIELD_MANAGER);
  }

  /** Links whose RegionalCluster is gone or going: nothing to remove them from; their status says why. */
  private async reconcileOrphanLinks(clusterName: string, links: readonly ClusterLink[]): Promise<void> {
    for (const raw of links) {
      const finalizers = raw.metadata.finalizers ?? [];
      if (raw.metadata.deletionTimestamp) {
        if (!finalizers.includes(LINK_FINALIZER)) continue;
        await this.patchFinalizers(raw, finalizers.filter((f) => f !== LINK_FINALIZER));
        await this.deps.events.record(raw, 'Normal', 'LinkRemoved', `RegionalCluster ${clusterName} is gone: no broker carries this link`);
        continue;
      }
      await this.ensureFinalizer(raw);
      const link = withClusterLinkDefaults(raw);
      const issues = validateClusterLink(link, undefined, { clusterRef: raw.status?.clusterRef, remoteClusterName: raw.status?.remoteClusterName });
      const placement: LinkPlacement = issues.length ? { kind: 'invalid', issues } : { kind: 'clusterMissing', cluster: clusterName };
      const secrets = this.linkSecrets(link);
      await this.writeLinkStatus(raw, link, placement, linkSecretProblems(link, secrets), undefined);
    }
  }

  private linkSecrets(link: ClusterLink): SecretData {
    const names = [link.spec.authentication?.passwordSecretRef?.name, link.spec.authentication?.clientCertificateSecretRef?.name, link.spec.tls?.caSecretRef?.name];
    const data: SecretData = {};
    for (const name of names) {
      const secret = name ? this.deps.caches.secrets.get(name, link.metadata.namespace) : undefined;
      if (name && secret) data[name] = secret.data ?? {};
    }
    return data;
  }
}

/**
 * The link agents to ask: the agent-admin port of every core pod that runs (Ready, or phase Running: the agent
 * answers even while its broker is not ready) and has an IP, unless it is being deleted.
 */
export function agentEndpoints(pods: readonly V1Pod[], port: number = PORTS.linkAgentAdmin): AgentEndpoint[] {
  return pods.flatMap((pod) => {
    const ready = pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
    const running = ready || pod.status?.phase === 'Running';
    const ip = pod.status?.podIP;
    if (pod.metadata?.labels?.['app.kubernetes.io/component'] !== 'core' || !running || !ip || pod.metadata.deletionTimestamp) return [];
    return [{ pod: pod.metadata.name ?? ip, host: ip, port }];
  });
}
