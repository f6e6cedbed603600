/** One region of the mesh: 2 cores + 1 replicant (`meridian broker`) and its link agents (`meridian link-agent`). */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { dump } from 'js-yaml';
import { hashPassword } from '../../broker/src/mqtt/auth/password.js';
import { HarnessProcess, type NodeHandle } from './process.js';
import { localizeArgs, renderedContainerArgs, renderLocalLinks, renderLocalNodeConfig, type RegionManifest, type RegionName } from './render.js';

/** Cheap scrypt cost: the harness logs in many clients and restarts nodes often. */
const TEST_SCRYPT = { N: 1024, r: 8, p: 1 };

export interface NodePorts { mqtt: number; cluster: number; admin: number }
export interface AgentPorts { cluster: number; admin: number }

export interface RegionPorts {
  nodes: Record<'core-0' | 'core-1' | 'replicant-0', NodePorts>;
  /** One per agent: agent-i runs beside core-i. */
  agents: AgentPorts[];
}

export interface RegionSetup {
  name: RegionName;
  manifest: RegionManifest;
  dir: string;
  ports: RegionPorts;
  /** Remote cluster name → local proxy addresses leading to its nodes. */
  servers: ReadonlyMap<string, string[]>;
  /** Username → password of every user this region accepts (tenant users, admin, the remote regions' link users). */
  passwords: ReadonlyMap<string, string>;
  /** Password of this region's own link user (`link-<name>`). */
  linkPassword: string;
  startTimeoutMs: number;
  stopGraceMs: number;
  log: (line: string) => void;
  /** Before a node with this MQTT port is stopped gracefully (the mesh closes the link connections to it). */
  onNodeGracefulStop?: (mqttPort: number) => void;
}

export interface LinkStatus {
  name: string;
  state: string;
  /** With several agents per region: the reporting agent's role for the link. */
  role?: string;
  queue: { depth: number };
  forwarded: number;
  received: number;
  deduplicated: number;
}

interface AgentLinks { links: Array<LinkStatus & Record<string, unknown>> }

const CORE_IDS = ['core-0', 'core-1'] as const;

export class Region {
  readonly name: RegionName;
  readonly clientPort: number;
  readonly adminUrl: string;
  readonly nodes: readonly HarnessProcess[];
  readonly agents: readonly HarnessProcess[];
  /** http://127.0.0.1:<port> of each agent's admin API (/api/v1/links, /api/v1/link-agent, /metrics). */
  readonly agentAdminUrls: readonly string[];
  private readonly agentAdminPorts: number[];
  /** Container args of the rendered pods (operator/src/render/pod.ts), made local per process. */
  private readonly rendered: { core: string[]; replicant: string[]; agent: string[] };

  constructor(private readonly setup: RegionSetup) {
    this.name = setup.name;
    this.rendered = renderedContainerArgs(setup.manifest.cluster);
    this.clientPort = setup.ports.nodes['replicant-0'].mqtt;
    this.adminUrl = `http://127.0.0.1:${setup.ports.nodes['core-0'].admin}`;
    const seeds = CORE_IDS.map((id) => `127.0.0.1:${setup.ports.nodes[id].cluster}`).join(',');
    this.nodes = (['core-0', 'core-1', 'replicant-0'] as const).map((id) => this.node_(id, seeds));
    this.agents = setup.ports.agents.map((ports, i) => this.agent_(i, ports));
    this.agentAdminPorts = setup.ports.agents.map((p) => p.admin);
    this.agentAdminUrls = this.agentAdminPorts.map((p) => `http://127.0.0.1:${p}`);
  }

  private get clusterName(): string { return this.setup.manifest.cluster.spec.clusterName; }
  private get usersFile(): string { return path.join(this.setup.dir, 'users.yaml'); }
  private get secretFile(): string { return path.join(this.setup.dir, 'cluster-secret'); }
  private get credentialsDir(): string { return path.join(this.setup.dir, 'link-credentials'); }

  node(id: string): NodeHandle {
    const found = [...this.nodes, ...this.agents].find((n) => n.id === id);
    if (!found) throw new Error(`harness: region ${this.name} has no node or agent '${id}' (has ${[...this.nodes, ...this.agents].map((n) => n.id).join(', ')})`);
    return found;
  }

  /** Writes the users file, cluster secret, node configs and links files (once; restarts reuse them). */
  async writeFiles(): Promise<void> {
    const { dir, manifest } = this.setup;
    mkdirSync(path.join(dir, 'logs'), { recursive: true });
    mkdirSync(this.credentialsDir, { recursive: true });
    writeFileSync(this.secretFile, randomBytes(32).toString('base64'));
    writeFileSync(this.usersFile, await this.usersYaml());
    for (const id of ['core-0', 'core-1', 'replicant-0'] as const) {
      const ports = this.setup.ports.nodes[id];
      const config = renderLocalNodeConfig(manifest.cluster, {
        dataDir: path.join(dir, id), usersFile: this.usersFile, tlsDir: path.join(dir, 'tls'), mqttPort: ports.mqtt, adminPort: ports.admin,
      });
      writeFileSync(path.join(dir, `${id}.config.yaml`), dump(config));
    }
    this.setup.ports.agents.forEach((_, i) => {
      const agentDir = path.join(dir, `agent-${i}`);
      const links = renderLocalLinks(manifest, {
        credentialsDir: this.credentialsDir, queueDir: path.join(agentDir, 'data', 'queues'), linkPassword: this.setup.linkPassword, servers: this.setup.servers,
      });
      mkdirSync(agentDir, { recursive: true });
      writeFileSync(path.join(agentDir, 'links.yaml'), dump(links.file));
      for (const [file, content] of links.credentials) writeFileSync(path.join(this.credentialsDir, file), content, { mode: 0o600 });
    });
  }

  /**
   * Every node and agent at once, as the operator's StatefulSets start pods (podManagementPolicy Parallel); each
   * bounded by the start timeout. Not one after the other: a restarted node opens its MQTT listener only once the
   * members of its previous run are back with their routes (cluster README, "Readiness after a restart").
   */
  async start(): Promise<void> {
    const [core0, core1, replicant] = this.nodes;
    this.setup.log(`${this.name}: starting cores (MQTT ${core0!.mqttPort}, ${core1!.mqttPort}), replicant (MQTT ${replicant!.mqttPort}) and ${this.agents.length} link agent(s)`);
    await Promise.all([...this.nodes, ...this.agents].map((p) => p.start()));
  }

  /** Agents, then the replicant, then the cores: SIGTERM, SIGKILL after the grace period. */
  async stop(): Promise<void> {
    await Promise.all(this.agents.map((a) => a.kill('SIGTERM')));
    await this.nodes[2]!.kill('SIGTERM');
    await Promise.all([this.nodes[0]!.kill('SIGTERM'), this.nodes[1]!.kill('SIGTERM')]);
  }

  /** For good (mesh stop): like stop(), SIGKILL when `force`, and no process of the region starts again. */
  async close(force: boolean): Promise<void> {
    const signal = force ? 'SIGKILL' : 'SIGTERM';
    await Promise.all(this.agents.map((a) => a.close(signal)));
    await this.nodes[2]!.close(signal);
    await Promise.all([this.nodes[0]!.close(signal), this.nodes[1]!.close(signal)]);
  }

  /** Every PID any process of this region ever had. */
  allPids(): number[] {
    return [...this.nodes, ...this.agents].flatMap((p) => p.pids);
  }

  /**
   * Links as the running agents report them. With several agents per region (roles `active`/`standby`), a link's
   * state is its active agent's (a standby's when no agent is active) and the counters are summed over the agents.
   */
  async links(): Promise<LinkStatus[]> {
    const reports = await this.runningAgentReports();
    const merged = new Map<string, LinkStatus>();
    for (const { report } of reports) {
      for (const l of report.links) {
        const seen = merged.get(l.name);
        const own: LinkStatus = {
          name: l.name, state: l.state, ...(l.role === undefined ? {} : { role: l.role }), queue: { depth: l.queue.depth },
          forwarded: l.forwarded, received: l.received, deduplicated: l.deduplicated,
        };
        if (!seen) {
          merged.set(l.name, own);
          continue;
        }
        const lead = seen.role === 'active' || own.role !== 'active' ? seen : own;
        merged.set(l.name, {
          ...lead,
          queue: { depth: seen.queue.depth + own.queue.depth },
          forwarded: seen.forwarded + own.forwarded,
          received: seen.received + own.received,
          deduplicated: seen.deduplicated + own.deduplicated,
        });
      }
    }
    return [...merged.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The full `/api/v1/links` body of agent i (every field the agent reports). */
  async agentLinks(i: number): Promise<AgentLinks> {
    const url = `http://127.0.0.1:${this.agentAdminPorts[i]}/api/v1/links`;
    const res = await fetch(url);
    if (!res.ok) throw new Error(`harness: ${this.name}/agent-${i}: GET ${url} answered ${res.status}`);
    return (await res.json()) as AgentLinks;
  }

  private async runningAgentReports(): Promise<Array<{ id: string; report: AgentLinks }>> {
    const running = this.agents.map((agent, i) => ({ agent, i })).filter(({ agent }) => agent.running);
    return Promise.all(running.map(async ({ agent, i }) => ({ id: agent.id, report: await this.agentLinks(i) })));
  }

  /**
   * Waits until every link of this region is `connected` on the agent that serves it: the only agent, or with
   * several, the `active` one (standby agents do not dial). Stopped agents are skipped; with none running it fails.
   */
  async linksConnected(timeoutMs = 30000): Promise<void> {
    const expected = [...this.setup.servers.keys()];
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer yet';
    for (;;) {
      try {
        const reports = await this.runningAgentReports();
        const entries = reports.flatMap(({ id, report }) => report.links.map((l) => ({ id, ...l })));
        last = entries.map((l) => `${l.id}:${l.name}=${l.state}${l.role ? `/${l.role}` : ''}`).join(', ') || 'no agent running';
        const serving = (name: string): boolean => entries.some((l) => l.name === name && l.state === 'connected' && (l.role === undefined || l.role === 'active'));
        if (reports.length > 0 && expected.every(serving)) return;
      } catch (err) {
        last = (err as Error).message;
      }
      if (Date.now() > deadline) {
        const tails = this.agents.map((a) => `${a.id} (pid ${a.pid ?? 'stopped'}):\n${a.logs().slice(-10).join('\n')}`).join('\n');
        throw new Error(`harness: region ${this.name}: links not all connected after ${timeoutMs} ms (${last}); agents' last log lines:\n${tails}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  private async usersYaml(): Promise<string> {
    const users = await Promise.all([...this.setup.passwords].map(async ([username, password]) => {
      const declared = this.setup.manifest.users.find((u) => u.username === username);
      return {
        username,
        passwordHash: await hashPassword(password, TEST_SCRYPT),
        ...(declared?.tenant ? { tenant: declared.tenant } : {}),
        ...(declared?.superuser || username === 'admin' ? { superuser: true } : {}),
      };
    }));
    return dump({ users });
  }

  private node_(id: 'core-0' | 'core-1' | 'replicant-0', seeds: string): HarnessProcess {
    const { dir, ports } = this.setup;
    const p = ports.nodes[id];
    const role = id.startsWith('core') ? 'core' : 'replicant';
    return new HarnessProcess({
      id, region: this.name, mqttPort: p.mqtt, dataDir: path.join(dir, id), logFile: path.join(dir, 'logs', `${id}.log`),
      readyMessage: 'node ready', startTimeoutMs: this.setup.startTimeoutMs, stopGraceMs: this.setup.stopGraceMs,
      onGracefulStop: () => this.setup.onNodeGracefulStop?.(p.mqtt),
      // The rendered pod's broker args, local: paths, addresses, ports, and seeds instead of DNS discovery.
      args: localizeArgs(role === 'core' ? this.rendered.core : this.rendered.replicant, {
        podName: `${this.clusterName}-${id}`, configFile: path.join(dir, `${id}.config.yaml`), secretFile: this.secretFile, clusterPort: p.cluster, seeds,
      }, `${this.name}/${id}`),
    });
  }

  private agent_(i: number, ports: AgentPorts): HarnessProcess {
    const { dir } = this.setup;
    const agentDir = path.join(dir, `agent-${i}`);
    const core = this.setup.ports.nodes[CORE_IDS[i]!];
    return new HarnessProcess({
      id: `agent-${i}`, region: this.name, dataDir: path.join(agentDir, 'data'), logFile: path.join(dir, 'logs', `agent-${i}.log`),
      readyMessage: 'link agent ready', startTimeoutMs: this.setup.startTimeoutMs, stopGraceMs: this.setup.stopGraceMs,
      // The rendered pod's link-agent sidecar args, local; its seed is the core it runs beside.
      args: localizeArgs(this.rendered.agent, {
        podName: `${this.clusterName}-core-${i}`, linksFile: path.join(agentDir, 'links.yaml'), secretFile: this.secretFile,
        dataDir: path.join(agentDir, 'data'), clusterPort: ports.cluster, adminPort: ports.admin, seeds: `127.0.0.1:${core.cluster}`,
      }, `${this.name}/agent-${i}`),
    });
  }
}
