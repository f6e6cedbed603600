/**
 * A RegionalCluster's status from what the reconcile did and what it observed (pure). Readiness comes from the
 * workloads' own status, written by the StatefulSet and Deployment controllers: where none runs (or has not
 * caught up), the status says so instead of guessing.
 */
import type { V1Deployment, V1DeploymentStatus, V1Pod, V1Service, V1StatefulSet, V1StatefulSetStatus } from '@kubernetes/client-node';
import {
  MAX_STATUS_NODES,
  type ListenerStatus,
  type NodeRole,
  type NodeStatus,
  type RegionalCluster,
  type RegionalClusterStatus,
} from '../api/types.js';
import { summarizeIssues, type ValidationIssue } from '../api/validate.js';
import { CONFIG_HASH_ANNOTATION, objectNames } from '../render/index.js';
import { condition, mergeConditions, type ConditionInput } from './conditions.js';

export type ReconcileOutcome =
  | { kind: 'applied'; objects: number; configHash: string; replicantSelector: string }
  | { kind: 'invalid'; issues: ValidationIssue[] }
  | { kind: 'failed'; reason: 'ApplyFailed' | 'RenderFailed' | 'ClusterSecretFailed'; message: string };

export interface ClusterObservation {
  /** The RegionalCluster as read, schema defaults applied. */
  cluster: RegionalCluster;
  outcome: ReconcileOutcome;
  statefulSet?: V1StatefulSet;
  deployment?: V1Deployment;
  clientService?: V1Service;
  pods: readonly V1Pod[];
  now: string;
}

interface WorkloadState {
  desired: number;
  replicas: number;
  ready: number;
  progressing: ConditionInput;
}

const hashPrefix = (hash: string | undefined): string => (hash ? hash.slice(0, 12) : 'none');

function notObserved(kind: string, generation: number | undefined, observed: number | undefined): string | undefined {
  if (observed !== undefined && generation !== undefined && observed >= generation) return undefined;
  return observed === undefined
    ? `the ${kind} controller has not reported on this ${kind} yet (is kube-controller-manager running?)`
    : `the ${kind} controller has observed generation ${observed} of ${generation}`;
}

function coreState(type: string, desired: number, sts: V1StatefulSet | undefined): WorkloadState {
  if (!sts) return { desired, replicas: 0, ready: 0, progressing: condition(type, 'True', 'Pending', 'the core StatefulSet does not exist yet') };
  const s: Partial<V1StatefulSetStatus> = sts.status ?? {};
  const base = { desired, replicas: s.replicas ?? 0, ready: s.readyReplicas ?? 0 };
  const waiting = notObserved('StatefulSet', sts.metadata?.generation, s.observedGeneration);
  if (waiting) return { ...base, progressing: condition(type, 'True', 'AwaitingController', waiting) };
  const updated = s.updatedReplicas ?? 0;
  if ((s.updateRevision && s.currentRevision !== s.updateRevision) || updated < desired) {
    return { ...base, progressing: condition(type, 'True', 'RollingUpdate', `${updated}/${desired} core nodes on revision ${s.updateRevision ?? 'unknown'}`) };
  }
  if (base.ready < desired || base.replicas !== desired) {
    return { ...base, progressing: condition(type, 'True', 'NodesStarting', `${base.ready}/${desired} core nodes ready`) };
  }
  return { ...base, progressing: condition(type, 'False', 'RolloutComplete', `${desired} core nodes ready on revision ${s.currentRevision ?? 'unknown'}`) };
}

function replicantState(type: string, desired: number, deployment: V1Deployment | undefined): WorkloadState {
  if (!deployment) return { desired, replicas: 0, ready: 0, progressing: condition(type, 'True', 'Pending', 'the replicant Deployment does not exist yet') };
  const s: Partial<V1DeploymentStatus> = deployment.status ?? {};
  const base = { desired, replicas: s.replicas ?? 0, ready: s.readyReplicas ?? 0 };
  const waiting = notObserved('Deployment', deployment.metadata?.generation, s.observedGeneration);
  if (waiting) return { ...base, progressing: condition(type, 'True', 'AwaitingController', waiting) };
  const updated = s.updatedReplicas ?? 0;
  if (updated < desired || base.replicas > desired) {
    return { ...base, progressing: condition(type, 'True', 'RollingUpdate', `${updated}/${desired} replicant nodes updated`) };
  }
  if (base.ready < desired) return { ...base, progressing: condition(type, 'True', 'NodesStarting', `${base.ready}/${desired} replicant nodes ready`) };
  return { ...base, progressing: condition(type, 'False', 'RolloutComplete', `${desired} replicant nodes ready`) };
}

function configApplied(outcome: ReconcileOutcome): ConditionInput {
  switch (outcome.kind) {
    case 'applied':
      return condition('ConfigApplied', 'True', 'Applied', `applied ${outcome.objects} objects; config hash ${hashPrefix(outcome.configHash)}`);
    case 'invalid':
      return condition('ConfigApplied', 'False', 'InvalidSpec', summarizeIssues(outcome.issues));
    case 'failed':
      return condition('ConfigApplied', 'False', outcome.reason, outcome.message);
  }
}

function ready(applied: ConditionInput, core: WorkloadState, replicant: WorkloadState): ConditionInput {
  if (applied.status !== 'True') return condition('Ready', 'False', applied.reason, applied.message);
  const counts = `core ${core.ready}/${core.desired} ready, replicant ${replicant.ready}/${replicant.desired} ready`;
  const busy = [core.progressing, replicant.progressing].find((c) => c.status === 'True');
  if (!busy) return condition('Ready', 'True', 'AllNodesReady', counts);
  return condition('Ready', 'False', busy.reason === 'AwaitingController' ? 'AwaitingController' : 'NodesNotReady', `${counts}; ${busy.message}`);
}

function available(core: WorkloadState, replicant: WorkloadState): ConditionInput {
  const counts = `${core.ready} core and ${replicant.ready} replicant nodes ready`;
  return core.ready > 0 ? condition('Available', 'True', 'NodesAvailable', counts) : condition('Available', 'False', 'NoCoreNodesReady', counts);
}

function listenerStatuses(cluster: RegionalCluster, service: V1Service | undefined): ListenerStatus[] {
  const name = objectNames(cluster).clientService;
  const ingress = service?.spec?.type === 'LoadBalancer' ? service.status?.loadBalancer?.ingress ?? [] : [];
  return (cluster.spec.listeners ?? []).map((l) => {
    const external = ingress.flatMap((i) => (i.ip ?? i.hostname ? [`${i.ip ?? i.hostname}:${l.port}`] : [])).slice(0, 16);
    return {
      name: l.name,
      protocol: l.protocol,
      port: l.port,
      address: `${name}.${cluster.metadata.namespace}.svc:${l.port}`,
      ...(external.length ? { externalAddresses: external } : {}),
    };
  });
}

const podReady = (pod: V1Pod): boolean => pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

/** Up to MAX_STATUS_NODES nodes, cores first, by name. */
export function nodeStatuses(pods: readonly V1Pod[]): NodeStatus[] {
  const nodes = pods.flatMap((pod): NodeStatus[] => {
    const role = pod.metadata?.labels?.['app.kubernetes.io/component'];
    if ((role !== 'core' && role !== 'replicant') || !pod.metadata?.name || pod.metadata.deletionTimestamp) return [];
    const hash = pod.metadata.annotations?.[CONFIG_HASH_ANNOTATION];
    return [{ name: pod.metadata.name, role: role as NodeRole, ready: podReady(pod), ...(hash ? { configHash: hash } : {}) }];
  });
  const rank = (n: NodeStatus): number => (n.role === 'core' ? 0 : 1);
  return nodes.sort((a, b) => rank(a) - rank(b) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).slice(0, MAX_STATUS_NODES);
}

export function clusterStatus(obs: ClusterObservation): RegionalClusterStatus {
  const { cluster, outcome } = obs;
  const previous = cluster.status ?? {};
  const core = coreState('CoreNodesProgressing', cluster.spec.core?.replicas ?? 0, obs.statefulSet);
  const replicant = replicantState('ReplicantNodesProgressing', cluster.spec.replicant?.replicas ?? 0, obs.deployment);
  const applied = configApplied(outcome);
  const conditions = [ready(applied, core, replicant), available(core, replicant), core.progressing, replicant.progressing, applied];
  const accepted = outcome.kind === 'invalid' ? { clusterName: previous.clusterName, region: previous.region } : { clusterName: previous.clusterName ?? cluster.spec.clusterName, region: previous.region ?? cluster.spec.region };
  const status: RegionalClusterStatus = {
    observedGeneration: cluster.metadata.generation,
    conditions: mergeConditions(previous.conditions, conditions, cluster.metadata.generation, obs.now),
    ...(accepted.clusterName === undefined ? {} : { clusterName: accepted.clusterName }),
    ...(accepted.region === undefined ? {} : { region: accepted.region }),
    coreReplicas: core.replicas,
    readyCoreReplicas: core.ready,
    replicantReplicas: replicant.replicas,
    readyReplicantReplicas: replicant.ready,
  };
  const selector = outcome.kind === 'applied' ? outcome.replicantSelector : previous.replicantSelector;
  if (selector) status.replicantSelector = selector;
  const revisions = obs.statefulSet?.status;
  if (revisions?.currentRevision) status.currentRevision = revisions.currentRevision;
  if (revisions?.updateRevision) status.updateRevision = revisions.updateRevision;
  const hash = outcome.kind === 'applied' ? outcome.configHash : previous.configHash;
  if (hash) status.configHash = hash;
  if (outcome.kind !== 'invalid') status.listeners = listenerStatuses(cluster, obs.clientService);
  else if (previous.listeners) status.listeners = previous.listeners;
  status.nodes = nodeStatuses(obs.pods);
  return status;
}
