/**
 * The checks the CRDs' CEL rules make, done again in TypeScript: API servers older than 1.25 ignore CEL, so the
 * operator runs these on every reconcile and reports the result as a condition. Each CEL twin uses the rule's
 * message and the path of the schema node that carries the rule; `operator/test/unit/api/cel-parity.test.ts`
 * evaluates the real CEL rules on the same cases. Semantic checks that CEL cannot express (one object against
 * another, filter redundancy) follow. Inputs are expected with schema defaults applied (see defaults.ts).
 */
import { filterCovers, isValidFilter } from './mqtt-filter.js';
import { MAX_REGIONAL_CLUSTER_NAME } from './regional-cluster-schema.js';
import type { ClusterLink, DisruptionBudget, ListenerSpec, RegionalCluster } from './types.js';

export type ValidationReason = 'InvalidSpec' | 'InvalidTopics';

export interface ValidationIssue {
  /** Where, as the API server would name it (`spec.listeners[1]`). */
  path: string;
  message: string;
  reason: ValidationReason;
}

/** What the operator accepted first (kept in status): immutable fields are compared against it. */
export interface AcceptedRegionalCluster {
  clusterName?: string;
  region?: string;
}

export interface AcceptedClusterLink {
  clusterRef?: string;
  remoteClusterName?: string;
}

const issue = (path: string, message: string, reason: ValidationReason = 'InvalidSpec'): ValidationIssue => ({ path, message, reason });

function immutable(path: string, field: string, current: string, accepted: string | undefined): ValidationIssue[] {
  return accepted !== undefined && accepted !== current ? [issue(path, `${field} is immutable`)] : [];
}

function unique<T>(items: readonly T[], key: (item: T) => unknown, path: string, message: string): ValidationIssue[] {
  const keys = items.map(key);
  return keys.every((k) => keys.filter((o) => o === k).length === 1) ? [] : [issue(path, message)];
}

function listenerIssues(listener: ListenerSpec, path: string): ValidationIssue[] {
  const plain = listener.protocol === 'MQTT' || listener.protocol === 'WS';
  const web = listener.protocol === 'WS' || listener.protocol === 'WSS';
  const issues: ValidationIssue[] = [];
  if (!plain && !listener.tls) issues.push(issue(path, 'MQTTS and WSS listeners need tls'));
  if (listener.tls && plain) issues.push(issue(path, 'tls applies to MQTTS and WSS listeners only'));
  if (listener.path !== undefined && !web) issues.push(issue(path, 'path applies to WS and WSS listeners only'));
  return issues;
}

function budgetIssues(budget: DisruptionBudget | undefined, path: string): ValidationIssue[] {
  return budget?.minAvailable !== undefined && budget.maxUnavailable !== undefined
    ? [issue(path, 'set minAvailable or maxUnavailable, not both')]
    : [];
}

export function validateRegionalCluster(cluster: RegionalCluster, accepted: AcceptedRegionalCluster = {}): ValidationIssue[] {
  const { spec } = cluster;
  const listeners = spec.listeners ?? [];
  const issues: ValidationIssue[] = [];
  if (cluster.metadata.name.length > MAX_REGIONAL_CLUSTER_NAME) {
    issues.push(issue('', `metadata.name must be at most ${MAX_REGIONAL_CLUSTER_NAME} characters (the names of its objects derive from it)`));
  }
  issues.push(...immutable('spec.clusterName', 'clusterName', spec.clusterName, accepted.clusterName));
  issues.push(...immutable('spec.region', 'region', spec.region, accepted.region));
  issues.push(...unique(listeners, (l) => l.name, 'spec.listeners', 'listener names must be unique'));
  issues.push(...unique(listeners, (l) => l.port, 'spec.listeners', 'listener ports must be unique'));
  listeners.forEach((l, i) => issues.push(...listenerIssues(l, `spec.listeners[${i}]`)));
  issues.push(...budgetIssues(spec.core?.disruptionBudget, 'spec.core.disruptionBudget'));
  issues.push(...budgetIssues(spec.replicant?.disruptionBudget, 'spec.replicant.disruptionBudget'));
  const linkService = spec.linkService;
  if (linkService?.nodePort !== undefined && (linkService.type === undefined || linkService.type === 'ClusterIP')) {
    issues.push(issue('spec.linkService', 'nodePort needs type NodePort or LoadBalancer'));
  }
  if (linkService?.listener !== undefined && spec.listeners && !listeners.some((l) => l.name === linkService.listener)) {
    issues.push(issue('spec', 'linkService.listener must name a listener'));
  }
  if (spec.auth && spec.auth.allowAnonymous !== true && !spec.auth.usersSecret) {
    issues.push(issue('spec.auth', 'usersSecret is required unless allowAnonymous is true'));
  }
  issues.push(...unique(spec.auth?.tenants ?? [], (t) => t.name, 'spec.auth.tenants', 'tenant names must be unique'));
  return issues;
}

function topicIssues(topics: readonly string[]): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  topics.forEach((topic, i) => {
    const path = `spec.topics[${i}]`;
    if (topic.startsWith('$LINK')) issues.push(issue(path, 'topics must not reach into $LINK', 'InvalidTopics'));
    if (!isValidFilter(topic)) issues.push(issue(path, `'${topic}' is not a valid MQTT topic filter`, 'InvalidTopics'));
  });
  topics.forEach((topic, i) => {
    const earlier = topics.findIndex((other) => other === topic);
    if (earlier < i) {
      issues.push(issue(`spec.topics[${i}]`, `'${topic}' duplicates spec.topics[${earlier}]`, 'InvalidTopics'));
      return;
    }
    const wider = topics.findIndex((other, j) => j !== i && other !== topic && isValidFilter(other) && filterCovers(other, topic));
    if (wider >= 0 && isValidFilter(topic)) {
      issues.push(issue(`spec.topics[${i}]`, `'${topic}' is redundant: spec.topics[${wider}] '${topics[wider]}' already covers it`, 'InvalidTopics'));
    }
  });
  return issues;
}

/** `cluster` is the RegionalCluster named by spec.clusterRef, when it exists. */
export function validateClusterLink(link: ClusterLink, cluster?: RegionalCluster, accepted: AcceptedClusterLink = {}): ValidationIssue[] {
  const { spec } = link;
  const issues: ValidationIssue[] = [];
  issues.push(...immutable('spec.clusterRef', 'clusterRef', spec.clusterRef, accepted.clusterRef));
  issues.push(...immutable('spec.remote.clusterName', 'remote.clusterName', spec.remote.clusterName, accepted.remoteClusterName));
  issues.push(...unique(spec.remote.servers, (s) => s, 'spec.remote.servers', 'servers must be unique'));
  if (spec.authentication?.passwordSecretRef && spec.authentication.username === undefined) {
    issues.push(issue('spec.authentication', 'passwordSecretRef needs a username'));
  }
  if (spec.authentication?.clientCertificateSecretRef && !spec.tls) {
    issues.push(issue('spec', 'authentication.clientCertificateSecretRef needs tls'));
  }
  issues.push(...topicIssues(spec.topics ?? []));
  if (cluster && cluster.spec.clusterName === spec.remote.clusterName) {
    issues.push(issue('spec.remote.clusterName', `'${spec.remote.clusterName}' is the local cluster's own name: a link must lead to another cluster`));
  }
  return issues;
}

/** One line for a condition message: the first few issues, with a count of the rest. */
export function summarizeIssues(issues: readonly ValidationIssue[], limit = 3): string {
  const shown = issues.slice(0, limit).map((i) => (i.path ? `${i.path}: ${i.message}` : i.message));
  const rest = issues.length - shown.length;
  return shown.join('; ') + (rest > 0 ? `; and ${rest} more` : '');
}
