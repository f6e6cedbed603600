import { spawn, type ChildProcess } from 'node:child_process';
import { MERIDIAN_BIN } from '../../harness/broker-process.js';

/** A `meridian link-agent` child process, ready once it logged 'link agent ready'; stopped by PID. */
export class SidecarProcess {
  readonly logs: string[] = [];
  adminPort = 0;
  private readonly exit: Promise<number | null>;

  private constructor(readonly child: ChildProcess) {
    this.exit = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  /** `env`: added to the test process's environment (test hooks). */
  static async start(args: string[], timeoutMs = 15000, env: NodeJS.ProcessEnv = {}): Promise<SidecarProcess> {
    const child = spawn(process.execPath, [MERIDIAN_BIN, 'link-agent', '--admin-port', '0', '--log-level', 'info', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const sidecar = new SidecarProcess(child);
    await sidecar.ready(timeoutMs);
    return sidecar;
  }

  async getJson<T>(pathname: string): Promise<T> {
    const res = await fetch(`http://127.0.0.1:${this.adminPort}${pathname}`);
    return (await res.json()) as T;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10000);
    const code = await this.exit;
    clearTimeout(timer);
    return code;
  }

  private ready(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(`link agent not ready after ${timeoutMs} ms`), timeoutMs);
      const fail = (why: string): void => {
        clearTimeout(timer);
        this.child.kill('SIGKILL');
        reject(new Error(`${why}; logs:\n${this.logs.join('\n')}`));
      };
      const onExit = (code: number | null): void => fail(`link agent exited with ${code} before ready`);
      this.child.once('exit', onExit);
      lines(this.child.stderr, (line) => this.logs.push(line));
      lines(this.child.stdout, (line) => {
        this.logs.push(line);
        if (!line.includes('"link agent ready"')) return;
        const admin = String((JSON.parse(line) as { admin: string }).admin);
        this.adminPort = Number(admin.slice(admin.lastIndexOf(':') + 1));
        clearTimeout(timer);
        this.child.off('exit', onExit);
        resolve();
      });
    });
  }
}

function lines(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): void {
  let buffered = '';
  stream?.setEncoding('utf8');
  stream?.on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      onLine(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
    }
  });
}
