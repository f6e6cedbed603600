/**
 * The operator process: a controller that runs only while this process holds the leader Lease (or always, with
 * leader election off), and a health endpoint. Losing the Lease stops the controller before anybody else can
 * take over (renew deadline < lease duration); the process then campaigns again.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../../broker/src/log/logger.js';
import { parseServerVersion } from '../api/crds.js';
import type { KubeClient } from '../kube/client.js';
import { EventRecorder } from '../kube/events.js';
import type { BackoffOptions } from '../kube/informer.js';
import { LeaderElector, type LeaderElectionConfig } from '../kube/lease.js';
import { FIELD_MANAGER } from '../render/index.js';
import { HttpLinkAgents } from './link-agents.js';
import { Controller } from './controller.js';

export interface OperatorConfig {
  namespaces: string[];
  /** Undefined: no leader election (a single replica). */
  leaderElection?: LeaderElectionConfig;
  health: { host: string; port: number };
  workers: number;
  resyncPeriodMs: number;
  clusterDomain: string;
  linkAgentAdminPort: number;
  linkStatusIntervalMs: number;
  linkRemovalTimeoutMs: number;
  informerBackoff?: BackoffOptions;
}

export interface RunningOperator {
  healthAddress: AddressInfo;
  /** Resolves when stop() finished. */
  stop(): Promise<void>;
}

/** policy/v1 PodDisruptionBudgets exist from 1.21 on. */
async function pdbApiVersion(client: KubeClient, logger: Logger): Promise<'policy/v1' | 'policy/v1beta1'> {
  const info = await client.serverVersion();
  const version = parseServerVersion(info.major, info.minor);
  logger.info({ server: info.gitVersion }, 'connected to the API server');
  return version.major > 1 || version.minor >= 21 ? 'policy/v1' : 'policy/v1beta1';
}

function startHealthServer(config: OperatorConfig['health'], ready: () => boolean): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://health').pathname;
    const ok = path === '/healthz' || (path === '/readyz' && ready());
    const known = path === '/healthz' || path === '/readyz';
    res.writeHead(known ? (ok ? 200 : 503) : 404, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(known ? (ok ? 'ok\n' : 'not ready\n') : 'not found\n');
  });
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`health endpoint ${config.host}:${config.port}: ${err.message}`)));
    server.listen(config.port, config.host, () => resolve(server));
  });
}

export async function startOperator(client: KubeClient, config: OperatorConfig, logger: Logger): Promise<RunningOperator> {
  const pdb = await pdbApiVersion(client, logger);
  const events = new EventRecorder(client, FIELD_MANAGER, logger.child({ component: 'events' }));
  const agents = new HttpLinkAgents(2000, (endpoint, err) => logger.debug({ pod: endpoint.pod, err }, 'no report from a link agent'));
  const newController = (): Controller =>
    new Controller({
      client,
      logger,
      namespaces: config.namespaces,
      workers: config.workers,
      resyncPeriodMs: config.resyncPeriodMs,
      informerBackoff: config.informerBackoff,
      reconciler: {
        events,
        agents,
        options: {
          clusterDomain: config.clusterDomain,
          pdbApiVersion: pdb,
          linkAgentAdminPort: config.linkAgentAdminPort,
          linkStatusIntervalMs: config.linkStatusIntervalMs,
          linkRemovalTimeoutMs: config.linkRemovalTimeoutMs,
        },
      },
    });
  let controller: Controller | undefined;
  const elector = config.leaderElection ? new LeaderElector(client, config.leaderElection, logger.child({ component: 'leader-election' }), events) : undefined;
  // A standby is ready (it is doing its job: waiting); a leader once its caches have synced.
  const health = await startHealthServer(config.health, () => (elector !== undefined && !elector.isLeader) || (controller?.hasSynced ?? false));
  const lead = {
    onStartedLeading: async (): Promise<void> => {
      controller = newController();
      controller.start();
    },
    onStoppedLeading: async (): Promise<void> => {
      await controller?.stop();
      controller = undefined;
    },
  };
  let electing: Promise<void> | undefined;
  if (elector) {
    logger.info({ lease: `${config.leaderElection?.namespace}/${config.leaderElection?.name}`, identity: config.leaderElection?.identity }, 'campaigning for leadership');
    electing = elector.run(lead);
  } else {
    await lead.onStartedLeading();
  }
  return {
    healthAddress: health.address() as AddressInfo,
    stop: async () => {
      if (elector) {
        await elector.stop();
        await electing;
      } else {
        await lead.onStoppedLeading();
      }
      health.closeAllConnections();
      await new Promise<void>((resolve) => health.close(() => resolve()));
      client.close();
    },
  };
}
