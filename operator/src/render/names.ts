/** Names, labels and fixed ports/paths of everything rendered for one RegionalCluster. */
import type { NodeRole, RegionalCluster } from '../api/types.js';

export const FIELD_MANAGER = 'meridian-operator';
export const CONFIG_HASH_ANNOTATION = 'meridian.dev/config-hash';
export const CLUSTER_SECRET_KEY = 'secret';
export const CONFIG_FILE_KEY = 'config.yaml';
export const LINKS_FILE_KEY = 'links.yaml';

export const PORTS = { cluster: 4370, admin: 8081, linkAgentAdmin: 8082, linkAgentCluster: 4371 } as const;

/** Where things live inside the pods. */
export const POD_PATHS = {
  configDir: '/etc/meridian/config',
  clusterSecretDir: '/etc/meridian/cluster',
  usersDir: '/etc/meridian/users',
  tlsDir: '/etc/meridian/tls',
  linksDir: '/etc/meridian/links',
  linkCredentialsDir: '/etc/meridian/link-credentials',
  dataDir: '/var/lib/meridian',
  nodeDataDir: '/var/lib/meridian/node',
  linkAgentDataDir: '/var/lib/meridian/link-agent',
  tmpDir: '/tmp',
} as const;

export function objectNames(cluster: RegionalCluster) {
  const base = cluster.metadata.name;
  return {
    configMap: `${base}-config`,
    linksConfigMap: `${base}-links`,
    clusterSecret: `${base}-cluster-secret`,
    linkCredentials: `${base}-link-credentials`,
    headlessService: `${base}-nodes`,
    clientService: base,
    linkService: `${base}-inbound-links`,
    core: `${base}-core`,
    replicant: `${base}-replicant`,
  };
}

export type ObjectNames = ReturnType<typeof objectNames>;

/** Labels every rendered object carries; selectors use the stable subset (name, instance, component). */
export function commonLabels(cluster: RegionalCluster): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'meridian',
    'app.kubernetes.io/instance': cluster.metadata.name,
    'app.kubernetes.io/managed-by': FIELD_MANAGER,
    'meridian.dev/cluster-name': cluster.spec.clusterName,
  };
}

export function nodeSelectorLabels(cluster: RegionalCluster): Record<string, string> {
  return { 'app.kubernetes.io/name': 'meridian', 'app.kubernetes.io/instance': cluster.metadata.name };
}

export function roleSelectorLabels(cluster: RegionalCluster, role: NodeRole): Record<string, string> {
  return { ...nodeSelectorLabels(cluster), 'app.kubernetes.io/component': role };
}

/** `key=value,...` form of a selector (the scale subresource's status.replicantSelector). */
export function selectorString(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
