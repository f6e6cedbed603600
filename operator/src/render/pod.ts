/** Pod templates of core and replicant nodes: broker container, link-agent sidecar (cores), volumes, scheduling. */
import type {
  V1Affinity,
  V1Container,
  V1EnvVar,
  V1PodTemplateSpec,
  V1Probe,
  V1ResourceRequirements,
  V1SecurityContext,
  V1TopologySpreadConstraint,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import type { NodeRole, PodSettings, RegionalCluster, ResourceRequirements } from '../api/types.js';
import {
  CLUSTER_SECRET_KEY,
  CONFIG_FILE_KEY,
  CONFIG_HASH_ANNOTATION,
  LINKS_FILE_KEY,
  objectNames,
  PORTS,
  POD_PATHS,
  roleSelectorLabels,
  commonLabels,
} from './names.js';

export const BROKER_CONTAINER = 'broker';
export const LINK_AGENT_CONTAINER = 'link-agent';
/** UID/GID of the image's non-root user (see Dockerfile). */
export const RUN_AS_USER = 1000;

export interface RenderOptions {
  /** DNS suffix of Services (default cluster.local). */
  clusterDomain: string;
}

const fieldEnv = (name: string, fieldPath: string): V1EnvVar => ({ name, valueFrom: { fieldRef: { fieldPath } } });

const httpProbe = (path: string, port: string, periodSeconds: number, failureThreshold: number): V1Probe => ({
  httpGet: { path, port },
  periodSeconds,
  failureThreshold,
  timeoutSeconds: 2,
});

const containerSecurity: V1SecurityContext = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  capabilities: { drop: ['ALL'] },
};

function resources(spec: ResourceRequirements | undefined): V1ResourceRequirements | undefined {
  if (!spec?.limits && !spec?.requests) return undefined;
  return {
    ...(spec.limits ? { limits: Object.fromEntries(Object.entries(spec.limits).map(([k, v]) => [k, String(v)])) } : {}),
    ...(spec.requests ? { requests: Object.fromEntries(Object.entries(spec.requests).map(([k, v]) => [k, String(v)])) } : {}),
  };
}

/** Distinct TLS Secret names of the listeners, sorted (one volume each). */
export function tlsSecretNames(cluster: RegionalCluster): string[] {
  return [...new Set((cluster.spec.listeners ?? []).flatMap((l) => (l.tls ? [l.tls.secretName] : [])))].sort();
}

function volumes(cluster: RegionalCluster, role: NodeRole, withAgent: boolean): V1Volume[] {
  const names = objectNames(cluster);
  const list: V1Volume[] = [
    { name: 'config', configMap: { name: names.configMap, items: [{ key: CONFIG_FILE_KEY, path: CONFIG_FILE_KEY }] } },
    { name: 'cluster-secret', secret: { secretName: names.clusterSecret, items: [{ key: CLUSTER_SECRET_KEY, path: CLUSTER_SECRET_KEY }], defaultMode: 0o440 } },
  ];
  const users = cluster.spec.auth?.usersSecret;
  if (users) list.push({ name: 'users', secret: { secretName: users.name, items: [{ key: users.key ?? 'users.yaml', path: 'users.yaml' }], defaultMode: 0o440 } });
  tlsSecretNames(cluster).forEach((secretName, i) => list.push({ name: `tls-${i}`, secret: { secretName, defaultMode: 0o440 } }));
  if (withAgent) {
    list.push({ name: 'links', configMap: { name: names.linksConfigMap } });
    list.push({ name: 'link-credentials', secret: { secretName: names.linkCredentials, defaultMode: 0o440 } });
  }
  if (role === 'replicant') list.push({ name: 'data', emptyDir: {} });
  list.push({ name: 'tmp', emptyDir: {} });
  return list;
}

function brokerMounts(cluster: RegionalCluster): V1VolumeMount[] {
  const mounts: V1VolumeMount[] = [
    { name: 'config', mountPath: POD_PATHS.configDir, readOnly: true },
    { name: 'cluster-secret', mountPath: POD_PATHS.clusterSecretDir, readOnly: true },
  ];
  if (cluster.spec.auth?.usersSecret) mounts.push({ name: 'users', mountPath: POD_PATHS.usersDir, readOnly: true });
  tlsSecretNames(cluster).forEach((secretName, i) => mounts.push({ name: `tls-${i}`, mountPath: `${POD_PATHS.tlsDir}/${secretName}`, readOnly: true }));
  mounts.push({ name: 'data', mountPath: POD_PATHS.dataDir }, { name: 'tmp', mountPath: POD_PATHS.tmpDir });
  return mounts;
}

export function headlessServiceHost(cluster: RegionalCluster, options: RenderOptions): string {
  return `${objectNames(cluster).headlessService}.${cluster.metadata.namespace ?? 'default'}.svc.${options.clusterDomain}`;
}

function brokerArgs(cluster: RegionalCluster, role: NodeRole, options: RenderOptions): string[] {
  return [
    'broker',
    `--config=${POD_PATHS.configDir}/${CONFIG_FILE_KEY}`,
    `--role=${role}`,
    '--node-name=$(POD_NAME)',
    `--cluster-name=${cluster.spec.clusterName}`,
    '--cluster-host=0.0.0.0',
    `--cluster-port=${PORTS.cluster}`,
    `--cluster-advertise=$(POD_IP):${PORTS.cluster}`,
    `--discovery=dns:${headlessServiceHost(cluster, options)}`,
    `--cluster-secret-file=${POD_PATHS.clusterSecretDir}/${CLUSTER_SECRET_KEY}`,
  ];
}

function brokerContainer(cluster: RegionalCluster, role: NodeRole, settings: PodSettings, options: RenderOptions): V1Container {
  const ports = [
    ...(cluster.spec.listeners ?? []).map((l) => ({ name: l.name, containerPort: l.port, protocol: 'TCP' })),
    { name: 'cluster', containerPort: PORTS.cluster, protocol: 'TCP' },
    { name: 'admin', containerPort: PORTS.admin, protocol: 'TCP' },
  ];
  const res = resources(settings.resources);
  return {
    name: BROKER_CONTAINER,
    image: cluster.spec.image,
    imagePullPolicy: cluster.spec.imagePullPolicy,
    args: brokerArgs(cluster, role, options),
    env: [fieldEnv('POD_NAME', 'metadata.name'), fieldEnv('POD_NAMESPACE', 'metadata.namespace'), fieldEnv('POD_IP', 'status.podIP')],
    ports,
    ...(res ? { resources: res } : {}),
    startupProbe: httpProbe('/healthz', 'admin', 2, 60),
    livenessProbe: httpProbe('/healthz', 'admin', 10, 3),
    readinessProbe: httpProbe('/readyz', 'admin', 5, 2),
    securityContext: containerSecurity,
    volumeMounts: brokerMounts(cluster),
  };
}

function linkAgentContainer(cluster: RegionalCluster): V1Container {
  const res = resources(cluster.spec.linkAgent?.resources);
  return {
    name: LINK_AGENT_CONTAINER,
    image: cluster.spec.image,
    imagePullPolicy: cluster.spec.imagePullPolicy,
    args: [
      'link-agent',
      `--links=${POD_PATHS.linksDir}/${LINKS_FILE_KEY}`,
      // The agent is a cluster member of its own beside the pod's broker: its own id, port and advertised address.
      '--node-name=$(POD_NAME)-link',
      `--cluster-name=${cluster.spec.clusterName}`,
      '--cluster-host=0.0.0.0',
      `--cluster-port=${PORTS.linkAgentCluster}`,
      `--cluster-advertise=$(POD_IP):${PORTS.linkAgentCluster}`,
      `--seeds=127.0.0.1:${PORTS.cluster}`,
      `--cluster-secret-file=${POD_PATHS.clusterSecretDir}/${CLUSTER_SECRET_KEY}`,
      `--data-dir=${POD_PATHS.linkAgentDataDir}`,
      '--admin-host=0.0.0.0',
      `--admin-port=${PORTS.linkAgentAdmin}`,
    ],
    env: [fieldEnv('POD_NAME', 'metadata.name'), fieldEnv('POD_NAMESPACE', 'metadata.namespace'), fieldEnv('POD_IP', 'status.podIP')],
    ports: [
      { name: 'agent-admin', containerPort: PORTS.linkAgentAdmin, protocol: 'TCP' },
      { name: 'agent-cluster', containerPort: PORTS.linkAgentCluster, protocol: 'TCP' },
    ],
    ...(res ? { resources: res } : {}),
    livenessProbe: httpProbe('/healthz', 'agent-admin', 10, 3),
    securityContext: containerSecurity,
    volumeMounts: [
      { name: 'links', mountPath: POD_PATHS.linksDir, readOnly: true },
      { name: 'link-credentials', mountPath: POD_PATHS.linkCredentialsDir, readOnly: true },
      { name: 'cluster-secret', mountPath: POD_PATHS.clusterSecretDir, readOnly: true },
      { name: 'data', mountPath: POD_PATHS.dataDir },
      { name: 'tmp', mountPath: POD_PATHS.tmpDir },
    ],
  };
}

/** Soft anti-affinity: nodes of one role prefer different hosts, unless the user gave an affinity. */
function affinity(cluster: RegionalCluster, role: NodeRole, settings: PodSettings): V1Affinity {
  if (settings.affinity) return settings.affinity;
  return {
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [
        { weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: roleSelectorLabels(cluster, role) } } },
      ],
    },
  };
}

function spreadConstraints(cluster: RegionalCluster, role: NodeRole, settings: PodSettings): V1TopologySpreadConstraint[] | undefined {
  return settings.topologySpreadConstraints?.map((c) => ({ ...c, labelSelector: c.labelSelector ?? { matchLabels: roleSelectorLabels(cluster, role) } }));
}

export function drainSeconds(cluster: RegionalCluster): number {
  return Math.ceil((cluster.spec.config?.mqtt?.drainTimeoutMs ?? 5000) / 1000);
}

export interface PodTemplateInput {
  cluster: RegionalCluster;
  role: NodeRole;
  settings: PodSettings;
  configHash: string;
  options: RenderOptions;
}

export function podTemplate({ cluster, role, settings, configHash, options }: PodTemplateInput): V1PodTemplateSpec {
  const withAgent = role === 'core' && cluster.spec.linkAgent?.enabled !== false;
  const userMeta = settings.podMetadata ?? {};
  const containers = [brokerContainer(cluster, role, settings, options), ...(withAgent ? [linkAgentContainer(cluster)] : [])];
  const spread = spreadConstraints(cluster, role, settings);
  return {
    metadata: {
      labels: { ...userMeta.labels, ...commonLabels(cluster), ...roleSelectorLabels(cluster, role) },
      annotations: { ...userMeta.annotations, [CONFIG_HASH_ANNOTATION]: configHash },
    },
    spec: {
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: drainSeconds(cluster) + 15,
      securityContext: {
        runAsNonRoot: true,
        runAsUser: RUN_AS_USER,
        runAsGroup: RUN_AS_USER,
        fsGroup: RUN_AS_USER,
        seccompProfile: { type: 'RuntimeDefault' },
      },
      ...(cluster.spec.imagePullSecrets?.length ? { imagePullSecrets: cluster.spec.imagePullSecrets.map((s) => ({ name: s.name })) } : {}),
      ...(settings.priorityClassName ? { priorityClassName: settings.priorityClassName } : {}),
      ...(settings.nodeSelector ? { nodeSelector: settings.nodeSelector } : {}),
      affinity: affinity(cluster, role, settings),
      ...(settings.tolerations?.length ? { tolerations: settings.tolerations } : {}),
      ...(spread?.length ? { topologySpreadConstraints: spread } : {}),
      containers,
      volumes: volumes(cluster, role, withAgent),
    },
  };
}
