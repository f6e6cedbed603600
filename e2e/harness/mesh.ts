/**
 * The three-region local mesh: each region a real regional cluster (2 cores + 1 replicant + link agents) started
 * from the operator's rendering of e2e/manifests/<region>.yaml, linked as a full mesh through latency and fault
 * proxies (one per ordered region pair and remote node). Everything is stopped by PID in stop(), also on failure.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TcpProxy } from '../../broker/test/harness/tcp-proxy.js';
import { assertPortsFree, freePort, reservePorts } from './ports.js';
import { watchDir } from './process.js';
import { Region, type RegionPorts } from './region.js';
import { loadRegionManifest, REGION_NAMES, type RegionManifest, type RegionName } from './render.js';

export { Region, type LinkStatus } from './region.js';
export type { NodeHandle } from './process.js';
export { PortInUseError } from './ports.js';
export { REGION_NAMES, type RegionName } from './render.js';

export type PairKey = 'us-east|us-west' | 'us-east|emea' | 'us-west|emea';

export interface PairDelay { delayMs: number; jitterMs?: number }

export interface MeshOptions {
  /** Work dir; default a fresh mkdtemp, removed by stop(). A given dir is kept. */
  dir?: string;
  /** Default all three, full mesh of links. */
  regions?: RegionName[];
  delays?: Partial<Record<PairKey, PairDelay>>;
  /** Client-facing MQTT port (the replicant's) per region; 0/absent = a free port. */
  clientPorts?: Partial<Record<RegionName, number>>;
  /** Admin port of the region's main node (core-0); 0/absent = a free port. */
  adminPorts?: Partial<Record<RegionName, number>>;
  /** 1 (default): one link agent beside core-0; 'per-core': one beside each core, as in the rendered pods. */
  agentsPerRegion?: 1 | 'per-core';
  /** Progress lines (the demo prints them). */
  log?: (line: string) => void;
  /** Per process, until its ready log line (default 30000). */
  startTimeoutMs?: number;
  /** SIGTERM → SIGKILL grace at stop (default 10000). */
  stopGraceMs?: number;
  /** Stop the mesh, then exit, on SIGINT/SIGTERM of this process (default true). */
  handleSignals?: boolean;
}

export interface Credentials { username: string; password: string }

export interface LinkPair {
  cut(): void;
  restore(): void;
  throttle(bytesPerSecond: number | undefined): void;
  setDelay(delayMs: number, jitterMs?: number): void;
  /** Bytes relayed in each direction since start or resetCounters(), both proxies summed. */
  bytes(): { total: number; aToB: number; bToA: number };
  resetCounters(): void;
}

/** The injected one-way delays of the issue; jitter small. */
export const DEFAULT_DELAYS: Record<PairKey, Required<PairDelay>> = {
  'us-east|us-west': { delayMs: 32, jitterMs: 2 },
  'us-east|emea': { delayMs: 45, jitterMs: 2 },
  'us-west|emea': { delayMs: 75, jitterMs: 2 },
};

export function pairKey(a: RegionName, b: RegionName): PairKey {
  const [x, y] = REGION_NAMES.indexOf(a) < REGION_NAMES.indexOf(b) ? [a, b] : [b, a];
  return `${x}|${y}` as PairKey;
}

/** Proxies of one ordered pair: `from`'s agents dial `to`'s nodes (one proxy per remote node). */
class DirectedProxies {
  constructor(readonly from: RegionName, readonly to: RegionName, readonly proxies: TcpProxy[]) {}
  get addresses(): string[] { return this.proxies.map((p) => p.address); }
}

class ProxyPair implements LinkPair {
  constructor(private readonly aToB: DirectedProxies, private readonly bToA: DirectedProxies) {}
  private get all(): TcpProxy[] { return [...this.aToB.proxies, ...this.bToA.proxies]; }

  /** Closes open link connections and refuses new ones until restore(). */
  cut(): void {
    for (const p of this.all) { p.refuse(); p.cut(); }
  }
  restore(): void { for (const p of this.all) p.restore(); }
  throttle(bytesPerSecond: number | undefined): void {
    if (bytesPerSecond !== undefined && !(bytesPerSecond > 0)) throw new Error(`harness: throttle wants bytes/s > 0 or undefined, got ${bytesPerSecond}`);
    for (const p of this.all) p.bytesPerSecond = bytesPerSecond;
  }
  setDelay(delayMs: number, jitterMs = 0): void {
    if (!(delayMs >= 0) || !(jitterMs >= 0)) throw new Error(`harness: delay and jitter must be ≥ 0 ms, got ${delayMs}/${jitterMs}`);
    for (const p of this.all) { p.delayMs = delayMs; p.jitterMs = jitterMs; }
  }
  bytes(): { total: number; aToB: number; bToA: number } {
    const sum = (ps: TcpProxy[], f: (p: TcpProxy) => number): number => ps.reduce((n, p) => n + f(p), 0);
    // a→b: what a's agents send through a→b proxies, plus what a's nodes answer b's agents through b→a proxies.
    const aToB = sum(this.aToB.proxies, (p) => p.bytesToTarget) + sum(this.bToA.proxies, (p) => p.bytesFromTarget);
    const bToA = sum(this.bToA.proxies, (p) => p.bytesToTarget) + sum(this.aToB.proxies, (p) => p.bytesFromTarget);
    return { total: aToB + bToA, aToB, bToA };
  }
  resetCounters(): void { for (const p of this.all) p.resetCounters(); }
}

const NODE_IDS = ['core-0', 'core-1', 'replicant-0'] as const;

/** Known passwords: the harness writes their hashes into every region's users file. */
function passwordOf(username: string): string {
  return `${username}-password`;
}

const liveMeshes = new Set<Mesh>();
let signalsHooked = false;

function hookSignals(): void {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      void stopAllMeshes().then(() => process.exit(signal === 'SIGINT' ? 130 : 143));
    });
  }
}

/** Stops every mesh of this process, also one still starting (its start then rejects). */
export async function stopAllMeshes(): Promise<void> {
  await Promise.allSettled([...liveMeshes].map((m) => m.stop()));
}

export class Mesh {
  private readonly regionMap = new Map<RegionName, Region>();
  private readonly directed = new Map<string, DirectedProxies>();
  /** Node MQTT port → the proxies (of every other region) that lead to it. */
  private readonly proxiesTo = new Map<number, TcpProxy[]>();
  private stopping: Promise<void> | undefined;

  private constructor(private readonly dir: string, private readonly ownsDir: boolean, private readonly manifests: Map<RegionName, RegionManifest>) {}

  get regions(): ReadonlyMap<RegionName, Region> { return this.regionMap; }
  /** The work dir (logs in <dir>/<region>/logs/). */
  get workDir(): string { return this.dir; }

  static async start(options: MeshOptions = {}): Promise<Mesh> {
    const names = [...new Set(options.regions ?? REGION_NAMES)];
    validateOptions(names, options);
    const requested = requestedPorts(names, options);
    await assertPortsFree(requested);
    reservePorts(requested.map((r) => r.port));
    const manifests = new Map(names.map((n) => [n, loadRegionManifest(n)]));
    const ownsDir = options.dir === undefined;
    const dir = options.dir ?? mkdtempSync(path.join(tmpdir(), 'meridian-mesh-'));
    mkdirSync(dir, { recursive: true });
    const mesh = new Mesh(dir, ownsDir, manifests);
    if (ownsDir) watchDir(dir, true);
    liveMeshes.add(mesh);
    if (options.handleSignals !== false) hookSignals();
    try {
      await mesh.boot(names, options);
    } catch (err) {
      await mesh.stop(true);
      throw err;
    }
    return mesh;
  }

  region(name: RegionName): Region {
    const region = this.regionMap.get(name);
    if (!region) throw new Error(`harness: region '${name}' is not part of this mesh (${[...this.regionMap.keys()].join(', ')})`);
    return region;
  }

  pair(a: RegionName, b: RegionName): LinkPair {
    const aToB = this.directed.get(`${a}>${b}`);
    const bToA = this.directed.get(`${b}>${a}`);
    if (!aToB || !bToA) throw new Error(`harness: no link pair ${a}↔${b} in this mesh (${[...this.regionMap.keys()].join(', ')})`);
    return new ProxyPair(aToB, bToA);
  }

  credentials(user: 'acme' | 'globex' | 'admin'): Credentials {
    if (user === 'admin') return { username: 'admin', password: passwordOf('admin') };
    const [first] = this.manifests.values();
    const tenantUser = first?.users.find((u) => u.tenant === user && !u.superuser);
    if (!tenantUser) throw new Error(`harness: the manifests' users Secret has no user of tenant '${user}'`);
    return { username: tenantUser.username, password: passwordOf(tenantUser.username) };
  }

  /** PIDs of every process the mesh ever started (for checks that none survives). */
  allPids(): number[] {
    return [...this.regionMap.values()].flatMap((r) => r.allPids());
  }

  /** Everything, by PID (SIGTERM, then SIGKILL after the grace period); closes the proxies; idempotent. */
  stop(force = false): Promise<void> {
    this.stopping ??= (async () => {
      const regions = [...this.regionMap.values()];
      await Promise.allSettled(regions.map((r) => r.close(force)));
      await Promise.allSettled(regions.map((r) => r.close(true)));
      await Promise.allSettled([...this.directed.values()].flatMap((d) => d.proxies.map((p) => p.close())));
      if (this.ownsDir) {
        rmSync(this.dir, { recursive: true, force: true });
        watchDir(this.dir, false);
      }
      liveMeshes.delete(this);
    })();
    return this.stopping;
  }

  private async boot(names: RegionName[], options: MeshOptions): Promise<void> {
    const log = options.log ?? (() => undefined);
    const agents = options.agentsPerRegion === 'per-core' ? 2 : 1;
    const ports = new Map<RegionName, RegionPorts>();
    for (const n of names) ports.set(n, await allocatePorts(agents, options.clientPorts?.[n], options.adminPorts?.[n]));
    await this.startProxies(names, ports, options);
    for (const name of names) {
      this.throwIfStopping();
      const region = this.createRegion(name, names, ports.get(name)!, options, log);
      this.regionMap.set(name, region);
      await region.writeFiles();
    }
    this.throwIfStopping();
    await Promise.all([...this.regionMap.values()].map((r) => r.start()));
    log(`waiting for the links of ${names.join(', ')} to connect`);
    await Promise.all([...this.regionMap.values()].map((r) => r.linksConnected(30000)));
    log('all links connected');
  }

  private throwIfStopping(): void {
    if (this.stopping) throw new Error('harness: mesh stopped during start');
  }

  /** One proxy per ordered region pair and remote node, with the pair's delay. */
  private async startProxies(names: RegionName[], ports: Map<RegionName, RegionPorts>, options: MeshOptions): Promise<void> {
    for (const from of names) {
      for (const to of names.filter((n) => n !== from)) {
        const delay = { ...DEFAULT_DELAYS[pairKey(from, to)], ...options.delays?.[pairKey(from, to)] };
        const targets = NODE_IDS.map((id) => ports.get(to)!.nodes[id].mqtt);
        const proxies = await Promise.all(targets.map((port) => TcpProxy.start(port, '127.0.0.1', { delayMs: delay.delayMs, jitterMs: delay.jitterMs ?? 0 })));
        targets.forEach((port, i) => this.proxiesTo.set(port, [...(this.proxiesTo.get(port) ?? []), proxies[i]!]));
        this.directed.set(`${from}>${to}`, new DirectedProxies(from, to, proxies));
      }
    }
  }

  private createRegion(name: RegionName, names: RegionName[], ports: RegionPorts, options: MeshOptions, log: (line: string) => void): Region {
    const usernames = new Set<string>(['admin']);
    for (const m of this.manifests.values()) for (const u of m.users) usernames.add(u.username);
    const remoteServers = names.filter((n) => n !== name).map((n): [string, string[]] => [this.manifests.get(n)!.cluster.spec.clusterName, this.directed.get(`${name}>${n}`)!.addresses]);
    return new Region({
      name, manifest: this.manifests.get(name)!, dir: path.join(this.dir, name), ports, servers: new Map(remoteServers),
      passwords: new Map([...usernames].map((u) => [u, passwordOf(u)])), linkPassword: passwordOf(`link-${name}`),
      startTimeoutMs: options.startTimeoutMs ?? 30000, stopGraceMs: options.stopGraceMs ?? 10000, log,
      // A node does not finish a graceful stop while MQTT clients stay connected (its listener's close waits for
      // them): the remote agents' connections to a stopping node are closed, as they would be when it goes away.
      onNodeGracefulStop: (port) => { for (const p of this.proxiesTo.get(port) ?? []) p.cut(); },
    });
  }
}

/** Throws an error naming the first bad option. */
function validateOptions(names: RegionName[], options: MeshOptions): void {
  for (const n of names) if (!REGION_NAMES.includes(n)) throw new Error(`harness: unknown region '${n}' (regions: ${REGION_NAMES.join(', ')})`);
  if (names.length === 0) throw new Error('harness: options.regions is empty');
  const ports: Array<[string, number | undefined]> = [
    ...Object.entries(options.clientPorts ?? {}).map(([r, p]): [string, number | undefined] => [`clientPorts.${r}`, p]),
    ...Object.entries(options.adminPorts ?? {}).map(([r, p]): [string, number | undefined] => [`adminPorts.${r}`, p]),
  ];
  for (const [what, port] of ports) {
    if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65535)) throw new Error(`harness: ${what} must be a port 0-65535 (0 = any free one), got ${port}`);
  }
  const fixed = ports.filter(([, p]) => p);
  for (const [what, port] of fixed) {
    const other = fixed.find(([w, p]) => p === port && w !== what);
    if (other) throw new Error(`harness: ${what} and ${other[0]} are both ${port}`);
  }
  for (const [pair, delay] of Object.entries(options.delays ?? {})) {
    if (!(pair in DEFAULT_DELAYS)) throw new Error(`harness: delays.${pair}: unknown pair (pairs: ${Object.keys(DEFAULT_DELAYS).join(', ')})`);
    if (!(delay.delayMs >= 0) || !((delay.jitterMs ?? 0) >= 0)) throw new Error(`harness: delays.${pair}: delayMs and jitterMs must be ≥ 0, got ${delay.delayMs}/${delay.jitterMs}`);
  }
  const agents = options.agentsPerRegion;
  if (agents !== undefined && agents !== 1 && agents !== 'per-core') throw new Error(`harness: agentsPerRegion must be 1 or 'per-core', got ${String(agents)}`);
}

function requestedPorts(names: RegionName[], options: MeshOptions): Array<{ port: number; purpose: string }> {
  return names.flatMap((n) => [
    ...(options.clientPorts?.[n] ? [{ port: options.clientPorts[n]!, purpose: `${n} client MQTT` }] : []),
    ...(options.adminPorts?.[n] ? [{ port: options.adminPorts[n]!, purpose: `${n} admin` }] : []),
  ]);
}

async function allocatePorts(agents: number, clientPort: number | undefined, adminPort: number | undefined): Promise<RegionPorts> {
  const node = async (mqtt?: number, admin?: number) => ({ mqtt: mqtt || (await freePort()), cluster: await freePort(), admin: admin || (await freePort()) });
  const nodes = { 'core-0': await node(undefined, adminPort), 'core-1': await node(), 'replicant-0': await node(clientPort) };
  const agentPorts = [];
  for (let i = 0; i < agents; i++) agentPorts.push({ cluster: await freePort(), admin: await freePort() });
  return { nodes, agents: agentPorts };
}
