/**
 * A ClusterLink's status (pure). Configured and SecretsResolved are known from the operator's own work (the
 * render and the Secrets it read); Connected and Ready come from what the brokers report on `/api/v1/links`,
 * and are Unknown (reason LinkStatusUnavailable) while no broker answers.
 */
import type { ClusterLink, ClusterLinkStatus } from '../api/types.js';
import { summarizeIssues, type ValidationIssue } from '../api/validate.js';
import type { SecretData, SkippedLink } from '../render/index.js';
import type { LinkRuntimeStatus } from './broker-links.js';
import { condition, mergeConditions, type ConditionInput } from './conditions.js';

/** Where the link's cluster stands, as far as this link is concerned. */
export type LinkPlacement =
  | { kind: 'included'; configMap: string }
  | { kind: 'skipped'; skipped: SkippedLink }
  | { kind: 'clusterMissing'; cluster: string }
  | { kind: 'clusterNotApplied'; cluster: string; reason: string; message: string }
  | { kind: 'invalid'; issues: ValidationIssue[] };

export interface LinkObservation {
  /** The ClusterLink as read, schema defaults applied. */
  link: ClusterLink;
  placement: LinkPlacement;
  /** Problems with the Secrets the link names (empty: all found). */
  secretProblems: readonly string[];
  /** What the brokers report for this link; undefined when no broker answered. */
  runtime: LinkRuntimeStatus | undefined;
  /** Whether any broker answered at all (a link missing from an answer has not been loaded yet). */
  brokersAnswered: boolean;
  now: string;
}

/** The Secrets a link names and whether they hold the keys it needs. */
export function linkSecretProblems(link: ClusterLink, secrets: SecretData): string[] {
  const needs: [string, string][] = [];
  const auth = link.spec.authentication;
  if (auth?.passwordSecretRef) needs.push([auth.passwordSecretRef.name, auth.passwordSecretRef.key ?? 'password']);
  if (auth?.clientCertificateSecretRef) needs.push([auth.clientCertificateSecretRef.name, 'tls.crt'], [auth.clientCertificateSecretRef.name, 'tls.key']);
  if (link.spec.tls?.caSecretRef) needs.push([link.spec.tls.caSecretRef.name, link.spec.tls.caSecretRef.key ?? 'ca.crt']);
  const problems = needs.flatMap(([name, key]) => {
    if (!secrets[name]) return [`Secret ${name} not found`];
    return secrets[name][key] === undefined ? [`Secret ${name} has no key ${key}`] : [];
  });
  return [...new Set(problems)];
}

function configured(placement: LinkPlacement): ConditionInput {
  switch (placement.kind) {
    case 'included':
      return condition('Configured', 'True', 'Applied', `in the link agents' configuration (ConfigMap ${placement.configMap})`);
    case 'skipped':
      return condition('Configured', 'False', placement.skipped.reason, placement.skipped.message);
    case 'invalid':
      return condition('Configured', 'False', placement.issues[0]?.reason ?? 'InvalidSpec', summarizeIssues(placement.issues));
    case 'clusterMissing':
      return condition('Configured', 'False', 'ClusterNotFound', `RegionalCluster ${placement.cluster} not found in this namespace`);
    case 'clusterNotApplied':
      return condition('Configured', 'False', 'ClusterNotConfigured', `RegionalCluster ${placement.cluster} is not applied (${placement.reason}): ${placement.message}`);
  }
}

function connected(obs: LinkObservation, configuredCondition: ConditionInput): ConditionInput {
  if (configuredCondition.status !== 'True') return condition('Connected', 'False', 'NotConfigured', 'the link is not in the link agents\' configuration');
  if (obs.link.spec.enabled === false) return condition('Connected', 'False', 'Disabled', 'spec.enabled is false');
  if (!obs.brokersAnswered) return condition('Connected', 'Unknown', 'LinkStatusUnavailable', 'no broker answered on /api/v1/links (no ready core node reachable, or the API is not served yet)');
  const runtime = obs.runtime;
  if (!runtime) return condition('Connected', 'Unknown', 'LinkStatusUnavailable', 'the brokers do not report this link yet (configuration not reloaded?)');
  if (runtime.state === 'Connected') return condition('Connected', 'True', 'Connected', `connected to ${obs.link.spec.remote.clusterName}`);
  return condition('Connected', 'False', runtime.reason ?? 'RemoteUnreachable', runtime.message ?? `link is ${runtime.state}`);
}

function ready(configuredCondition: ConditionInput, connectedCondition: ConditionInput): ConditionInput {
  if (configuredCondition.status !== 'True') return condition('Ready', 'False', configuredCondition.reason, configuredCondition.message);
  if (connectedCondition.status === 'True') return condition('Ready', 'True', 'Connected', connectedCondition.message);
  return condition('Ready', connectedCondition.status, connectedCondition.reason, connectedCondition.message);
}

function secretsResolved(problems: readonly string[]): ConditionInput {
  return problems.length
    ? condition('SecretsResolved', 'False', 'SecretNotFound', problems.join('; '))
    : condition('SecretsResolved', 'True', 'Resolved', 'every referenced Secret and key exists');
}

export function clusterLinkStatus(obs: LinkObservation): ClusterLinkStatus {
  const { link } = obs;
  const previous = link.status ?? {};
  const configuredCondition = configured(obs.placement);
  const connectedCondition = connected(obs, configuredCondition);
  const conditions = [ready(configuredCondition, connectedCondition), connectedCondition, configuredCondition, secretsResolved(obs.secretProblems)];
  const accepted = obs.placement.kind === 'invalid' || (obs.placement.kind === 'skipped' && obs.placement.skipped.reason !== 'SecretNotFound')
    ? { clusterRef: previous.clusterRef, remoteClusterName: previous.remoteClusterName }
    : { clusterRef: previous.clusterRef ?? link.spec.clusterRef, remoteClusterName: previous.remoteClusterName ?? link.spec.remote.clusterName };
  const status: ClusterLinkStatus = {
    observedGeneration: link.metadata.generation,
    conditions: mergeConditions(previous.conditions, conditions, link.metadata.generation, obs.now),
    ...(accepted.clusterRef === undefined ? {} : { clusterRef: accepted.clusterRef }),
    ...(accepted.remoteClusterName === undefined ? {} : { remoteClusterName: accepted.remoteClusterName }),
  };
  const runtime = obs.runtime;
  if (runtime && configuredCondition.status === 'True') {
    status.state = runtime.state;
    for (const key of ['routesSent', 'routesReceived', 'queueDepth', 'queueBytes', 'lagSeconds'] as const) {
      if (runtime[key] !== undefined) status[key] = runtime[key];
    }
    if (runtime.lastConnectedTime) status.lastConnectedTime = runtime.lastConnectedTime;
    if (runtime.message && runtime.state !== 'Connected') status.lastError = runtime.message;
  } else if (previous.lastConnectedTime) {
    status.lastConnectedTime = previous.lastConnectedTime;
  }
  return status;
}
