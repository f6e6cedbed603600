/**
 * The API resources the operator touches, with their REST paths. A fixed table instead of discovery: the operator
 * knows exactly what it reads and writes, and needs no RBAC for discovery beyond /version.
 */
export interface ResourceType {
  apiVersion: string;
  kind: string;
  plural: string;
}

const resource = (apiVersion: string, kind: string, plural: string): ResourceType => ({ apiVersion, kind, plural });

export const RESOURCES = {
  regionalCluster: resource('meridian.dev/v1alpha1', 'RegionalCluster', 'regionalclusters'),
  clusterLink: resource('meridian.dev/v1alpha1', 'ClusterLink', 'clusterlinks'),
  configMap: resource('v1', 'ConfigMap', 'configmaps'),
  secret: resource('v1', 'Secret', 'secrets'),
  service: resource('v1', 'Service', 'services'),
  pod: resource('v1', 'Pod', 'pods'),
  event: resource('v1', 'Event', 'events'),
  statefulSet: resource('apps/v1', 'StatefulSet', 'statefulsets'),
  deployment: resource('apps/v1', 'Deployment', 'deployments'),
  pdbV1: resource('policy/v1', 'PodDisruptionBudget', 'poddisruptionbudgets'),
  pdbV1beta1: resource('policy/v1beta1', 'PodDisruptionBudget', 'poddisruptionbudgets'),
  lease: resource('coordination.k8s.io/v1', 'Lease', 'leases'),
} as const;

const BY_API_VERSION_KIND = new Map<string, ResourceType>(Object.values(RESOURCES).map((r) => [`${r.apiVersion}/${r.kind}`, r]));

export function resourceFor(apiVersion: string, kind: string): ResourceType {
  const found = BY_API_VERSION_KIND.get(`${apiVersion}/${kind}`);
  if (!found) throw new Error(`the operator does not handle ${kind} (${apiVersion})`);
  return found;
}

/** `/api/v1` for the core group, `/apis/<group>/<version>` otherwise. */
function groupPrefix(apiVersion: string): string {
  return apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
}

export interface ResourcePathParts {
  namespace?: string;
  name?: string;
  subresource?: 'status';
}

/** REST path of a collection (no name), an object, or an object's subresource; no namespace means all namespaces. */
export function resourcePath(type: ResourceType, parts: ResourcePathParts = {}): string {
  const ns = parts.namespace ? `/namespaces/${encodeURIComponent(parts.namespace)}` : '';
  const name = parts.name ? `/${encodeURIComponent(parts.name)}` : '';
  const sub = parts.name && parts.subresource ? `/${parts.subresource}` : '';
  return `${groupPrefix(type.apiVersion)}${ns}/${type.plural}${name}${sub}`;
}
