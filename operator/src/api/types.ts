/**
 * The RegionalCluster and ClusterLink resources (meridian.dev/v1alpha1) as TypeScript sees them. The OpenAPI
 * schemas beside this file describe the same shapes; `operator/test/unit/api/schema-types.test.ts` keeps the two
 * in step. Objects arrive as plain JSON, so timestamps are RFC 3339 strings.
 */
import type { V1Affinity, V1Toleration, V1TopologySpreadConstraint } from '@kubernetes/client-node';

export const GROUP = 'meridian.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  creationTimestamp?: string;
  deletionTimestamp?: string;
}

export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** A status condition following the Kubernetes API conventions (metav1.Condition). */
export interface Condition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export type IntOrString = number | string;

export interface ResourceRequirements {
  limits?: Record<string, IntOrString>;
  requests?: Record<string, IntOrString>;
}

export interface PodMetadata {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** Exactly one of the two may be set; neither means `maxUnavailable: 1`. */
export interface DisruptionBudget {
  enabled?: boolean;
  minAvailable?: IntOrString;
  maxUnavailable?: IntOrString;
}

/** Scheduling and shape of one role's pods. */
export interface PodSettings {
  replicas?: number;
  resources?: ResourceRequirements;
  affinity?: V1Affinity;
  tolerations?: V1Toleration[];
  nodeSelector?: Record<string, string>;
  topologySpreadConstraints?: V1TopologySpreadConstraint[];
  podMetadata?: PodMetadata;
  priorityClassName?: string;
  disruptionBudget?: DisruptionBudget;
}

export interface Persistence {
  storageClassName?: string;
  /** Size of each core node's volume (a Kubernetes quantity such as `10Gi`). */
  size?: string;
}

export interface CoreSpec extends PodSettings {
  persistence?: Persistence;
}

export type ReplicantSpec = PodSettings;

export type ListenerProtocol = 'MQTT' | 'MQTTS' | 'WS' | 'WSS';
export type ClientAuth = 'None' | 'Request' | 'Require';

export interface ListenerTls {
  /** A Secret of type kubernetes.io/tls (`tls.crt`, `tls.key`, and `ca.crt` when clients present certificates). */
  secretName: string;
  clientAuth?: ClientAuth;
  useCertCommonNameAsUsername?: boolean;
}

export interface ListenerSpec {
  name: string;
  protocol: ListenerProtocol;
  port: number;
  /** WebSocket path (WS and WSS only). */
  path?: string;
  tls?: ListenerTls;
}

export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer';

export interface ServiceSpec {
  type?: ServiceType;
  annotations?: Record<string, string>;
  loadBalancerSourceRanges?: string[];
}

/** The Service remote regions' link agents connect to: one of this cluster's listeners, exposed on its own. */
export interface LinkServiceSpec extends ServiceSpec {
  /** Name of the listener to expose (default: the first listener). */
  listener?: string;
  /** Fixed node port when `type` is NodePort (kind clusters map it to the host). */
  nodePort?: number;
}

export interface LinkAgentSpec {
  enabled?: boolean;
  resources?: ResourceRequirements;
}

export interface SecretKeyRef {
  name: string;
  key?: string;
}

export type AclEffect = 'Allow' | 'Deny';
export type AclAction = 'Publish' | 'Subscribe' | 'All';

export interface AclRule {
  effect: AclEffect;
  action: AclAction;
  topic: string;
  users?: string[];
  tenants?: string[];
}

export interface TenantSpec {
  name: string;
  mountpoint?: string;
}

export interface AuthSpec {
  allowAnonymous?: boolean;
  anonymousTenant?: string;
  /** Secret holding the broker's users file (`users:` with username, passwordHash, tenant, superuser). */
  usersSecret?: SecretKeyRef;
  tenants?: TenantSpec[];
  acl?: AclRule[];
  aclDefault?: AclEffect;
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** Broker settings passed through to the node configuration file (see broker/src/config/types.ts). */
export interface ConfigOverrides {
  logLevel?: LogLevel;
  limits?: {
    maxPacketSize?: number;
    maxConnections?: number;
    maxQueuedMessages?: number;
    maxInflightInbound?: number;
    maxClientIdLength?: number;
    maxKeepalive?: number;
    maxTopicLevels?: number;
  };
  store?: {
    durability?: 'durable' | 'relaxed';
    commitDelayMs?: number;
    maxSizeMb?: number;
  };
  mqtt?: {
    sysInterval?: number;
    drainTimeoutMs?: number;
  };
}

export interface UpdateStrategy {
  /** Core StatefulSet strategy; replicants always roll. */
  type?: 'RollingUpdate' | 'OnDelete';
  /** Core ordinals below this keep the old revision (staged roll-outs). */
  partition?: number;
  replicantMaxSurge?: IntOrString;
  replicantMaxUnavailable?: IntOrString;
}

export interface RegionalClusterSpec {
  clusterName: string;
  region: string;
  image: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  imagePullSecrets?: { name: string }[];
  core?: CoreSpec;
  replicant?: ReplicantSpec;
  linkAgent?: LinkAgentSpec;
  listeners?: ListenerSpec[];
  service?: ServiceSpec;
  linkService?: LinkServiceSpec;
  auth?: AuthSpec;
  config?: ConfigOverrides;
  updateStrategy?: UpdateStrategy;
}

export interface ListenerStatus {
  name: string;
  protocol: ListenerProtocol;
  port: number;
  /** In-cluster address clients use (`<service>.<namespace>.svc:<port>`). */
  address: string;
  /** External addresses of a LoadBalancer/NodePort Service, when known. */
  externalAddresses?: string[];
}

export type NodeRole = 'core' | 'replicant';

export interface NodeStatus {
  name: string;
  role: NodeRole;
  ready: boolean;
  /** Pod's configuration revision (the config-hash annotation it runs with). */
  configHash?: string;
}

export interface RegionalClusterStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  /** clusterName and region as first accepted; the operator refuses to follow a change (immutability on old servers). */
  clusterName?: string;
  region?: string;
  coreReplicas?: number;
  readyCoreReplicas?: number;
  replicantReplicas?: number;
  readyReplicantReplicas?: number;
  /** Label selector of the replicant pods (the scale subresource's selector, for an HPA). */
  replicantSelector?: string;
  currentRevision?: string;
  updateRevision?: string;
  configHash?: string;
  listeners?: ListenerStatus[];
  /** At most MAX_STATUS_NODES entries. */
  nodes?: NodeStatus[];
}

export interface RegionalCluster {
  apiVersion: typeof API_VERSION;
  kind: 'RegionalCluster';
  metadata: ObjectMeta;
  spec: RegionalClusterSpec;
  status?: RegionalClusterStatus;
}

export interface RemoteSpec {
  clusterName: string;
  region?: string;
  servers: string[];
}

export interface LinkAuthentication {
  username?: string;
  passwordSecretRef?: SecretKeyRef;
  /** A kubernetes.io/tls Secret (`tls.crt`, `tls.key`) presented to the remote cluster. */
  clientCertificateSecretRef?: { name: string };
}

export interface LinkTls {
  /** Secret and key of the CA bundle that signs the remote's certificate (default key `ca.crt`). */
  caSecretRef?: SecretKeyRef;
  serverName?: string;
  verify?: boolean;
}

export interface LinkQueue {
  maxBytes?: number;
  whenFull?: 'Block' | 'Reject';
}

export type LinkCompression = 'None' | 'Deflate';

export interface ClusterLinkSpec {
  /** Name of the local RegionalCluster (same namespace) whose link agents run this link. */
  clusterRef: string;
  remote: RemoteSpec;
  authentication?: LinkAuthentication;
  tls?: LinkTls;
  /** MQTT filters whose messages this region wants from the remote; empty: nothing comes back over this link. */
  topics?: string[];
  clientIdPrefix?: string;
  enabled?: boolean;
  queue?: LinkQueue;
  compression?: LinkCompression;
}

export interface ClusterLinkStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  /** clusterRef and remote.clusterName as first accepted (immutability on old servers). */
  clusterRef?: string;
  remoteClusterName?: string;
  /** The agent-reported state: connecting, connected, disconnected, misconfigured or disabled. */
  state?: string;
  /** Pod whose link agent serves the link (the one whose report counts). */
  activeAgent?: string;
  routesSent?: number;
  routesReceived?: number;
  queueDepth?: number;
  queueBytes?: number;
  lagSeconds?: number;
  lastConnectedTime?: string;
  lastError?: string;
}

export interface ClusterLink {
  apiVersion: typeof API_VERSION;
  kind: 'ClusterLink';
  metadata: ObjectMeta;
  spec: ClusterLinkSpec;
  status?: ClusterLinkStatus;
}

export const MAX_STATUS_NODES = 50;

export const REGIONAL_CLUSTER_CONDITIONS = [
  'Ready',
  'Available',
  'CoreNodesProgressing',
  'ReplicantNodesProgressing',
  'ConfigApplied',
] as const;

export const CLUSTER_LINK_CONDITIONS = ['Ready', 'Connected', 'Configured', 'SecretsResolved'] as const;

export const CLUSTER_LINK_REASONS = [
  'RemoteUnreachable',
  'AuthFailed',
  'SecretNotFound',
  'InvalidTopics',
  'InvalidSpec',
  'ClusterNotFound',
  'Disabled',
  'Misconfigured',
  'NoActiveAgent',
] as const;
