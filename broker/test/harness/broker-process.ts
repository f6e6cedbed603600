import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const MERIDIAN_BIN = path.join(REPO_ROOT, 'dist/broker/src/cli/main.js');

export interface BrokerProcessOptions {
  /** Extra CLI flags after `meridian broker`. Ports default to 0 (the OS picks free ones). */
  args?: string[];
  /** YAML text written to a config file passed with --config. */
  configYaml?: string;
  env?: NodeJS.ProcessEnv;
  /** Reuse a data directory (restart on the same data); a fresh temp dir otherwise. */
  dataDir?: string;
  nodeName?: string;
  startTimeoutMs?: number;
  /** The `meridian` entry point to run; default this tree's build (MERIDIAN_BIN). */
  bin?: string;
}

export interface ListenerInfo {
  name: string;
  protocol: string;
  port: number;
}

/** A `meridian broker` child process on loopback, with the ports it bound, stopped by PID. */
export class BrokerProcess {
  readonly logs: string[] = [];
  listeners: ListenerInfo[] = [];
  adminPort = 0;
  private exitPromise: Promise<number | null>;

  private constructor(readonly child: ChildProcess, readonly dataDir: string, private readonly ownsDataDir: boolean) {
    this.exitPromise = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  get pid(): number { return this.child.pid as number; }
  get mqttPort(): number { return this.port('mqtt'); }
  get adminUrl(): string { return `http://127.0.0.1:${this.adminPort}`; }

  port(protocol: string): number {
    const listener = this.listeners.find((l) => l.protocol === protocol);
    if (!listener) throw new Error(`broker has no ${protocol} listener; logs:\n${this.logs.join('\n')}`);
    return listener.port;
  }

  static async start(options: BrokerProcessOptions = {}): Promise<BrokerProcess> {
    const ownsDataDir = options.dataDir === undefined;
    const dataDir = options.dataDir ?? mkdtempSync(path.join(tmpdir(), 'meridian-test-'));
    const args = [options.bin ?? MERIDIAN_BIN, 'broker', '--mqtt-port', '0', '--admin-port', '0', '--data-dir', dataDir,
      '--node-name', options.nodeName ?? 'test-node', '--log-level', 'info'];
    if (options.configYaml !== undefined) {
      const file = path.join(dataDir, '..', `${path.basename(dataDir)}.config.yaml`);
      writeFileSync(file, options.configYaml);
      args.push('--config', file);
    }
    args.push(...(options.args ?? []));
    const child = spawn(process.execPath, args, { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const broker = new BrokerProcess(child, dataDir, ownsDataDir);
    await broker.waitReady(options.startTimeoutMs ?? 15000);
    return broker;
  }

  /** Resolves once the node logged 'node ready'; rejects with the logs if it exits or times out first. */
  private waitReady(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`broker not ready after ${timeoutMs} ms`)), timeoutMs);
      const fail = (err: Error): void => {
        clearTimeout(timer);
        this.child.kill('SIGKILL');
        reject(new Error(`${err.message}; logs:\n${this.logs.join('\n')}`));
      };
      const onEarlyExit = (code: number | null): void => fail(new Error(`broker exited with ${code} before ready`));
      this.child.once('exit', onEarlyExit);
      const onLine = (line: string): void => {
        this.logs.push(line);
        const entry = parseJson(line);
        if (entry?.msg === 'listening') {
          const address = String(entry.address);
          this.listeners.push({ name: String(entry.listener), protocol: String(entry.protocol), port: Number(address.slice(address.lastIndexOf(':') + 1)) });
        } else if (entry?.msg === 'node ready') {
          const admin = String(entry.admin);
          this.adminPort = Number(admin.slice(admin.lastIndexOf(':') + 1));
          clearTimeout(timer);
          this.child.off('exit', onEarlyExit);
          resolve();
        }
      };
      lineReader(this.child.stdout, onLine);
      lineReader(this.child.stderr, (line) => this.logs.push(line));
    });
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const code = await this.exitPromise;
    clearTimeout(timer);
    return code;
  }

  async kill9(): Promise<void> {
    await this.stop('SIGKILL');
  }

  exited(): Promise<number | null> {
    return this.exitPromise;
  }

  /** Stops the process (if running) and removes the data dir it created. */
  async dispose(): Promise<void> {
    await this.stop('SIGKILL');
    if (this.ownsDataDir) rmSync(this.dataDir, { recursive: true, force: true });
  }

  async getJson<T = unknown>(pathname: string): Promise<{ status: number; body: T }> {
    const res = await fetch(`${this.adminUrl}${pathname}`);
    const text = await res.text();
    return { status: res.status, body: (res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text) as T };
  }
}

function lineReader(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): void {
  if (!stream) return;
  let buffered = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      onLine(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
    }
  });
}

function parseJson(line: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}
