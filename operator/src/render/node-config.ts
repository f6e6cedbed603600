/**
 * The broker configuration file every node of a RegionalCluster starts with, in the broker's own format
 * (broker/src/config/schema.ts). Settings that differ per pod (node name, role, advertised address) are
 * command-line flags instead, so one ConfigMap serves every node. Pure: the e2e harness renders local
 * clusters with it, passing its own paths.
 */
import type { AclRule as BrokerAclRule, AdminConfig, ListenerConfig, LimitsConfig, MqttConfig, StoreConfig, TlsConfig } from '../../../broker/src/config/types.js';
import type { AclRule, ListenerSpec, LogLevel, RegionalCluster } from '../api/types.js';
import { PORTS, POD_PATHS } from './names.js';

/** File locations the configuration refers to. */
export interface NodeConfigPaths {
  nodeDataDir: string;
  /** Users file, when spec.auth.usersSecret is set. */
  usersFile: string;
  /** Directory holding `<secretName>/tls.crt|tls.key|ca.crt` for the listeners' TLS Secrets. */
  tlsDir: string;
  /** Interface the listeners and the admin API bind to. */
  bindHost: string;
}

export const POD_NODE_CONFIG_PATHS: NodeConfigPaths = {
  nodeDataDir: POD_PATHS.nodeDataDir,
  usersFile: `${POD_PATHS.usersDir}/users.yaml`,
  tlsDir: POD_PATHS.tlsDir,
  bindHost: '0.0.0.0',
};

export type NodeListenerConfig = Omit<ListenerConfig, 'path' | 'tls'> & { path?: string; tls?: TlsConfig };

/** The subset of BrokerConfig the operator writes; the broker fills the rest with its defaults. */
export interface NodeConfigFile {
  node: { clusterName: string; dataDir: string };
  log: { level: LogLevel };
  listeners: NodeListenerConfig[];
  admin: AdminConfig;
  auth: {
    allowAnonymous: boolean;
    anonymousTenant?: string;
    usersFile?: string;
    tenants: { name: string; mountpoint?: string }[];
    acl: BrokerAclRule[];
    aclDefault: 'allow' | 'deny';
  };
  limits?: Partial<LimitsConfig>;
  store?: Partial<StoreConfig>;
  mqtt?: Partial<MqttConfig>;
}

function listenerConfig(listener: ListenerSpec, paths: NodeConfigPaths): NodeListenerConfig {
  const config: NodeListenerConfig = {
    name: listener.name,
    protocol: listener.protocol.toLowerCase() as ListenerConfig['protocol'],
    host: paths.bindHost,
    port: listener.port,
  };
  if (listener.protocol === 'WS' || listener.protocol === 'WSS') config.path = listener.path ?? '/mqtt';
  if (listener.tls) {
    const dir = `${paths.tlsDir}/${listener.tls.secretName}`;
    const clientAuth = listener.tls.clientAuth ?? 'None';
    config.tls = {
      certFile: `${dir}/tls.crt`,
      keyFile: `${dir}/tls.key`,
      ...(clientAuth === 'None' ? {} : { caFile: `${dir}/ca.crt` }),
      requestClientCert: clientAuth !== 'None',
      requireClientCert: clientAuth === 'Require',
      useCertCommonNameAsUsername: listener.tls.useCertCommonNameAsUsername ?? false,
    };
  }
  return config;
}

function aclRule(rule: AclRule): BrokerAclRule {
  return {
    effect: rule.effect === 'Allow' ? 'allow' : 'deny',
    action: rule.action.toLowerCase() as BrokerAclRule['action'],
    topic: rule.topic,
    ...(rule.users ? { users: [...rule.users] } : {}),
    ...(rule.tenants ? { tenants: [...rule.tenants] } : {}),
  };
}

/** Drops undefined entries so the YAML never carries `key: null`. */
function defined<T extends object>(value: T | undefined): T | undefined {
  if (!value) return undefined;
  const entries = Object.entries(value).filter(([, v]) => v !== undefined);
  return entries.length ? (Object.fromEntries(entries) as T) : undefined;
}

/** `cluster` must have schema defaults applied (withRegionalClusterDefaults). */
export function renderNodeConfig(cluster: RegionalCluster, paths: NodeConfigPaths = POD_NODE_CONFIG_PATHS): NodeConfigFile {
  const { spec } = cluster;
  const auth = spec.auth ?? {};
  const config: NodeConfigFile = {
    node: { clusterName: spec.clusterName, dataDir: paths.nodeDataDir },
    log: { level: spec.config?.logLevel ?? 'info' },
    listeners: (spec.listeners ?? []).map((l) => listenerConfig(l, paths)),
    admin: { host: paths.bindHost, port: PORTS.admin },
    auth: {
      allowAnonymous: auth.allowAnonymous ?? false,
      ...(auth.anonymousTenant ? { anonymousTenant: auth.anonymousTenant } : {}),
      ...(auth.usersSecret ? { usersFile: paths.usersFile } : {}),
      tenants: (auth.tenants ?? []).map((t) => ({ name: t.name, ...(t.mountpoint === undefined ? {} : { mountpoint: t.mountpoint }) })),
      acl: (auth.acl ?? []).map(aclRule),
      aclDefault: auth.aclDefault === 'Deny' ? 'deny' : 'allow',
    },
  };
  const limits = defined(spec.config?.limits);
  const store = defined(spec.config?.store);
  const mqtt = defined(spec.config?.mqtt);
  if (limits) config.limits = limits;
  if (store) config.store = store;
  if (mqtt) config.mqtt = mqtt;
  return config;
}
