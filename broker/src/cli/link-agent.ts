import { hostname } from 'node:os';
import path from 'node:path';
import type { LevelWithSilent } from 'pino';
import { BrokerMetrics } from '../admin/metrics.js';
import { AdminServer } from '../admin/server.js';
import { createLogger, type Logger } from '../log/logger.js';
import { LinkAgent, stickyGraceDefaultMs } from '../link/agent.js';
import { LinkSidecar, sidecarClusterIncarnation } from '../link/sidecar.js';
import { openStore, type NodeStore } from '../store/index.js';
import { parseFlags, UsageError, type ParsedFlags } from './flags.js';

export const LINK_AGENT_HELP = `Usage: meridian link-agent --links <file> --cluster-name <name> --seeds <host:port,...> --cluster-secret-file <file> [flags]

Runs the cluster-link agent as a sidecar: it joins the local regional cluster over the intra-cluster transport
(role agent) and runs the links of the links file (the same code as 'meridian broker --links').

Flags:
  --links <file>                YAML links file (links: [...]), hot-reloaded
  --cluster-name <name>         the local cluster's name
  --seeds <list>                comma-separated cluster addresses (host:port) of the cluster's nodes
  --cluster-secret-file <file>  the cluster's shared secret
  --node-name <name>            the agent's node id in the cluster (default: link-agent-<hostname>)
  --data-dir <dir>              link queues, de-duplication marks, incarnations (default: ./data/<node-name>)
  --admin-host <host>           admin HTTP address (default: 127.0.0.1)
  --admin-port <n>              admin HTTP port: /healthz, /metrics, /api/v1/links (default: 8082; 0 = any)
  --cluster-host <host>         the agent's cluster listener address (default: 0.0.0.0)
  --cluster-port <n>            the agent's cluster listener port (default: 4371; 0 = any)
  --cluster-advertise <addr>    host:port other nodes dial (needed when --cluster-host is a wildcard)
  --route-ttl <seconds>         routes of a silent node expire after this (default: 15, as the nodes')
  --move-grace <seconds>        with several agents: how long an agent may be away (a restart) before another one
                                takes its links over; below --route-ttl (default: 2/3 of it, two route heartbeats)
  --durability <mode>           durable | relaxed (default: durable)
  --log-level <level>           trace | debug | info | warn | error (default: info)
  -h, --help                    this help
`;

const FLAGS = {
  links: { type: 'string' }, 'cluster-name': { type: 'string' }, seeds: { type: 'string' }, 'cluster-secret-file': { type: 'string' },
  'node-name': { type: 'string' }, 'data-dir': { type: 'string' }, 'admin-host': { type: 'string' }, 'admin-port': { type: 'string' },
  'cluster-host': { type: 'string' }, 'cluster-port': { type: 'string' }, 'cluster-advertise': { type: 'string' },
  'route-ttl': { type: 'string' }, 'move-grace': { type: 'string' }, durability: { type: 'string' }, 'log-level': { type: 'string' }, help: { type: 'boolean', short: 'h' },
} as const;

export interface LinkAgentSettings {
  links: string;
  clusterName: string;
  seeds: string[];
  secretFile: string;
  nodeName: string;
  dataDir: string;
  adminHost: string;
  adminPort: number;
  clusterHost: string;
  clusterPort: number;
  advertise?: string;
  routeTtlSeconds: number;
  /** Grace before the links of an agent that went away move (ms). */
  moveGraceMs: number;
  durability: 'durable' | 'relaxed';
  logLevel: LevelWithSilent;
}

/** Checks the flags; every problem is a UsageError naming the flag. */
export function linkAgentSettings(flags: ParsedFlags): LinkAgentSettings {
  const required = (name: string): string => {
    const value = flags[name];
    if (typeof value !== 'string' || value.trim() === '') throw new UsageError(`--${name} is required`);
    return value.trim();
  };
  const links = required('links');
  const clusterName = required('cluster-name');
  const secretFile = required('cluster-secret-file');
  const seeds = required('seeds').split(',').map((s) => s.trim()).filter((s) => s !== '');
  const nodeName = (flags['node-name'] as string | undefined) ?? `link-agent-${hostname()}`;
  const clusterHost = (flags['cluster-host'] as string | undefined) ?? '0.0.0.0';
  const clusterPort = integerFlag(flags, 'cluster-port', 4371, 0, 65535);
  const advertise = flags['cluster-advertise'] as string | undefined;
  if (advertise === undefined && (isWildcard(clusterHost) || clusterPort === 0)) {
    throw new UsageError('--cluster-advertise is required when --cluster-host is a wildcard or --cluster-port is 0 (other nodes must know where to dial)');
  }
  const durability = (flags.durability as string | undefined) ?? 'durable';
  if (durability !== 'durable' && durability !== 'relaxed') throw new UsageError(`--durability must be durable or relaxed, got '${durability}'`);
  const routeTtlSeconds = integerFlag(flags, 'route-ttl', 15, 1, 86400);
  const moveGraceMs = moveGraceFlag(flags, routeTtlSeconds);
  const logLevel = (flags['log-level'] as string | undefined) ?? 'info';
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(logLevel)) throw new UsageError(`--log-level '${logLevel}' is not a level`);
  return {
    links, clusterName, seeds, secretFile, nodeName,
    dataDir: (flags['data-dir'] as string | undefined) ?? path.join('data', nodeName),
    adminHost: (flags['admin-host'] as string | undefined) ?? '127.0.0.1', adminPort: integerFlag(flags, 'admin-port', 8082, 0, 65535),
    clusterHost, clusterPort, advertise, routeTtlSeconds, moveGraceMs,
    durability, logLevel: logLevel as LevelWithSilent,
  };
}

/** Runs `meridian link-agent` until SIGTERM/SIGINT; resolves with the process exit code. */
export async function runLinkAgentCommand(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, FLAGS);
  if (flags.help) {
    process.stdout.write(LINK_AGENT_HELP);
    return 0;
  }
  const settings = linkAgentSettings(flags);
  const logger = createLogger(settings.logLevel, { node: settings.nodeName });
  const running = new RunningAgent(settings, logger);
  const stopped = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      logger.info({ signal }, 'stopping');
      running.stop().then(() => resolve(0), (err: unknown) => {
        logger.error({ err: (err as Error).message }, 'stop failed');
        resolve(1);
      });
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
  try {
    await running.start();
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, 'link agent failed to start');
    await running.stop().catch(() => undefined);
    return 1;
  }
  return stopped;
}

/** Admin endpoint, store, cluster membership and the agent, started and stopped in dependency order. */
class RunningAgent {
  private readonly metrics = new BrokerMetrics();
  private readonly admin: AdminServer;
  private store?: NodeStore;
  private sidecar?: LinkSidecar;
  private agent?: LinkAgent;

  constructor(private readonly settings: LinkAgentSettings, private readonly logger: Logger) {
    this.admin = new AdminServer(logger.child({ component: 'admin' }));
  }

  async start(): Promise<void> {
    const { settings, logger, admin, metrics } = this;
    admin.route('GET', '/healthz', () => ({ status: 200, body: 'ok' }));
    admin.route('GET', '/readyz', () => (this.agent ? { status: 200, body: 'ready' } : { status: 503, body: 'not ready: joining the cluster' }));
    admin.route('GET', '/metrics', async () => ({ status: 200, body: await metrics.registry.metrics(), contentType: metrics.registry.contentType }));
    admin.route('GET', '/api/v1/link-agent', () => ({ status: 200, body: this.sidecar?.describe() ?? {} }));
    const adminAddress = await admin.listen(settings.adminHost, settings.adminPort);
    this.store = await openStore({
      dir: settings.dataDir, durability: settings.durability, commitDelayMs: 0, maxSizeMb: 4096, maxQueuedMessages: 1000,
      logger: logger.child({ component: 'store' }), onWriteLatency: (seconds) => metrics.storeWriteSeconds.observe(seconds),
    });
    this.sidecar = await LinkSidecar.create({
      clusterName: settings.clusterName, nodeName: settings.nodeName, seeds: settings.seeds, secretFile: settings.secretFile,
      clusterHost: settings.clusterHost, clusterPort: settings.clusterPort, advertise: settings.advertise,
      routeTtlSeconds: settings.routeTtlSeconds, incarnation: await sidecarClusterIncarnation(this.store.area('cluster-incarnation'), this.store.incarnation), logger, metrics,
      membersArea: this.store.area('cluster-members'),
    });
    this.agent = await LinkAgent.startSidecar({
      clusterName: settings.clusterName, nodeName: settings.nodeName, logger, metrics, admin, store: this.store, region: this.sidecar,
    }, { file: settings.links, moveGraceMs: settings.moveGraceMs, routeTtlMs: settings.routeTtlSeconds * 1000 });
    const agent = this.agent;
    this.sidecar.attach((message, from) => agent.forwarded(message, from));
    const joinDelayMs = agent.joinDelayMs();
    if (joinDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, joinDelayMs));
    await this.sidecar.join();
    logger.info({ cluster: settings.clusterName, admin: `${adminAddress.address}:${adminAddress.port}`, incarnation: this.store.incarnation }, 'link agent ready');
  }

  async stop(): Promise<void> {
    await this.agent?.stop();
    await this.sidecar?.stop();
    await this.store?.close();
    await this.admin.close();
    this.logger.info('link agent stopped');
  }
}

function integerFlag(flags: ParsedFlags, name: string, fallback: number, min: number, max: number): number {
  const raw = flags[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) throw new UsageError(`--${name} must be an integer in ${min}..${max}, got '${String(raw)}'`);
  return value;
}

/** `--move-grace` in seconds (decimals allowed), below the route TTL; default two route heartbeats (2/3 of the TTL). */
function moveGraceFlag(flags: ParsedFlags, routeTtlSeconds: number): number {
  const raw = flags['move-grace'];
  if (raw === undefined) return stickyGraceDefaultMs(routeTtlSeconds * 1000);
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds < 0 || seconds >= routeTtlSeconds) {
    throw new UsageError(`--move-grace must be a number of seconds from 0 to below --route-ttl (${routeTtlSeconds}), got '${String(raw)}'`);
  }
  return Math.round(seconds * 1000);
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}
