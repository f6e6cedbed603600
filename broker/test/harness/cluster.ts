import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort as allocatePort } from '../../../e2e/harness/ports.js';
import { BrokerProcess } from './broker-process.js';

/**
 * A free port below the ephemeral range (the e2e harness's allocator): a node stopped and restarted on its port
 * cannot lose it to an outgoing connection of a concurrent test in between (seen as EADDRINUSE at the restart).
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return allocatePort(host);
}

export interface TestNodeSpec {
  name: string;
  role: 'core' | 'replicant';
  /** Loopback address the node's cluster listener binds to and dials from (127.0.0.0/8). Default 127.0.0.1. */
  clusterHost?: string;
  /** Address other nodes dial (e.g. a proxy in front of it); default clusterHost:clusterPort. */
  advertise?: (clusterPort: number) => Promise<string> | string;
}

interface NodeState {
  spec: TestNodeSpec;
  clusterPort: number;
  dataDir: string;
  advertise: string;
  process?: BrokerProcess;
}

export interface ClusterRoute {
  actor: string;
  routes: number;
}

/** A regional cluster of `meridian broker` processes on loopback, with a shared secret, stopped by PID. */
export class TestCluster {
  private readonly nodes = new Map<string, NodeState>();
  readonly dir: string;
  readonly secretFile: string;
  seeds: string[] = [];

  private constructor(readonly clusterName: string, private readonly extraArgs: string[]) {
    this.dir = mkdtempSync(path.join(tmpdir(), `meridian-cluster-${clusterName}-`));
    this.secretFile = path.join(this.dir, 'cluster-secret');
    writeFileSync(this.secretFile, randomBytes(32).toString('base64'));
  }

  static async start(specs: TestNodeSpec[], options: { clusterName?: string; extraArgs?: string[] } = {}): Promise<TestCluster> {
    const cluster = new TestCluster(options.clusterName ?? 'test', options.extraArgs ?? []);
    for (const spec of specs) {
      const host = spec.clusterHost ?? '127.0.0.1';
      const clusterPort = await freePort(host);
      const advertise = spec.advertise ? await spec.advertise(clusterPort) : `${host}:${clusterPort}`;
      cluster.nodes.set(spec.name, { spec, clusterPort, advertise, dataDir: path.join(cluster.dir, spec.name) });
    }
    cluster.seeds = [...cluster.nodes.values()].filter((n) => n.spec.role === 'core').map((n) => n.advertise);
    try {
      await Promise.all(specs.map((spec) => cluster.startNode(spec.name)));
    } catch (err) {
      await cluster.dispose();
      throw err;
    }
    return cluster;
  }

  node(name: string): BrokerProcess {
    const process = this.state(name).process;
    if (!process) throw new Error(`node ${name} is not running`);
    return process;
  }

  names(): string[] {
    return [...this.nodes.keys()];
  }

  clusterPort(name: string): number {
    return this.state(name).clusterPort;
  }

  async startNode(name: string, extraArgs: string[] = []): Promise<BrokerProcess> {
    const state = this.state(name);
    const host = state.spec.clusterHost ?? '127.0.0.1';
    state.process = await BrokerProcess.start({
      nodeName: name,
      dataDir: state.dataDir,
      args: [
        '--cluster-name', this.clusterName, '--role', state.spec.role,
        '--cluster-host', host, '--cluster-port', String(state.clusterPort), '--cluster-advertise', state.advertise,
        '--seeds', this.seeds.filter((s) => s !== state.advertise).join(',') || state.advertise,
        '--cluster-secret-file', this.secretFile, ...this.extraArgs, ...extraArgs,
      ],
    });
    return state.process;
  }

  async kill9(name: string): Promise<void> {
    await this.state(name).process?.kill9();
  }

  async restart(name: string): Promise<BrokerProcess> {
    await this.state(name).process?.stop('SIGTERM');
    return this.startNode(name);
  }

  /** Polls until every running node's cluster table satisfies `predicate`, or throws with the last tables. */
  async waitForTables(predicate: (nodeName: string, table: ClusterTable) => boolean, timeoutMs = 15000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: Record<string, ClusterTable> = {};
    while (Date.now() < deadline) {
      last = {};
      let all = true;
      for (const [name, state] of this.nodes) {
        if (!state.process || state.process.child.exitCode !== null || state.process.child.signalCode !== null) continue;
        const table = (await state.process.getJson<ClusterTable>('/api/v1/cluster')).body;
        last[name] = table;
        if (!predicate(name, table)) all = false;
      }
      if (all) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`cluster tables did not converge within ${timeoutMs} ms: ${JSON.stringify(summarize(last))}`);
  }

  async dispose(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((n) => n.process?.dispose()));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private state(name: string): NodeState {
    const state = this.nodes.get(name);
    if (!state) throw new Error(`no node ${name} in this test cluster`);
    return state;
  }
}

export interface ClusterTable {
  nodeId: string;
  routes: number;
  upstreamCore?: string;
  nodes: { nodeId: string; state: string; incarnation?: number; routes: number }[];
  lanes: { actor: string; incarnation: number; version: number; routes: number }[];
}

/** Routes each node's table holds for `actor`. */
export function laneRoutes(table: ClusterTable, actor: string): number {
  return table.lanes.find((lane) => lane.actor === actor)?.routes ?? 0;
}

function summarize(tables: Record<string, ClusterTable>): Record<string, Record<string, number>> {
  return Object.fromEntries(Object.entries(tables).map(([name, t]) => [name, Object.fromEntries(t.lanes.map((l) => [`${l.actor}@${l.incarnation}`, l.routes]))]));
}
