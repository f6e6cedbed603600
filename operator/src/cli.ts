/** `meridian operator`: flags → OperatorConfig, then run until SIGTERM/SIGINT. */
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { parseFlags, UsageError, type ParsedFlags } from '../../broker/src/cli/flags.js';
import { createLogger, LOG_LEVELS } from '../../broker/src/log/logger.js';
import type { LevelWithSilent } from 'pino';
import { KubeClient } from './kube/client.js';
import { startOperator, type OperatorConfig } from './controller/operator.js';
import { PORTS } from './render/index.js';

export const OPERATOR_HELP = `Usage: meridian operator [flags]

Runs the Kubernetes operator: reconciles RegionalClusters and ClusterLinks (meridian.dev/v1alpha1) into
workloads and reports their status. Credentials: --kubeconfig, else $KUBECONFIG / ~/.kube/config, else the
in-cluster service account. With leader election on, only the holder of the Lease acts.

Flags:
  --kubeconfig <file>                        kubeconfig to use
  --log-level <level>                        fatal|error|warn|info|debug|trace|silent (default info)
  --watch-namespaces <a,b>                   namespaces to manage (default: all; needs cluster-wide RBAC)
  --health-host <host>                       address of /healthz and /readyz (default 0.0.0.0)
  --health-port <n>                          port of /healthz and /readyz (default 8090; 0 picks one)
  --leader-election <true|false>             campaign for a Lease before acting (default true)
  --leader-election-namespace <ns>           namespace of the Lease (default $POD_NAMESPACE, else default)
  --leader-election-lease <name>             name of the Lease (default meridian-operator)
  --leader-election-identity <id>            this replica's identity (default $POD_NAME or hostname, plus a suffix)
  --leader-election-lease-duration <d>       a standby takes over after the holder missed renewing this long (default 15s)
  --leader-election-renew-deadline <d>       the leader gives up when it could not renew this long (default 10s)
  --leader-election-retry-period <d>         interval of renewals and attempts (default 2s)
  --workers <n>                              clusters reconciled in parallel (default 2)
  --resync-period <d>                        reconcile every cluster at least this often (default 10m)
  --cluster-domain <domain>                  DNS suffix of Services (default cluster.local)
  --link-agent-admin-port <n>                admin port of the link agents in the core pods, /api/v1/links (default ${PORTS.linkAgentAdmin})
  --link-status-interval <d>                 refresh link status from the link agents this often (default 30s)
  --link-removal-timeout <d>                 a deleted ClusterLink waits this long for every agent to drop the link,
                                             then its finalizer goes anyway with a Warning Event (default 60s)
  -h, --help                                 this help

Durations: a number of seconds (15, 0.5) or a number with ms, s or m (500ms, 15s, 10m).
`;

const STRING_FLAGS = [
  'kubeconfig',
  'log-level',
  'watch-namespaces',
  'health-host',
  'health-port',
  'leader-election',
  'leader-election-namespace',
  'leader-election-lease',
  'leader-election-identity',
  'leader-election-lease-duration',
  'leader-election-renew-deadline',
  'leader-election-retry-period',
  'workers',
  'resync-period',
  'cluster-domain',
  'link-agent-admin-port',
  'link-status-interval',
  'link-removal-timeout',
] as const;

type FlagName = (typeof STRING_FLAGS)[number];

export function parseDurationMs(flag: string, value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim());
  if (!match) throw new UsageError(`--${flag}: '${value}' is not a duration (e.g. 15, 15s, 500ms, 10m)`);
  const unit = match[2] ?? 's';
  const ms = Number(match[1]) * (unit === 'ms' ? 1 : unit === 's' ? 1000 : 60_000);
  if (ms <= 0) throw new UsageError(`--${flag} must be positive`);
  return Math.round(ms);
}

function integer(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${flag}: '${value}' is not an integer in [${min}, ${max}]`);
  return n;
}

function bool(flag: string, value: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new UsageError(`--${flag}: '${value}' is not true or false`);
}

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export interface OperatorCommandConfig extends OperatorConfig {
  kubeconfig?: string;
  logLevel: LevelWithSilent;
}

/** Parses and checks the flags (environment: POD_NAMESPACE, POD_NAME). */
export function operatorConfigFromFlags(flags: ParsedFlags, env: NodeJS.ProcessEnv): OperatorCommandConfig {
  const get = (name: FlagName): string | undefined => flags[name] as string | undefined;
  const logLevel = (get('log-level') ?? 'info') as LevelWithSilent;
  if (!LOG_LEVELS.includes(logLevel)) throw new UsageError(`--log-level: '${logLevel}' is not one of ${LOG_LEVELS.join(', ')}`);
  const namespaces = (get('watch-namespaces') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const ns of namespaces) if (!LABEL.test(ns)) throw new UsageError(`--watch-namespaces: '${ns}' is not a namespace name`);
  const duration = (name: FlagName, fallback: string): number => parseDurationMs(name, get(name) ?? fallback);
  const config: OperatorCommandConfig = {
    kubeconfig: get('kubeconfig'),
    logLevel,
    namespaces: [...new Set(namespaces)],
    health: { host: get('health-host') ?? '0.0.0.0', port: integer('health-port', get('health-port') ?? '8090', 0, 65535) },
    workers: integer('workers', get('workers') ?? '2', 1, 64),
    resyncPeriodMs: duration('resync-period', '10m'),
    clusterDomain: get('cluster-domain') ?? 'cluster.local',
    linkAgentAdminPort: integer('link-agent-admin-port', get('link-agent-admin-port') ?? String(PORTS.linkAgentAdmin), 1, 65535),
    linkStatusIntervalMs: duration('link-status-interval', '30s'),
    linkRemovalTimeoutMs: duration('link-removal-timeout', '60s'),
  };
  if (bool('leader-election', get('leader-election') ?? 'true')) {
    const host = env.POD_NAME || os.hostname();
    config.leaderElection = {
      namespace: get('leader-election-namespace') || env.POD_NAMESPACE || 'default',
      name: get('leader-election-lease') ?? 'meridian-operator',
      identity: get('leader-election-identity') ?? `${host}_${randomBytes(4).toString('hex')}`,
      leaseDurationMs: duration('leader-election-lease-duration', '15s'),
      renewDeadlineMs: duration('leader-election-renew-deadline', '10s'),
      retryPeriodMs: duration('leader-election-retry-period', '2s'),
    };
    const { leaseDurationMs, renewDeadlineMs, retryPeriodMs } = config.leaderElection;
    if (!(retryPeriodMs < renewDeadlineMs && renewDeadlineMs < leaseDurationMs)) {
      throw new UsageError('leader election needs retry period < renew deadline < lease duration');
    }
  }
  return config;
}

function loadKubeConfig(file: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else kc.loadFromDefault();
  return kc;
}

/** Runs `meridian operator` until SIGTERM/SIGINT; resolves with the process exit code. */
export async function runOperatorCommand(argv: string[]): Promise<number> {
  const options = Object.fromEntries([...STRING_FLAGS.map((f) => [f, { type: 'string' as const }]), ['help', { type: 'boolean' as const, short: 'h' }]]);
  const flags = parseFlags(argv, options);
  if (flags.help) {
    process.stdout.write(OPERATOR_HELP);
    return 0;
  }
  const config = operatorConfigFromFlags(flags, process.env);
  const logger = createLogger(config.logLevel, { component: 'operator', ...(config.leaderElection ? { identity: config.leaderElection.identity } : {}) });
  let client: KubeClient;
  try {
    client = new KubeClient(loadKubeConfig(config.kubeconfig));
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, 'cannot load a kubeconfig');
    return 1;
  }
  let operator: Awaited<ReturnType<typeof startOperator>>;
  try {
    operator = await startOperator(client, config, logger);
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, 'operator failed to start');
    client.close();
    return 1;
  }
  logger.info({ health: `${operator.healthAddress.address}:${operator.healthAddress.port}`, namespaces: config.namespaces.length ? config.namespaces : 'all' }, 'operator started');
  return new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      logger.info({ signal }, 'stopping');
      operator.stop().then(
        () => resolve(0),
        (err: unknown) => {
          logger.error({ err: (err as Error).message }, 'stop failed');
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
}

export { UsageError };
