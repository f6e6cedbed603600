/**
 * Rendering: (RegionalCluster, its ClusterLinks, resolved Secret data) → the desired Kubernetes objects. Pure and
 * deterministic: equal inputs give byte-identical objects, so a server-side apply of an unchanged cluster is a
 * no-op. The controller does the I/O (reads, the one-time cluster-secret generation, apply, status).
 */
import type {
  V1ConfigMap,
  V1Deployment,
  V1ObjectMeta,
  V1OwnerReference,
  V1PodDisruptionBudget,
  V1Secret,
  V1Service,
  V1ServicePort,
  V1StatefulSet,
} from '@kubernetes/client-node';
import { withRegionalClusterDefaults } from '../api/defaults.js';
import { API_VERSION, type ClusterLink, type DisruptionBudget, type NodeRole, type RegionalCluster, type ServiceSpec } from '../api/types.js';
import { renderLinks, type SecretData, type SkippedLink } from './links-file.js';
import { commonLabels, CLUSTER_SECRET_KEY, CONFIG_FILE_KEY, LINKS_FILE_KEY, nodeSelectorLabels, objectNames, PORTS, roleSelectorLabels, selectorString } from './names.js';
import { renderNodeConfig } from './node-config.js';
import { podTemplate, tlsSecretNames, type RenderOptions } from './pod.js';
import { canonicalJson, sha256Hex, toBase64, toYaml } from './serialize.js';

export type RenderedObject = V1ConfigMap | V1Secret | V1Service | V1StatefulSet | V1Deployment | V1PodDisruptionBudget;

export interface RenderInput {
  cluster: RegionalCluster;
  /** ClusterLinks of the namespace; those whose clusterRef names this cluster are rendered. */
  links: readonly ClusterLink[];
  /** Value of the shared cluster secret (the controller generates it once and keeps it in the Secret). */
  clusterSecret: string;
  /**
   * Data (base64, as in Secret.data) of the Secrets referenced by the RegionalCluster (users, listener TLS) and
   * by its ClusterLinks (passwords, CAs, client certificates), keyed by Secret name. The pods mount the former
   * directly (listener certificates feed the config hash); the latter are copied into the link-credentials Secret.
   */
  secrets: SecretData;
  options?: Partial<RenderOptions & { pdbApiVersion: 'policy/v1' | 'policy/v1beta1' }>;
}

export interface RenderResult {
  /** In apply order: configuration and Secrets, Services, workloads, disruption budgets. */
  objects: RenderedObject[];
  /** Hash of the startup-only configuration the pods run with (pod template annotation). */
  configHash: string;
  /** Label selector of the replicant pods (status.replicantSelector, for the scale subresource). */
  replicantSelector: string;
  links: { included: string[]; skipped: SkippedLink[] };
}

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`render: ${what} is missing (were schema defaults applied?)`);
  return value;
}

function ownerReference(cluster: RegionalCluster): V1OwnerReference {
  const uid = cluster.metadata.uid;
  if (!uid) throw new Error(`render: RegionalCluster ${cluster.metadata.namespace}/${cluster.metadata.name} has no metadata.uid`);
  return { apiVersion: API_VERSION, kind: 'RegionalCluster', name: cluster.metadata.name, uid, controller: true, blockOwnerDeletion: true };
}

function metadata(cluster: RegionalCluster, name: string, component: string, annotations?: Record<string, string>): V1ObjectMeta {
  return {
    name,
    namespace: cluster.metadata.namespace,
    labels: { ...commonLabels(cluster), 'app.kubernetes.io/component': component },
    ...(annotations && Object.keys(annotations).length ? { annotations } : {}),
    ownerReferences: [ownerReference(cluster)],
  };
}

/**
 * Secret data the broker reads only at start-up (listener certificates): a change must restart the pods, so it
 * feeds the config hash. The users file is not in it: the broker watches its mounted Secret and reloads it.
 */
function startupSecretData(cluster: RegionalCluster, secrets: SecretData): SecretData {
  return Object.fromEntries(tlsSecretNames(cluster).map((n) => [n, secrets[n] ?? {}]));
}

function service(cluster: RegionalCluster, name: string, component: string, spec: ServiceSpec, ports: V1ServicePort[]): V1Service {
  const type = required(spec.type, `${component} service type`);
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(cluster, name, component, spec.annotations),
    spec: {
      type,
      selector: nodeSelectorLabels(cluster),
      ports,
      ...(type === 'LoadBalancer' && spec.loadBalancerSourceRanges?.length ? { loadBalancerSourceRanges: spec.loadBalancerSourceRanges } : {}),
    },
  };
}

function services(cluster: RegionalCluster): V1Service[] {
  const names = objectNames(cluster);
  const listeners = required(cluster.spec.listeners, 'spec.listeners');
  const headless: V1Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(cluster, names.headlessService, 'discovery'),
    spec: {
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector: nodeSelectorLabels(cluster),
      ports: [
        { name: 'cluster', port: PORTS.cluster, targetPort: 'cluster', protocol: 'TCP' },
        { name: 'admin', port: PORTS.admin, targetPort: 'admin', protocol: 'TCP' },
      ],
    },
  };
  const clientPorts = listeners.map((l) => ({ name: l.name, port: l.port, targetPort: l.name, protocol: 'TCP' }));
  const linkSpec = required(cluster.spec.linkService, 'spec.linkService');
  const linkListener = listeners.find((l) => l.name === (linkSpec.listener ?? listeners[0]?.name));
  if (!linkListener) throw new Error(`render: spec.linkService.listener '${linkSpec.listener}' names no listener`);
  const linkPort: V1ServicePort = {
    name: linkListener.name,
    port: linkListener.port,
    targetPort: linkListener.name,
    protocol: 'TCP',
    ...(linkSpec.nodePort === undefined ? {} : { nodePort: linkSpec.nodePort }),
  };
  return [
    headless,
    service(cluster, names.clientService, 'clients', required(cluster.spec.service, 'spec.service'), clientPorts),
    service(cluster, names.linkService, 'inbound-links', linkSpec, [linkPort]),
  ];
}

function coreStatefulSet(cluster: RegionalCluster, configHash: string, options: RenderOptions): V1StatefulSet {
  const core = required(cluster.spec.core, 'spec.core');
  const persistence = required(core.persistence, 'spec.core.persistence');
  const strategy = required(cluster.spec.updateStrategy, 'spec.updateStrategy');
  const selector = roleSelectorLabels(cluster, 'core');
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: metadata(cluster, objectNames(cluster).core, 'core'),
    spec: {
      serviceName: objectNames(cluster).headlessService,
      replicas: required(core.replicas, 'spec.core.replicas'),
      podManagementPolicy: 'Parallel',
      revisionHistoryLimit: 5,
      selector: { matchLabels: selector },
      updateStrategy:
        strategy.type === 'OnDelete'
          ? { type: 'OnDelete' }
          : { type: 'RollingUpdate', ...(strategy.partition === undefined ? {} : { rollingUpdate: { partition: strategy.partition } }) },
      template: podTemplate({ cluster, role: 'core', settings: core, configHash, options }),
      volumeClaimTemplates: [
        {
          metadata: { name: 'data', labels: selector },
          spec: {
            accessModes: ['ReadWriteOnce'],
            ...(persistence.storageClassName ? { storageClassName: persistence.storageClassName } : {}),
            resources: { requests: { storage: required(persistence.size, 'spec.core.persistence.size') } },
          },
        },
      ],
    },
  };
}

function replicantDeployment(cluster: RegionalCluster, configHash: string, options: RenderOptions): V1Deployment {
  const replicant = required(cluster.spec.replicant, 'spec.replicant');
  const strategy = required(cluster.spec.updateStrategy, 'spec.updateStrategy');
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: metadata(cluster, objectNames(cluster).replicant, 'replicant'),
    spec: {
      replicas: required(replicant.replicas, 'spec.replicant.replicas'),
      revisionHistoryLimit: 5,
      selector: { matchLabels: roleSelectorLabels(cluster, 'replicant') },
      strategy: {
        type: 'RollingUpdate',
        rollingUpdate: { maxSurge: strategy.replicantMaxSurge ?? 1, maxUnavailable: strategy.replicantMaxUnavailable ?? 0 },
      },
      template: podTemplate({ cluster, role: 'replicant', settings: replicant, configHash, options }),
    },
  };
}

function disruptionBudget(cluster: RegionalCluster, role: NodeRole, budget: DisruptionBudget | undefined, apiVersion: string): V1PodDisruptionBudget[] {
  if (budget?.enabled === false) return [];
  const limit = budget?.minAvailable !== undefined ? { minAvailable: budget.minAvailable } : { maxUnavailable: budget?.maxUnavailable ?? 1 };
  const name = role === 'core' ? objectNames(cluster).core : objectNames(cluster).replicant;
  return [
    {
      apiVersion,
      kind: 'PodDisruptionBudget',
      metadata: metadata(cluster, name, role),
      spec: { ...limit, selector: { matchLabels: roleSelectorLabels(cluster, role) } },
    },
  ];
}

export function renderRegionalCluster(input: RenderInput): RenderResult {
  const cluster = withRegionalClusterDefaults(input.cluster);
  const options: RenderOptions = { clusterDomain: input.options?.clusterDomain ?? 'cluster.local' };
  const pdbApiVersion = input.options?.pdbApiVersion ?? 'policy/v1';
  const names = objectNames(cluster);
  const configYaml = toYaml(renderNodeConfig(cluster));
  const links = renderLinks(cluster, input.links, input.secrets);
  const configHash = sha256Hex(
    canonicalJson({ config: configYaml, clusterSecret: input.clusterSecret, secrets: startupSecretData(cluster, input.secrets) }),
  );
  const objects: RenderedObject[] = [
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: metadata(cluster, names.configMap, 'config'), data: { [CONFIG_FILE_KEY]: configYaml } },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: metadata(cluster, names.linksConfigMap, 'links'), data: { [LINKS_FILE_KEY]: toYaml(links.file) } },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: metadata(cluster, names.clusterSecret, 'cluster-secret'),
      data: { [CLUSTER_SECRET_KEY]: toBase64(input.clusterSecret) },
    },
    { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: metadata(cluster, names.linkCredentials, 'links'), data: links.credentials },
    ...services(cluster),
    coreStatefulSet(cluster, configHash, options),
    replicantDeployment(cluster, configHash, options),
    ...disruptionBudget(cluster, 'core', cluster.spec.core?.disruptionBudget, pdbApiVersion),
    ...disruptionBudget(cluster, 'replicant', cluster.spec.replicant?.disruptionBudget, pdbApiVersion),
  ];
  return {
    objects,
    configHash,
    replicantSelector: selectorString(roleSelectorLabels(cluster, 'replicant')),
    links: { included: links.included, skipped: links.skipped },
  };
}

export { renderNodeConfig, type NodeConfigFile, type NodeConfigPaths, POD_NODE_CONFIG_PATHS } from './node-config.js';
export { renderLinks, linksOf, type LinksFile, type LinkFileEntry, type LinkPaths, type SecretData, type SkippedLink, POD_LINK_PATHS } from './links-file.js';
export { CONFIG_HASH_ANNOTATION, FIELD_MANAGER, objectNames, PORTS, POD_PATHS } from './names.js';
export { canonicalJson, toYaml } from './serialize.js';
