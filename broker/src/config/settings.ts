/**
 * The settings that have a command-line flag and a `MERIDIAN_*` environment variable besides their key in the
 * config file. One table drives the flag parser, the env reader and `--help`, so the three never disagree.
 */
export type SettingType = 'string' | 'integer' | 'boolean' | 'list';

export interface Setting {
  flag: string;
  /** Dotted key path in the config file; `listeners.mqtt` means the first listener of protocol mqtt. */
  path: string;
  type: SettingType;
  help: string;
}

export const BROKER_SETTINGS: readonly Setting[] = [
  { flag: 'node-name', path: 'node.name', type: 'string', help: 'node name (default: the host name)' },
  { flag: 'cluster-name', path: 'node.clusterName', type: 'string', help: 'cluster name (default: meridian)' },
  { flag: 'data-dir', path: 'node.dataDir', type: 'string', help: 'data directory (default: ./data/<node-name>)' },
  { flag: 'mqtt-host', path: 'listeners.mqtt.host', type: 'string', help: 'MQTT/TCP listener address (default: 127.0.0.1)' },
  { flag: 'mqtt-port', path: 'listeners.mqtt.port', type: 'integer', help: 'MQTT/TCP listener port (default: 1883)' },
  { flag: 'admin-host', path: 'admin.host', type: 'string', help: 'admin HTTP address (default: 127.0.0.1)' },
  { flag: 'admin-port', path: 'admin.port', type: 'integer', help: 'admin HTTP port (default: 8081)' },
  { flag: 'log-level', path: 'log.level', type: 'string', help: 'fatal|error|warn|info|debug|trace|silent (default: info)' },
  { flag: 'allow-anonymous', path: 'auth.allowAnonymous', type: 'boolean', help: 'allow clients without credentials on every listener (default: loopback listeners only)' },
  { flag: 'users-file', path: 'auth.usersFile', type: 'string', help: 'YAML file of users with scrypt password hashes and tenants' },
  { flag: 'max-connections', path: 'limits.maxConnections', type: 'integer', help: 'connections accepted at once (default: 100000)' },
  { flag: 'max-packet-size', path: 'limits.maxPacketSize', type: 'integer', help: 'largest packet accepted, bytes (default: 1048576)' },
  { flag: 'max-queued-messages', path: 'limits.maxQueuedMessages', type: 'integer', help: 'messages queued per persistent session (default: 10000)' },
  { flag: 'role', path: 'cluster.role', type: 'string', help: 'core | replicant (default: core)' },
  { flag: 'cluster-host', path: 'cluster.host', type: 'string', help: 'intra-cluster listener address (default: 127.0.0.1)' },
  { flag: 'cluster-port', path: 'cluster.port', type: 'integer', help: 'intra-cluster listener port; set it (or seeds/discovery) to join a cluster' },
  { flag: 'cluster-advertise', path: 'cluster.advertise', type: 'string', help: 'host:port other nodes dial to reach this node' },
  { flag: 'seeds', path: 'cluster.seeds', type: 'list', help: 'comma-separated cluster addresses (host:port) of other nodes' },
  { flag: 'discovery', path: 'cluster.discoveryDns', type: 'string', help: 'dns:<name> — discover nodes from the A/AAAA records of a headless Service' },
  { flag: 'route-ttl', path: 'cluster.routeTtlSeconds', type: 'integer', help: 'seconds after which a silent node loses its routes (default: 15)' },
  { flag: 'table-wait', path: 'cluster.tableWaitSeconds', type: 'integer', help: 'seconds a starting node waits at most for a complete regional route table before it accepts clients (default: 10)' },
  { flag: 'cluster-secret-file', path: 'cluster.secretFile', type: 'string', help: 'file holding the shared cluster secret' },
  { flag: 'links', path: 'links.file', type: 'string', help: 'YAML file of cluster links to other regions (hot-reloaded)' },
  { flag: 'durability', path: 'store.durability', type: 'string', help: 'durable (fsync before ack) | relaxed (default: durable)' },
];

export function envName(flag: string): string {
  return `MERIDIAN_${flag.toUpperCase().replace(/-/g, '_')}`;
}
