import type { LevelWithSilent } from 'pino';

export type ListenerProtocol = 'mqtt' | 'mqtts' | 'ws' | 'wss';

export interface TlsConfig {
  certFile: string;
  keyFile: string;
  /** CA bundle used to verify client certificates. */
  caFile?: string;
  /** Ask clients for a certificate; with `requireClientCert` a connection without a valid one is refused. */
  requestClientCert: boolean;
  requireClientCert: boolean;
  /** When a client certificate was verified, its subject CN becomes the username (no password needed). */
  useCertCommonNameAsUsername: boolean;
}

export interface ListenerConfig {
  name: string;
  protocol: ListenerProtocol;
  host: string;
  port: number;
  /** WebSocket path (ws/wss only). */
  path: string;
  tls?: TlsConfig;
}

export interface AdminConfig {
  host: string;
  port: number;
}

export interface TenantConfig {
  name: string;
  /** Internal topic prefix that the tenant's clients never see. Defaults to `<name>/`. */
  mountpoint: string;
}

export type AclEffect = 'allow' | 'deny';
export type AclAction = 'publish' | 'subscribe' | 'all';

export interface AclRule {
  effect: AclEffect;
  action: AclAction;
  /** MQTT filter as the client sees topics (inside its tenant); `%u` = username, `%c` = client id. */
  topic: string;
  /** Restrict the rule to these usernames; absent = everybody. */
  users?: string[];
  /** Restrict the rule to these tenants; absent = every tenant. */
  tenants?: string[];
}

export interface AuthConfig {
  /**
   * `true`: anonymous clients allowed on every listener; `false`: on none; absent: allowed only on
   * listeners bound to a loopback address (mosquitto 2's local-only mode).
   */
  allowAnonymous?: boolean;
  /** Tenant of anonymous clients. */
  anonymousTenant: string;
  /** YAML file with `users:` entries (username, passwordHash, tenant, superuser). */
  usersFile?: string;
  tenants: TenantConfig[];
  acl: AclRule[];
  /** What happens when no ACL rule matches. */
  aclDefault: AclEffect;
}

export interface LimitsConfig {
  /** Largest MQTT packet accepted from a client, in bytes (whole packet); a larger one closes the connection. */
  maxPacketSize: number;
  maxConnections: number;
  /** Messages queued for one persistent session while offline or beyond the in-flight window. */
  maxQueuedMessages: number;
  /** QoS 2 messages received from one client and not yet released (PUBREL). */
  maxInflightInbound: number;
  maxClientIdLength: number;
  /** Upper bound on the keepalive a client may ask for, in seconds (0 = no bound). */
  maxKeepalive: number;
  maxTopicLevels: number;
}

export interface StoreConfig {
  /**
   * `durable`: every acknowledged write is fsynced before the broker acknowledges the MQTT packet.
   * `relaxed`: writes reach the OS page cache; a machine crash (not a process crash) may lose the last ones.
   */
  durability: 'durable' | 'relaxed';
  /** Largest time writes wait to be committed together (group commit), in milliseconds. */
  commitDelayMs: number;
  /** Upper bound of the store's memory map / size, in MiB. */
  maxSizeMb: number;
}

export interface MqttConfig {
  /** Interval for `$SYS/<node>/...` broker statistics, in seconds (0 = off). */
  sysInterval: number;
  /** Time SIGTERM waits for in-flight acknowledgements before closing connections, in milliseconds. */
  drainTimeoutMs: number;
}

export type NodeRole = 'core' | 'replicant';

export interface ClusterTlsConfig {
  certFile: string;
  keyFile: string;
  caFile: string;
}

export interface ClusterConfig {
  /** Cores hold the cluster's shared state and sync routes among themselves; replicants follow one core. */
  role: NodeRole;
  /** Bind address and port of the intra-cluster listener; port 0 = the OS picks (tests). */
  host: string;
  port?: number;
  /** host:port other nodes dial to reach this one; default host:port (or the first non-loopback address when host is 0.0.0.0). */
  advertise?: string;
  /** Static seed list of cluster addresses (host:port). */
  seeds: string[];
  /** DNS name whose A/AAAA records are the cluster's nodes (a Kubernetes headless Service), re-resolved periodically. */
  discoveryDns?: string;
  discoveryIntervalSeconds: number;
  /** File holding the shared cluster secret (a mounted Kubernetes Secret). */
  secretFile?: string;
  tls?: ClusterTlsConfig;
  /** An actor silent for longer than this loses all its routes. */
  routeTtlSeconds: number;
  heartbeatIntervalMs: number;
  /** Longest wait at the start for a complete regional table before the MQTT listeners open anyway. */
  tableWaitSeconds: number;
}

export interface NodeConfig {
  name: string;
  clusterName: string;
  dataDir: string;
}

export interface LinksSettings {
  /** YAML file of cluster links (`links:` list), watched for changes; absent = no links. */
  file?: string;
}

export interface BrokerConfig {
  node: NodeConfig;
  log: { level: LevelWithSilent };
  listeners: ListenerConfig[];
  admin: AdminConfig;
  auth: AuthConfig;
  limits: LimitsConfig;
  store: StoreConfig;
  mqtt: MqttConfig;
  cluster: ClusterConfig;
  links: LinksSettings;
}
