import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TcpProxy } from '../../broker/test/harness/tcp-proxy.js';
import type { ScenarioRegion, WorkloadTarget } from './workload.js';

export const MOSQUITTO = '/usr/sbin/mosquitto';

/** The spokes of the star and the hub they dial: every bridge goes to US-East. */
export const MOSQUITTO_HUB: ScenarioRegion = 'us-east';
const SPOKES: readonly ScenarioRegion[] = ['us-west', 'emea'];

export interface MosquittoMeshOptions {
  /** One-way delay of the proxy between the hub and each spoke, ms. */
  delays: Record<'us-east|us-west' | 'us-east|emea', number>;
  log?: (line: string) => void;
}

interface Broker {
  region: ScenarioRegion;
  port: number;
  child: ChildProcess;
  /** Its log (mosquitto drops root privileges, so it logs to stderr rather than into our 0700 work dir). */
  log(): string;
}

/**
 * Three mosquitto 2.0 brokers joined by bridges (`topic # both 2`) as a star around US-East: a full mesh of
 * `topic # both` bridges loops (mosquitto forwards a bridged-in message to its other bridges, and nothing marks
 * where it has been), while in a star the hub never sends a message back over the bridge it came from and a spoke
 * has only that one bridge. Each bridge goes through a delaying, byte-counting `TcpProxy`. US-West ↔ EMEA traffic
 * crosses the hub (32 + 45 ms against the direct 75 ms).
 */
export class MosquittoMesh {
  private constructor(
    private readonly dir: string,
    private readonly brokers: Map<ScenarioRegion, Broker>,
    readonly proxies: ReadonlyMap<ScenarioRegion, TcpProxy>,
  ) {}

  static async start(options: MosquittoMeshOptions): Promise<MosquittoMesh> {
    const dir = mkdtempSync(path.join(tmpdir(), 'meridian-e2e-mosquitto-'));
    const brokers = new Map<ScenarioRegion, Broker>();
    const proxies = new Map<ScenarioRegion, TcpProxy>();
    const mesh = new MosquittoMesh(dir, brokers, proxies);
    try {
      const hub = await startBroker(dir, MOSQUITTO_HUB, []);
      brokers.set(MOSQUITTO_HUB, hub);
      for (const spoke of SPOKES) {
        const delayMs = options.delays[`us-east|${spoke}` as keyof MosquittoMeshOptions['delays']];
        const proxy = await TcpProxy.start(hub.port, '127.0.0.1', { delayMs });
        proxies.set(spoke, proxy);
        brokers.set(spoke, await startBroker(dir, spoke, bridgeConfig(spoke, proxy.port)));
      }
      await mesh.bridgesConnected(15000);
      options.log?.(`mosquitto: ${[...brokers.values()].map((b) => `${b.region} :${b.port}`).join(', ')}; bridges to ${MOSQUITTO_HUB} through delay proxies`);
    } catch (err) {
      await mesh.stop();
      throw err;
    }
    return mesh;
  }

  target(): WorkloadTarget {
    return {
      name: 'mosquitto',
      port: (region) => this.broker(region).port,
      credentials: () => undefined,
      mountpoints: false,
    };
  }

  /** Bytes on every inter-region proxy, both directions. */
  bytes(): { total: number; byPair: Record<string, number> } {
    const byPair: Record<string, number> = {};
    let total = 0;
    for (const [spoke, proxy] of this.proxies) {
      const bytes = proxy.bytesToTarget + proxy.bytesFromTarget;
      byPair[`${MOSQUITTO_HUB}|${spoke}`] = bytes;
      total += bytes;
    }
    return { total, byPair };
  }

  resetCounters(): void {
    for (const proxy of this.proxies.values()) proxy.resetCounters();
  }

  async stop(): Promise<void> {
    for (const proxy of this.proxies.values()) await proxy.close();
    await Promise.all([...this.brokers.values()].map((b) => stopChild(b.child)));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private broker(region: ScenarioRegion): Broker {
    const broker = this.brokers.get(region);
    if (!broker) throw new Error(`no mosquitto broker for region ${region}`);
    return broker;
  }

  /** Waits until the hub's log shows both spokes' bridge clients connected. */
  private async bridgesConnected(timeoutMs: number): Promise<void> {
    const hub = this.broker(MOSQUITTO_HUB);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const log = hub.log();
      if (SPOKES.every((spoke) => log.includes(`as bridge-${spoke}`))) return;
      if (Date.now() > deadline) throw new Error(`mosquitto bridges not connected to ${MOSQUITTO_HUB} after ${timeoutMs} ms; hub log:\n${log.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function bridgeConfig(spoke: ScenarioRegion, proxyPort: number): string[] {
  return [
    `connection ${spoke}-to-${MOSQUITTO_HUB}`,
    `address 127.0.0.1:${proxyPort}`,
    `remote_clientid bridge-${spoke}`,
    'topic # both 2',
    'cleansession false',
    'bridge_protocol_version mqttv311',
    'notifications false',
    'try_private true',
  ];
}

async function startBroker(dir: string, region: ScenarioRegion, extra: string[]): Promise<Broker> {
  const port = await freePort();
  const conf = path.join(dir, `${region}.conf`);
  // Unlimited in-flight and queued messages: the bridge would otherwise cap QoS 2 at 20 messages per RTT.
  writeFileSync(conf, [
    `listener ${port} 127.0.0.1`, 'allow_anonymous true', 'max_inflight_messages 0', 'max_queued_messages 0',
    'log_type error', 'log_type warning', 'log_type notice', 'log_type information', 'log_dest stderr', ...extra, '',
  ].join('\n'));
  const child = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-100000); });
  await waitForPort(port, 10000, child, () => stderr);
  return { region, port, child, log: () => stderr };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited (${child.exitCode}) before listening on ${port}: ${stderr()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`mosquitto not listening on ${port} after ${timeoutMs} ms: ${stderr()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => { if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL'); }, 5000);
  await exited;
  clearTimeout(timer);
}
