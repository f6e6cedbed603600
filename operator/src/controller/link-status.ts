/**
 * A ClusterLink's status (pure). Configured and SecretsResolved are known from the operator's own work (the
 * render and the Secrets it read); Connected and Ready come from what the link agents report on `/api/v1/links`
 * (merged over the agents of the cluster's core pods), and are Unknown (reason LinkStatusUnavailable) while no
 * agent answers. lastConnectedTime is the agent's `connectedSince` (when its current connection became connected);
 * for agents that do not report it, when the operator saw the link become connected (accurate to the status
 * interval). An agent that cannot apply its links file (`fileError`) runs the previous one: the links of its cluster
 * are then Configured=False with reason LinksFileError (the current spec may not be what runs).
 */
import type { ClusterLink, ClusterLinkStatus } from '../api/types.js';
import { summarizeIssues, type ValidationIssue } from '../api/validate.js';
import type { SecretData, SkippedLink } from '../render/index.js';
import type { AgentFileError, MergedLinkStatus } from './link-agents.js';
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
  /** What the link agents report for this link; undefined when none lists it (or none answered). */
  runtime: MergedLinkStatus | undefined;
  /** Whether any link agent answered at all (a link missing from an answer has not been loaded yet). */
  agentsAnswered: boolean;
  /** Pod → why the link agent there does not apply the links file (agents of the link's cluster). */
  agentFileErrors?: ReadonlyMap<string, AgentFileError>;
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

/** Credentials refused (CONNACK 4/5 as mqtt.js words them), or a link user that may not use the $LINK topics. */
const AUTH_FAILURE = /bad user ?name or password|not authori[sz]ed|must be a superuser/i;

/**
 * What the agent says when it marks a link misconfigured (broker/src/link/link.ts). Agents of this version keep the
 * link `misconfigured` while they redial; older ones showed it `connecting` with this lastError between two refusals.
 */
const MISCONFIGURED = /belong to another cluster|route sync refused by the remote|cannot prepare the connection/;

/** Why a running link is not connected, from what its agent last saw. */
export function disconnectReason(lastError: string | null): string {
  if (lastError && AUTH_FAILURE.test(lastError)) return 'AuthFailed';
  if (lastError && MISCONFIGURED.test(lastError)) return 'Misconfigured';
  return 'RemoteUnreachable';
}

function fromAgents(runtime: MergedLinkStatus, remote: string): ConditionInput {
  const where = `agent of pod ${runtime.agentPod}`;
  if (runtime.activeAgents === 0) {
    return condition('Connected', 'False', 'NoActiveAgent', `${runtime.standbyAgents} link agent(s) report the link as standby and none as active`);
  }
  switch (runtime.state) {
    case 'connected':
      return condition('Connected', 'True', 'Connected', `connected to ${remote} (${where})`);
    case 'misconfigured':
      return condition('Connected', 'False', 'Misconfigured', `${where}: ${runtime.lastError ?? 'the agent rejected the link\'s configuration'}`);
    case 'disabled':
      return condition('Connected', 'False', 'Disabled', `${where}: the link is disabled in the links file`);
    case 'connecting':
      if (!runtime.lastError) return condition('Connected', 'False', 'Connecting', `${where}: connecting to ${remote} (or completing the route-sync handshake)`);
      return condition('Connected', 'False', disconnectReason(runtime.lastError), `${where}: ${runtime.lastError}`);
    case 'disconnected':
      return condition('Connected', 'False', disconnectReason(runtime.lastError), `${where}: ${runtime.lastError ?? `disconnected from ${remote}`}`);
  }
}

/** The agents' links-file problems in one message (pods sorted), or null when every agent applies its file. */
export function linksFileErrorMessage(errors: ReadonlyMap<string, AgentFileError> | undefined): string | null {
  if (!errors || errors.size === 0) return null;
  const parts = [...errors].sort(([a], [b]) => a.localeCompare(b)).map(([pod, e]) =>
    `agent of pod ${pod} cannot apply the links file${e.path ? ` ${e.path}` : ''}${e.since ? ` (since ${e.since})` : ''}: ${e.reason}`);
  return `${parts.join('; ')}; the agents keep running the previous links file`;
}

/** Configured=True from the operator's side is not yet what runs while an agent cannot apply the links file. */
function appliedByAgents(configuredCondition: ConditionInput, obs: LinkObservation): ConditionInput {
  const message = linksFileErrorMessage(obs.agentFileErrors);
  if (configuredCondition.status !== 'True' || message === null) return configuredCondition;
  return condition('Configured', 'False', 'LinksFileError', message);
}

function connected(obs: LinkObservation, configuredCondition: ConditionInput): ConditionInput {
  if (configuredCondition.status !== 'True') return condition('Connected', 'False', 'NotConfigured', 'the link is not in the link agents\' configuration');
  if (obs.link.spec.enabled === false) return condition('Connected', 'False', 'Disabled', 'spec.enabled is false');
  if (!obs.agentsAnswered) return condition('Connected', 'Unknown', 'LinkStatusUnavailable', 'no link agent answered on /api/v1/links (no running core pod, or its agent is unreachable)');
  const fileError = linksFileErrorMessage(obs.agentFileErrors);
  if (!obs.runtime && fileError) return condition('Connected', 'Unknown', 'LinksFileError', `the link agents do not list this link: ${fileError}`);
  if (!obs.runtime) return condition('Connected', 'Unknown', 'LinkStatusUnavailable', 'the link agents do not list this link yet (links file not reloaded yet?)');
  return fromAgents(obs.runtime, obs.link.spec.remote.clusterName);
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
  const applied = appliedByAgents(configuredCondition, obs);
  const conditions = [ready(applied, connectedCondition), connectedCondition, applied, secretsResolved(obs.secretProblems)];
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
  if (runtime && configuredCondition.status === 'True') Object.assign(status, runtimeFields(runtime, previous, obs.now));
  else if (previous.lastConnectedTime) status.lastConnectedTime = previous.lastConnectedTime;
  return status;
}

/** The figures of the agents' report; lastConnectedTime is the agent's connectedSince (or when the operator saw the link become connected). */
function runtimeFields(runtime: MergedLinkStatus, previous: ClusterLinkStatus, now: string): Partial<ClusterLinkStatus> {
  const fields: Partial<ClusterLinkStatus> = { state: runtime.state, activeAgent: runtime.agentPod };
  if (runtime.routesSent !== undefined) fields.routesSent = runtime.routesSent;
  if (runtime.routesReceived !== undefined) fields.routesReceived = runtime.routesReceived;
  if (runtime.queueDepth !== undefined) fields.queueDepth = runtime.queueDepth;
  if (runtime.queueBytes !== undefined) fields.queueBytes = runtime.queueBytes;
  if (runtime.oldestAgeMs !== undefined) fields.lagSeconds = Math.floor(runtime.oldestAgeMs / 1000);
  const lastConnectedTime = runtime.state === 'connected' && runtime.connectedSince
    ? runtime.connectedSince
    : derivedConnectedTime(runtime, previous, now);
  if (lastConnectedTime) fields.lastConnectedTime = lastConnectedTime;
  if (runtime.lastError && runtime.state !== 'connected') fields.lastError = runtime.lastError.slice(0, 4096);
  return fields;
}

/** For agents that report no connectedSince: when the operator first saw the link connected. */
function derivedConnectedTime(runtime: MergedLinkStatus, previous: ClusterLinkStatus, now: string): string | undefined {
  if (runtime.connectedSince !== undefined) return previous.lastConnectedTime;
  const becameConnected = runtime.state === 'connected' && (previous.state !== 'connected' || !previous.lastConnectedTime);
  return becameConnected ? now : previous.lastConnectedTime;
}
