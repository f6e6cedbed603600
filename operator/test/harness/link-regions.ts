/**
 * Two real regions as local processes, for the operator's ClusterLink tests:
 * - the local region (`AgentRegion`): a core `meridian broker` and a `meridian link-agent` sidecar joined to it, as
 *   in a rendered core pod; the sidecar's admin API listens on a fixed port (the operator's --link-agent-admin-port)
 *   and its links file is what the test syncs from the links ConfigMap and credentials Secret, as the kubelet does
 *   (pod paths mapped to temp directories);
 * - the remote region (`RemoteRegion`): a standalone `meridian broker` with the embedded agent, linked back.
 * Both accept the link superuser `link` / `link-secret`. Processes are stopped by PID in `dispose()`.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { BrokerProcess } from '../../../broker/test/harness/broker-process.js';
import { freePort } from '../../../broker/test/harness/cluster.js';
import { SidecarProcess } from '../../../broker/test/integration/link/sidecar-process.js';
import { hashPassword } from '../../../broker/src/mqtt/auth/password.js';
import { POD_PATHS } from '../../src/render/names.js';

export const LINK_USER = 'link';
export const LINK_PASSWORD = 'link-secret';

/** What an agent serves on GET /api/v1/links (the fields these tests read). */
export interface AgentLinkInfo {
  name: string;
  state: string;
  lastError: string | null;
  connectedSince?: string | null;
  role?: 'active' | 'standby';
  routesSent: number;
  routesReceived: number;
  queue?: { depth: number; bytes: number; oldestAgeMs: number };
}

async function writeUsers(dir: string): Promise<string> {
  const file = path.join(dir, 'users.yaml');
  writeFileSync(file, `users:\n  - { username: ${LINK_USER}, superuser: true, passwordHash: "${await hashPassword(LINK_PASSWORD, { N: 1024, r: 8, p: 1 })}" }\n`);
  return file;
}

function writeAtomically(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

/**
 * A client as the link superuser: superusers have no tenant mountpoint, so their topics are the internal ones that
 * link `topics` name (an anonymous client's `a/b` is `default/a/b` inside).
 */
export function connectClient(port: number, options: IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync({ host: '127.0.0.1', port, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, username: LINK_USER, password: LINK_PASSWORD, ...options });
}

/** The links file and credentials as the kubelet mounts them, from the ConfigMap's and Secret's data. */
export interface MountedLinks {
  linksYaml: string | undefined;
  /** Secret `data` (base64 values). */
  credentials: Record<string, string>;
}

/** One core pod of the local region: its broker and its link-agent sidecar (admin API on `ip`:adminPort). */
export interface CorePod {
  name: string;
  ip: string;
  core: BrokerProcess;
  sidecar?: SidecarProcess;
  sidecarArgs: string[];
}

export class AgentRegion {
  readonly pods: CorePod[] = [];
  readonly dir: string;
  private lastSynced = '';

  private constructor(readonly clusterName: string, readonly adminPort: number) {
    this.dir = mkdtempSync(path.join(os.tmpdir(), `meridian-operator-${clusterName}-`));
  }

  get core(): BrokerProcess { return this.pod().core; }
  get linksFile(): string { return path.join(this.dir, 'links', 'links.yaml'); }
  get credentialsDir(): string { return path.join(this.dir, 'link-credentials'); }
  /** What `/var/lib/meridian/link-agent` maps to in the links file (queue.dir only, which the agents do not use). */
  get agentDataDir(): string { return path.join(this.dir, 'link-agent'); }

  /**
   * Starts one core and its sidecar per pod, all in one regional cluster (the first core seeds the others), every
   * sidecar reading the same links file (empty at first) and serving its admin API on its pod's IP (a loopback
   * address: 127.0.0.1, 127.0.0.2, …) and `adminPort`.
   */
  static async start(clusterName: string, pods: readonly { name: string; ip: string }[], adminPort: number): Promise<AgentRegion> {
    const region = new AgentRegion(clusterName, adminPort);
    try {
      await region.boot(pods);
    } catch (err) {
      await region.dispose();
      throw err;
    }
    return region;
  }

  private async boot(pods: readonly { name: string; ip: string }[]): Promise<void> {
    const users = await writeUsers(this.dir);
    const secret = path.join(this.dir, 'cluster-secret');
    writeFileSync(secret, randomBytes(32).toString('base64'));
    mkdirSync(path.dirname(this.linksFile), { recursive: true });
    mkdirSync(this.credentialsDir, { recursive: true });
    writeFileSync(this.linksFile, 'links: []\n');
    let seed: number | undefined;
    for (const { name, ip } of pods) {
      const clusterPort = await freePort();
      seed ??= clusterPort;
      const core = await BrokerProcess.start({
        nodeName: name,
        dataDir: path.join(this.dir, name),
        args: ['--cluster-name', this.clusterName, '--role', 'core', '--cluster-host', '127.0.0.1', '--cluster-port', String(clusterPort),
          '--seeds', `127.0.0.1:${seed}`, '--cluster-secret-file', secret, '--users-file', users],
      });
      const pod: CorePod = { name, ip, core, sidecarArgs: [] };
      this.pods.push(pod);
      // As rendered: the agent seeds its own pod's broker and is a cluster member of its own.
      pod.sidecarArgs = [
        '--links', this.linksFile, '--cluster-name', this.clusterName, '--seeds', `127.0.0.1:${clusterPort}`, '--cluster-secret-file', secret,
        '--data-dir', path.join(this.dir, `${name}-agent`), '--node-name', `${name}-link`, '--cluster-host', '127.0.0.1', '--cluster-port', String(await freePort()),
        '--admin-host', ip, '--admin-port', String(this.adminPort),
      ];
      pod.sidecar = await SidecarProcess.start(pod.sidecarArgs);
    }
  }

  pod(name?: string): CorePod {
    const found = name === undefined ? this.pods[0] : this.pods.find((p) => p.name === name);
    if (!found) throw new Error(`region ${this.clusterName} has no pod ${name}`);
    return found;
  }

  /** Stops a pod's sidecar (its admin API goes away); `startSidecar` brings it back on the same address and data. */
  async stopSidecar(podName?: string): Promise<void> {
    const pod = this.pod(podName);
    await pod.sidecar?.stop('SIGTERM');
    pod.sidecar = undefined;
  }

  async startSidecar(podName?: string): Promise<void> {
    const pod = this.pod(podName);
    pod.sidecar = await SidecarProcess.start(pod.sidecarArgs);
  }

  /**
   * Writes what the kubelet would mount: the credentials (one file per key) and the links file with the pod paths
   * mapped to this region's directories. Returns whether anything changed.
   */
  mount(mounted: MountedLinks): boolean {
    const yaml = (mounted.linksYaml ?? 'links: []\n')
      .replaceAll(POD_PATHS.linkCredentialsDir, this.credentialsDir)
      .replaceAll(POD_PATHS.linkAgentDataDir, this.agentDataDir);
    const state = JSON.stringify([yaml, mounted.credentials]);
    if (state === this.lastSynced) return false;
    for (const [key, value] of Object.entries(mounted.credentials)) writeAtomically(path.join(this.credentialsDir, key), Buffer.from(value, 'base64').toString('utf8'));
    writeAtomically(this.linksFile, yaml);
    this.lastSynced = state;
    return true;
  }

  mountedLinksFile(): string {
    return existsSync(this.linksFile) ? readFileSync(this.linksFile, 'utf8') : '';
  }

  /** A pod's sidecar's own report (undefined while it does not run). */
  async agentLinks(podName?: string): Promise<AgentLinkInfo[] | undefined> {
    const sidecar = this.pod(podName).sidecar;
    if (!sidecar) return undefined;
    const res = await fetch(`http://${this.pod(podName).ip}:${this.adminPort}/api/v1/links`);
    return ((await res.json()) as { links: AgentLinkInfo[] }).links;
  }

  /** A client of the first core. */
  client(options: IClientOptions = {}): Promise<MqttClient> {
    return connectClient(this.core.mqttPort, options);
  }

  async dispose(): Promise<void> {
    await Promise.all(this.pods.flatMap((p) => [p.sidecar?.stop('SIGKILL'), p.core.dispose()]));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A standalone node with the embedded agent and a link back to `localCluster` at `localServer`. */
export class RemoteRegion {
  broker!: BrokerProcess;
  readonly dir: string;

  private constructor(readonly clusterName: string) {
    this.dir = mkdtempSync(path.join(os.tmpdir(), `meridian-operator-${clusterName}-`));
  }

  static async start(clusterName: string, localCluster: string, localServer: string): Promise<RemoteRegion> {
    const region = new RemoteRegion(clusterName);
    try {
      const users = await writeUsers(region.dir);
      const passwordFile = path.join(region.dir, 'link-password');
      writeFileSync(passwordFile, `${LINK_PASSWORD}\n`);
      const linksFile = path.join(region.dir, 'links.yaml');
      writeFileSync(linksFile, `links:\n  - name: ${localCluster}\n    servers: ["${localServer}"]\n    username: ${LINK_USER}\n    passwordFile: ${passwordFile}\n    topics: ["#"]\n`);
      region.broker = await BrokerProcess.start({
        nodeName: `${clusterName}-1`,
        dataDir: path.join(region.dir, 'node'),
        args: ['--cluster-name', clusterName, '--links', linksFile, '--users-file', users],
      });
    } catch (err) {
      await region.dispose();
      throw err;
    }
    return region;
  }

  client(options: IClientOptions = {}): Promise<MqttClient> {
    return connectClient(this.broker.mqttPort, options);
  }

  async dispose(): Promise<void> {
    await this.broker?.dispose();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * The kubelet's part for the links volumes: every 250 ms, `read` the links ConfigMap and credentials Secret and
 * mount them into `region` (until `stop()`; nothing while `paused`).
 */
export class MountSync {
  paused = false;
  /** Rounds that changed the mounted files. */
  syncs = 0;
  private running = true;
  private readonly loop: Promise<void>;

  constructor(private readonly region: AgentRegion, private readonly read: () => Promise<MountedLinks | undefined>) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      if (!this.paused) {
        try {
          const mounted = await this.read();
          if (mounted && this.region.mount(mounted)) this.syncs++;
        } catch {
          // The API server may be restarting or busy: the next round retries.
        }
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}
