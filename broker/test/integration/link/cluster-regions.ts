import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { IClientOptions, MqttClient } from 'mqtt';
import { BrokerProcess } from '../../harness/broker-process.js';
import { freePort } from '../../harness/cluster.js';
import { hashPassword } from '../../../src/mqtt/auth/password.js';
import { TcpProxy } from '../../harness/tcp-proxy.js';
import { connectClient, LINK_USER, waitFor, type LinkEntry, type LinkInfo } from './regions.js';
import { SidecarProcess } from './sidecar-process.js';

const LINK_PASSWORD = 'link-secret';

/**
 * A region that is a regional cluster: one core and optionally one replicant; the link agent is embedded in the
 * core (`--links`) or runs as a sidecar (`meridian link-agent`) joined to the cluster. Processes are stopped by PID
 * in `dispose`.
 */
export class ClusterRegion {
  core!: BrokerProcess;
  replicant?: BrokerProcess;
  sidecar?: SidecarProcess;
  private sidecarArgs: string[] = [];
  readonly dir: string;

  constructor(readonly name: string) {
    this.dir = mkdtempSync(path.join(tmpdir(), `meridian-link-cluster-${name}-`));
  }

  get linksFile(): string { return path.join(this.dir, 'links', 'links.yaml'); }
  get coreName(): string { return `${this.name}-core`; }

  /** Writes the links file (every link's password is the shared test one), then starts the nodes. */
  async start(links: LinkEntry[], options: { replicant: boolean; sidecar?: boolean }): Promise<void> {
    const users = path.join(this.dir, 'users.yaml');
    writeFileSync(users, `users:\n  - { username: ${LINK_USER}, superuser: true, passwordHash: "${await hashPassword(LINK_PASSWORD, { N: 1024, r: 8, p: 1 })}" }\n`);
    writeFileSync(path.join(this.dir, 'link-password'), `${LINK_PASSWORD}\n`);
    writeFileSync(path.join(this.dir, 'secret'), randomBytes(32).toString('base64'));
    mkdirSync(path.dirname(this.linksFile), { recursive: true });
    writeFileSync(this.linksFile, this.linksYaml(links));
    const corePort = await freePort();
    this.core = await this.startNode(this.coreName, 'core', corePort, [`127.0.0.1:${corePort}`], options.sidecar ? [] : ['--links', this.linksFile]);
    if (options.replicant) this.replicant = await this.startNode(`${this.name}-replicant`, 'replicant', await freePort(), [`127.0.0.1:${corePort}`], []);
    if (options.sidecar) {
      this.sidecarArgs = [
        '--links', this.linksFile, '--cluster-name', this.name, '--seeds', `127.0.0.1:${corePort}`,
        '--cluster-secret-file', path.join(this.dir, 'secret'), '--data-dir', path.join(this.dir, 'agent'), '--node-name', `${this.name}-agent`,
        '--cluster-host', '127.0.0.1', '--cluster-port', String(await freePort()),
      ];
      this.sidecar = await SidecarProcess.start(this.sidecarArgs);
    }
  }

  /** `kill -9` of the sidecar agent. */
  async killSidecar(): Promise<void> {
    await this.sidecar?.stop('SIGKILL');
  }

  /** Starts the sidecar again on the same data directory, node name and cluster address. */
  async restartSidecar(): Promise<void> {
    await this.sidecar?.stop('SIGTERM');
    this.sidecar = await SidecarProcess.start(this.sidecarArgs);
  }

  async link(name: string): Promise<LinkInfo> {
    const body = this.sidecar ? await this.sidecar.getJson<{ links: LinkInfo[] }>('/api/v1/links') : (await this.core.getJson<{ links: LinkInfo[] }>('/api/v1/links')).body;
    const found = body.links.find((l) => l.name === name);
    if (!found) throw new Error(`region ${this.name} has no link ${name}; logs:\n${(this.sidecar ?? this.core).logs.slice(-30).join('\n')}`);
    return found;
  }

  /** A client of the replicant (the core when there is none). */
  client(options: IClientOptions = {}): Promise<MqttClient> {
    return connectClient((this.replicant ?? this.core).mqttPort, options);
  }

  async dispose(): Promise<void> {
    await Promise.all([this.core?.dispose(), this.replicant?.dispose(), this.sidecar?.stop('SIGKILL')]);
    rmSync(this.dir, { recursive: true, force: true });
  }

  private startNode(nodeName: string, role: 'core' | 'replicant', clusterPort: number, seeds: string[], extra: string[]): Promise<BrokerProcess> {
    return BrokerProcess.start({
      nodeName, dataDir: path.join(this.dir, nodeName),
      args: [
        '--cluster-name', this.name, '--role', role, '--cluster-host', '127.0.0.1', '--cluster-port', String(clusterPort),
        '--seeds', seeds.join(','), '--cluster-secret-file', path.join(this.dir, 'secret'),
        '--users-file', path.join(this.dir, 'users.yaml'), ...extra,
      ],
    });
  }

  private linksYaml(links: LinkEntry[]): string {
    const lines = ['links:'];
    for (const l of links) {
      lines.push(`  - name: ${l.name}`, `    servers: ${JSON.stringify(l.servers)}`, `    username: ${LINK_USER}`,
        `    passwordFile: ${path.join(this.dir, 'link-password')}`, `    topics: ${JSON.stringify(l.topics)}`);
      if (l.extra) lines.push(l.extra);
    }
    return `${lines.join('\n')}\n`;
  }
}

export interface LinkedClusterRegions {
  A: ClusterRegion;
  B: ClusterRegion;
  /** Stops both regions and their proxies. */
  dispose(): Promise<void>;
}

/**
 * Regions `a` and `b` as clusters (agents embedded in the cores), linked both ways through proxies, once both links
 * report connected. A always has a replicant; B has one when `bReplicant`.
 */
export async function linkedClusterRegions(a: string, b: string, bReplicant: boolean): Promise<LinkedClusterRegions> {
  const toB = await TcpProxy.start(1);
  const toA = await TcpProxy.start(1);
  const A = new ClusterRegion(a);
  const B = new ClusterRegion(b);
  const dispose = async (): Promise<void> => {
    await A.dispose();
    await B.dispose();
    await toA.close();
    await toB.close();
  };
  try {
    await A.start([{ name: b, servers: [toB.address], topics: ['#'] }], { replicant: true });
    await B.start([{ name: a, servers: [toA.address], topics: ['#'] }], { replicant: bReplicant });
    toB.setTarget(B.core.mqttPort);
    toA.setTarget(A.core.mqttPort);
    await waitFor(async () => (await A.link(b)).state === 'connected' && (await B.link(a)).state === 'connected', 'both links connected');
  } catch (err) {
    await dispose();
    throw err;
  }
  return { A, B, dispose };
}
