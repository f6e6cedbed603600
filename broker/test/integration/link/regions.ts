import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { BrokerProcess } from '../../harness/broker-process.js';
import { TcpProxy } from '../../harness/tcp-proxy.js';
import { hashPassword } from '../../../src/mqtt/auth/password.js';

export const LINK_USER = 'link';
const LINK_PASSWORD = 'link-secret';

export interface LinkEntry {
  name: string;
  servers: string[];
  topics: string[];
  extra?: string;
}

/** One region: a standalone node with a users file (the link superuser) and a links file it watches. */
export class Region {
  broker!: BrokerProcess;
  readonly dir: string;
  readonly dataDir: string;

  /** `bin`: the `meridian` entry point to run (another build, e.g. an older commit's); default this tree's. */
  constructor(readonly name: string, private readonly bin?: string) {
    this.dir = mkdtempSync(path.join(tmpdir(), `meridian-link-${name}-`));
    this.dataDir = path.join(this.dir, 'data');
  }

  get linksFile(): string { return path.join(this.dir, 'links', 'links.yaml'); }
  get passwordFile(): string { return path.join(this.dir, 'link-password'); }
  get mqttPort(): number { return this.broker.mqttPort; }

  async start(links: LinkEntry[]): Promise<void> {
    writeFileSync(path.join(this.dir, 'users.yaml'), `users:\n  - { username: ${LINK_USER}, superuser: true, passwordHash: "${await hashPassword(LINK_PASSWORD, { N: 1024, r: 8, p: 1 })}" }\n`);
    writeFileSync(this.passwordFile, `${LINK_PASSWORD}\n`);
    rmSync(path.dirname(this.linksFile), { recursive: true, force: true });
    mkdirSync(path.dirname(this.linksFile), { recursive: true });
    this.writeLinks(links);
    await this.boot();
  }

  /** Starts (or restarts) the node on the same data directory; its MQTT port changes. */
  async boot(): Promise<void> {
    this.broker = await BrokerProcess.start({
      dataDir: this.dataDir, nodeName: `${this.name}-1`, bin: this.bin,
      args: ['--cluster-name', this.name, '--links', this.linksFile, '--users-file', path.join(this.dir, 'users.yaml')],
    });
  }

  /** Replaces the links file atomically (write + rename), as a ConfigMap update does. */
  writeLinks(links: LinkEntry[]): void {
    const lines = ['links:'];
    for (const l of links) {
      lines.push(`  - name: ${l.name}`, `    servers: ${JSON.stringify(l.servers)}`, `    username: ${LINK_USER}`,
        `    passwordFile: ${this.passwordFile}`, `    topics: ${JSON.stringify(l.topics)}`);
      if (l.extra) lines.push(l.extra);
    }
    const tmp = `${this.linksFile}.tmp`;
    writeFileSync(tmp, `${lines.join('\n')}\n`);
    renameSync(tmp, this.linksFile);
  }

  async links(): Promise<LinkInfo[]> {
    const { body } = await this.broker.getJson<{ links: LinkInfo[] }>('/api/v1/links');
    return body.links;
  }

  async link(name: string): Promise<LinkInfo> {
    const found = (await this.links()).find((l) => l.name === name);
    if (!found) throw new Error(`region ${this.name} has no link ${name}; logs:\n${this.broker.logs.slice(-30).join('\n')}`);
    return found;
  }

  client(options: IClientOptions = {}): Promise<MqttClient> {
    return connectClient(this.mqttPort, options);
  }

  superuser(options: IClientOptions = {}): Promise<MqttClient> {
    return connectClient(this.mqttPort, { username: LINK_USER, password: LINK_PASSWORD, ...options });
  }

  async dispose(): Promise<void> {
    await this.broker?.dispose();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface LinkInfo {
  name: string;
  state: string;
  lastError: string | null;
  incarnation: number;
  routeSync: string;
  routesSent: number;
  routesReceived: number;
  queue: { depth: number; bytes: number };
  forwarded: number;
  received: number;
  deduplicated: number;
  bytesOut: number;
  /** Sent twin-marked / twins dropped (link README, "Several agents per region"). */
  twinsMarked: number;
  twinsDropped: number;
}

export function connectClient(port: number, options: IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync({ host: '127.0.0.1', port, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...options });
}

/** Two regions linked both ways, each link through a proxy the test controls (`toB`: A's agent → B). */
export async function linkedRegions(a: string, b: string): Promise<{ A: Region; B: Region; toB: TcpProxy; toA: TcpProxy }> {
  const toB = await TcpProxy.start(1);
  const toA = await TcpProxy.start(1);
  const A = new Region(a);
  const B = new Region(b);
  await A.start([{ name: b, servers: [toB.address], topics: ['#'] }]);
  await B.start([{ name: a, servers: [toA.address], topics: ['#'] }]);
  toB.setTarget(B.mqttPort);
  toA.setTarget(A.mqttPort);
  return { A, B, toB, toA };
}

export async function waitFor(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface LinkedRegions { A: Region; B: Region; toB: TcpProxy; toA: TcpProxy }

/**
 * Registers the set-up and teardown of a describe block over two standalone regions `a` and `b` linked both ways:
 * beforeAll starts them, waits until both links are connected and hands them to `use`; afterAll ends every client
 * in `clients` (or passed to `track`), disposes the regions and closes the proxies.
 */
export function linkedStandaloneFixture(a: string, b: string, use: (regions: LinkedRegions) => void): { track: <T extends MqttClient>(client: T) => T; clients: MqttClient[] } {
  let regions: LinkedRegions | undefined;
  const clients: MqttClient[] = [];
  beforeAll(async () => {
    regions = await linkedRegions(a, b);
    const { A, B } = regions;
    await waitFor(async () => (await A.link(b)).state === 'connected' && (await B.link(a)).state === 'connected', 'both links connected');
    use(regions);
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await regions?.A.dispose();
    await regions?.B.dispose();
    await regions?.toB.close();
    await regions?.toA.close();
  });
  return { track: <T extends MqttClient>(client: T): T => { clients.push(client); return client; }, clients };
}
