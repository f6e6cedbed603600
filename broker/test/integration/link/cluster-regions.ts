import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
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

/** A link's status as an agent reports it: `role` says whether this agent serves the link. */
export type AgentLinkInfo = LinkInfo & { role?: 'active' | 'standby'; server: string | null };

/**
 * A region that is a regional cluster: one core and optionally one replicant; the link agent is embedded in the
 * core (`--links`) or runs as a sidecar (`meridian link-agent`) joined to the cluster. Processes are stopped by PID
 * in `dispose`.
 */
export class ClusterRegion {
  core!: BrokerProcess;
  replicant?: BrokerProcess;
  /** The sidecar agents (`meridian link-agent`), each with its own node name, data directory and cluster port. */
  readonly sidecars: SidecarProcess[] = [];
  private readonly sidecarArgs: string[][] = [];
  readonly dir: string;
  private nodeExtra: string[] = [];
  /** How each node was started (cluster port, seeds, flags), so it can be started again on the same ones. */
  private readonly nodeStarts = new Map<string, { role: 'core' | 'replicant'; clusterPort: number; seeds: string[]; extra: string[] }>();

  constructor(readonly name: string) {
    this.dir = mkdtempSync(path.join(tmpdir(), `meridian-link-cluster-${name}-`));
  }

  get linksFile(): string { return path.join(this.dir, 'links', 'links.yaml'); }
  get coreName(): string { return `${this.name}-core`; }
  get sidecar(): SidecarProcess | undefined { return this.sidecars[0]; }

  /** Node name of sidecar `i`: `<region>-agent`, then `<region>-agent-1`, ... */
  agentName(i: number): string { return i === 0 ? `${this.name}-agent` : `${this.name}-agent-${i}`; }

  /**
   * Writes the links file (every link's password is the shared test one), then starts the nodes. `sidecars` agents
   * (default 1 with `sidecar`) share the links file; `routeTtl` (seconds) goes to every node and agent.
   */
  async start(links: LinkEntry[], options: { replicant: boolean; sidecar?: boolean; sidecars?: number; routeTtl?: number; replicantLinks?: boolean }): Promise<void> {
    const ttl = options.routeTtl === undefined ? [] : ['--route-ttl', String(options.routeTtl)];
    this.nodeExtra = ttl;
    const users = path.join(this.dir, 'users.yaml');
    writeFileSync(users, `users:\n  - { username: ${LINK_USER}, superuser: true, passwordHash: "${await hashPassword(LINK_PASSWORD, { N: 1024, r: 8, p: 1 })}" }\n`);
    writeFileSync(path.join(this.dir, 'link-password'), `${LINK_PASSWORD}\n`);
    writeFileSync(path.join(this.dir, 'secret'), randomBytes(32).toString('base64'));
    mkdirSync(path.dirname(this.linksFile), { recursive: true });
    writeFileSync(this.linksFile, this.linksYaml(links));
    const corePort = await freePort();
    this.core = await this.startNode(this.coreName, 'core', corePort, [`127.0.0.1:${corePort}`], options.sidecar || (options.sidecars ?? 0) > 0 ? [] : ['--links', this.linksFile]);
    // `replicantLinks`: the replicant runs an embedded agent with the same links file too (a misconfiguration the agents guard against).
    const replicantExtra = options.replicantLinks ? ['--links', this.linksFile] : [];
    if (options.replicant) this.replicant = await this.startNode(`${this.name}-replicant`, 'replicant', await freePort(), [`127.0.0.1:${corePort}`], replicantExtra);
    const count = options.sidecars ?? (options.sidecar ? 1 : 0);
    for (let i = 0; i < count; i++) {
      this.sidecarArgs.push([
        '--links', this.linksFile, '--cluster-name', this.name, '--seeds', `127.0.0.1:${corePort}`,
        '--cluster-secret-file', path.join(this.dir, 'secret'), '--data-dir', path.join(this.dir, i === 0 ? 'agent' : `agent-${i}`),
        '--node-name', this.agentName(i), '--cluster-host', '127.0.0.1', '--cluster-port', String(await freePort()), ...ttl,
      ]);
    }
    this.sidecars.push(...await Promise.all(this.sidecarArgs.map((args) => SidecarProcess.start(args))));
  }

  /** `kill -9` of sidecar agent `i`. */
  async killSidecar(i = 0): Promise<void> {
    await this.sidecars[i]?.stop('SIGKILL');
  }

  /** Starts sidecar `i` again on the same data directory, node name and cluster address (`env`: test hooks). */
  async restartSidecar(i = 0, env?: NodeJS.ProcessEnv): Promise<void> {
    await this.sidecars[i]?.stop('SIGTERM');
    this.sidecars[i] = await SidecarProcess.start(this.sidecarArgs[i], undefined, env);
  }

  /** The link's status: with several sidecars, from the one that is active for it (else the first that answers). */
  async link(name: string): Promise<AgentLinkInfo> {
    if (this.sidecars.length > 1) {
      const all = (await this.linkOnAgents(name)).filter((l): l is AgentLinkInfo => l !== null);
      const found = all.find((l) => l.role === 'active') ?? all[0];
      if (!found) throw new Error(`region ${this.name}: no agent answers for link ${name}`);
      return found;
    }
    const body = this.sidecar ? await this.sidecar.getJson<{ links: AgentLinkInfo[] }>('/api/v1/links') : (await this.core.getJson<{ links: AgentLinkInfo[] }>('/api/v1/links')).body;
    const found = body.links.find((l) => l.name === name);
    if (!found) throw new Error(`region ${this.name} has no link ${name}; logs:\n${(this.sidecar ?? this.core).logs.slice(-30).join('\n')}`);
    return found;
  }

  /** The link's status on every sidecar, in sidecar order (null for one that is down). */
  linkOnAgents(name: string): Promise<Array<AgentLinkInfo | null>> {
    return Promise.all(this.sidecars.map(async (sidecar) => {
      if (sidecar.child.exitCode !== null || sidecar.child.signalCode !== null) return null;
      const body = await sidecar.getJson<{ links: AgentLinkInfo[] }>('/api/v1/links').catch(() => null);
      return body?.links.find((l) => l.name === name) ?? null;
    }));
  }

  /** A client of the replicant (the core when there is none). */
  client(options: IClientOptions = {}): Promise<MqttClient> {
    return connectClient((this.replicant ?? this.core).mqttPort, options);
  }

  async dispose(): Promise<void> {
    await Promise.all([this.core?.dispose(), this.replicant?.dispose(), ...this.sidecars.map((s) => s.stop('SIGKILL'))]);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Starts the core or the replicant again (after a kill) on its data directory, name, cluster port and flags. */
  async restartNode(which: 'core' | 'replicant'): Promise<BrokerProcess> {
    const nodeName = which === 'core' ? this.coreName : `${this.name}-replicant`;
    const start = this.nodeStarts.get(nodeName);
    if (!start) throw new Error(`region ${this.name} has no ${which} to restart`);
    await (which === 'core' ? this.core : this.replicant)?.stop('SIGKILL');
    const node = await this.startNode(nodeName, start.role, start.clusterPort, start.seeds, start.extra);
    if (which === 'core') this.core = node;
    else this.replicant = node;
    return node;
  }

  private startNode(nodeName: string, role: 'core' | 'replicant', clusterPort: number, seeds: string[], extra: string[]): Promise<BrokerProcess> {
    this.nodeStarts.set(nodeName, { role, clusterPort, seeds, extra });
    return BrokerProcess.start({
      nodeName, dataDir: path.join(this.dir, nodeName),
      args: [
        '--cluster-name', this.name, '--role', role, '--cluster-host', '127.0.0.1', '--cluster-port', String(clusterPort),
        '--seeds', seeds.join(','), '--cluster-secret-file', path.join(this.dir, 'secret'),
        '--users-file', path.join(this.dir, 'users.yaml'), ...this.nodeExtra, ...extra,
      ],
    });
  }

  /** Replaces the links file atomically (write + rename), as a ConfigMap update does; running agents reload it. */
  writeLinks(links: LinkEntry[]): void {
    const tmp = `${this.linksFile}.tmp`;
    writeFileSync(tmp, this.linksYaml(links));
    renameSync(tmp, this.linksFile);
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
  /** The proxy B's agent dials A through, and the one A's agent dials B through. */
  toA: TcpProxy;
  toB: TcpProxy;
  /** Stops both regions and their proxies. */
  dispose(): Promise<void>;
}

/**
 * Regions `a` and `b` as clusters (agents embedded in the cores), linked both ways through proxies, once both links
 * report connected. A always has a replicant; B has one when `bReplicant`.
 */
export async function linkedClusterRegions(a: string, b: string, bReplicant: boolean, connectTimeoutMs = 15000): Promise<LinkedClusterRegions> {
  return linkedTwoRegions(a, b, { sidecar: false, bReplicant, connectTimeoutMs });
}

/**
 * Region `a` with a replicant and a sidecar agent (`meridian link-agent`), `b` a cluster with the agent embedded in
 * its core, linked both ways through proxies, once both links report connected. B's agent reaches A through A's
 * replicant's ordinary MQTT listener, not through the sidecar.
 */
export async function linkedSidecarRegions(a: string, b: string, options: { bReplicant: boolean }): Promise<LinkedClusterRegions> {
  return linkedTwoRegions(a, b, { sidecar: true, bReplicant: options.bReplicant, connectTimeoutMs: 30000 });
}

async function linkedTwoRegions(a: string, b: string, options: { sidecar: boolean; bReplicant: boolean; connectTimeoutMs: number }): Promise<LinkedClusterRegions> {
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
    await A.start([{ name: b, servers: [toB.address], topics: ['#'] }], { replicant: true, sidecar: options.sidecar });
    await B.start([{ name: a, servers: [toA.address], topics: ['#'] }], { replicant: options.bReplicant });
    toB.setTarget(B.core.mqttPort);
    toA.setTarget((options.sidecar ? A.replicant ?? A.core : A.core).mqttPort);
    await waitFor(async () => (await A.link(b)).state === 'connected' && (await B.link(a)).state === 'connected', 'both links connected', options.connectTimeoutMs);
  } catch (err) {
    await dispose();
    throw err;
  }
  return { A, B, toA, toB, dispose };
}

/**
 * Registers the set-up and teardown of a describe block over two linked regions: `start` runs in beforeAll and its
 * regions are handed to `use`; afterAll ends every client passed to `track` (listed in `clients`) and disposes the regions.
 */
export function linkedRegionsFixture(start: () => Promise<LinkedClusterRegions>, use: (regions: LinkedClusterRegions) => void): { track: <T extends MqttClient>(client: T) => T; clients: readonly MqttClient[] } {
  let regions: LinkedClusterRegions | undefined;
  const clients: MqttClient[] = [];
  beforeAll(async () => {
    regions = await start();
    use(regions);
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await regions?.dispose();
  });
  return { track: <T extends MqttClient>(client: T): T => { clients.push(client); return client; }, clients };
}


/**
 * Region `mz` (core + replicant + two sidecar agents sharing its links, route TTL 9 s) linked both ways with `nb`
 * and `nc` (one core each, embedded agents), every link through its own proxy (pushed to `proxies` for the caller
 * to close). nb's agent reaches mz through the replicant, nc's through the core: neither talks to a sidecar directly.
 */
export async function sharedAgentRegions(proxies: TcpProxy[]): Promise<{ M: ClusterRegion; B: ClusterRegion; C: ClusterRegion }> {
  const [toB, toC, toMfromB, toMfromC] = await Promise.all([TcpProxy.start(1), TcpProxy.start(1), TcpProxy.start(1), TcpProxy.start(1)]);
  proxies.push(toB, toC, toMfromB, toMfromC);
  const M = new ClusterRegion('mz');
  const B = new ClusterRegion('nb');
  const C = new ClusterRegion('nc');
  try {
    await M.start([{ name: 'nb', servers: [toB.address], topics: ['#'] }, { name: 'nc', servers: [toC.address], topics: ['#'] }],
      { replicant: true, sidecars: 2, routeTtl: 9 });
    await B.start([{ name: 'mz', servers: [toMfromB.address], topics: ['#'] }], { replicant: false });
    await C.start([{ name: 'mz', servers: [toMfromC.address], topics: ['#'] }], { replicant: false });
    toB.setTarget(B.core.mqttPort);
    toC.setTarget(C.core.mqttPort);
    toMfromB.setTarget((M.replicant ?? M.core).mqttPort);
    toMfromC.setTarget(M.core.mqttPort);
    await waitFor(async () => (await M.link('nb')).state === 'connected' && (await M.link('nc')).state === 'connected'
      && (await B.link('mz')).state === 'connected' && (await C.link('mz')).state === 'connected', 'all links connected', 40000);
  } catch (err) {
    // The caller gets no regions to dispose of; its afterAll closes the proxies.
    await Promise.all([M.dispose(), B.dispose(), C.dispose()]);
    throw err;
  }
  return { M, B, C };
}
