/** One harness process (a broker node or a link agent): spawned with fixed args, stopped by PID, restartable. */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { appendFileSync, rmSync } from 'node:fs';
import { meridianBin } from './paths.js';

export interface NodeHandle {
  readonly id: string;
  readonly pid: number | undefined;
  readonly mqttPort: number | undefined;
  readonly running: boolean;
  /** Sends the signal (default SIGTERM; SIGKILL after a grace period) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again with the same ports, data dir and args; resolves when it is ready. */
  start(): Promise<void>;
  /** Deletes its data dir (a lost volume); only while stopped. */
  wipeData(): void;
  logs(): string[];
}

export interface ProcessSpec {
  /** 'core-0', 'replicant-0', 'agent-0'. */
  id: string;
  /** Region name, for error messages. */
  region: string;
  /** `meridian` sub-command and flags. */
  args: string[];
  /** Log line (pino `msg`) that says the process is ready. */
  readyMessage: string;
  dataDir: string;
  logFile: string;
  mqttPort?: number;
  startTimeoutMs: number;
  stopGraceMs: number;
  /** Called before a graceful stop signal (not SIGKILL) is sent. */
  onGracefulStop?: () => void;
}

const LOG_LINES_KEPT = 5000;
const LOG_LINES_IN_ERRORS = 25;

/** Every child started by any harness in this process, so that an exit of the harness kills them (last resort). */
const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of liveChildren) if (child.pid !== undefined) try { process.kill(child.pid, 'SIGKILL'); } catch { /* already gone */ }
});

/**
 * A watchdog process told every child PID over its stdin ("+ pid" / "- pid", work dirs "d+ dir" / "d- dir"): when its
 * stdin closes because the harness process died, even by SIGKILL, it SIGKILLs the children still listed and removes
 * the work dirs. Its own process group, so a terminal's Ctrl-C does not reach it.
 */
const WATCHDOG_SOURCE = `
const pids = new Set();
const dirs = new Set();
let buffered = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  buffered += chunk;
  let nl;
  while ((nl = buffered.indexOf('\\n')) >= 0) {
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    const op = line.slice(0, line.indexOf(' '));
    const arg = line.slice(line.indexOf(' ') + 1);
    if (op === '+') pids.add(Number(arg));
    else if (op === '-') pids.delete(Number(arg));
    else if (op === 'd+') dirs.add(arg);
    else if (op === 'd-') dirs.delete(arg);
  }
});
process.stdin.on('end', () => {
  for (const pid of pids) try { process.kill(pid, 'SIGKILL'); } catch {}
  // Give the killed processes a moment to release their files, then remove the work dirs.
  setTimeout(() => {
    for (const dir of dirs) try { require('node:fs').rmSync(dir, { recursive: true, force: true }); } catch {}
    process.exit(0);
  }, dirs.size ? 500 : 0);
});
`;
let watchdog: ChildProcess | undefined;

/** Has the watchdog remove `dir` if the harness process dies before it calls `watchDir(dir, false)`. */
export function watchDir(dir: string, watch: boolean): void {
  tellWatchdog(`${watch ? 'd+' : 'd-'} ${dir}`);
}

function tellWatchdog(line: string): void {
  if (!watchdog) {
    watchdog = spawn(process.execPath, ['-e', WATCHDOG_SOURCE], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
    watchdog.unref();
    (watchdog.stdin as Socket).unref();
    watchdog.stdin!.on('error', () => undefined);
  }
  watchdog.stdin!.write(`${line}\n`);
}

export class HarnessProcess implements NodeHandle {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private readonly lines: string[] = [];
  /** Set by close(): the harness is stopping, no start any more. */
  private closed = false;

  constructor(private readonly spec: ProcessSpec) {}

  get id(): string { return this.spec.id; }
  get pid(): number | undefined { return this.running ? this.child?.pid : undefined; }
  get mqttPort(): number | undefined { return this.spec.mqttPort; }
  get running(): boolean { return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null; }
  /** Every PID this handle ever had (the tests check that none survives). */
  readonly pids: number[] = [];

  logs(): string[] { return [...this.lines]; }

  wipeData(): void {
    if (this.running) throw new Error(`harness: ${this.spec.region}/${this.id} is running (pid ${this.pid}); stop it before wiping its data`);
    rmSync(this.spec.dataDir, { recursive: true, force: true });
  }

  async start(): Promise<void> {
    if (this.closed) throw new Error(`harness: ${this.spec.region}/${this.id} not started: the harness is stopping`);
    if (this.running) throw new Error(`harness: ${this.spec.region}/${this.id} is already running (pid ${this.pid})`);
    const child = spawn(process.execPath, [meridianBin(), ...this.spec.args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.child = child;
    if (child.pid !== undefined) {
      this.pids.push(child.pid);
      tellWatchdog(`+ ${child.pid}`);
    }
    liveChildren.add(child);
    this.exited = new Promise((resolve) => child.once('exit', () => {
      liveChildren.delete(child);
      if (child.pid !== undefined) tellWatchdog(`- ${child.pid}`);
      resolve();
    }));
    this.note(`--- start pid ${child.pid ?? '?'}: meridian ${this.spec.args.join(' ')}`);
    await this.ready(child);
  }

  /** Kills it (signal, SIGKILL after the grace period) and refuses any later start. */
  async close(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    this.closed = true;
    await this.kill(signal);
  }

  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    if (signal !== 'SIGKILL') this.spec.onGracefulStop?.();
    child.kill(signal);
    const timer = signal === 'SIGKILL' ? undefined : setTimeout(() => child.kill('SIGKILL'), this.spec.stopGraceMs);
    await this.exited;
    if (timer) clearTimeout(timer);
  }

  private note(line: string): void {
    this.lines.push(line);
    if (this.lines.length > LOG_LINES_KEPT) this.lines.splice(0, this.lines.length - LOG_LINES_KEPT);
    try { appendFileSync(this.spec.logFile, `${line}\n`); } catch { /* the work dir may be gone during stop */ }
  }

  private failure(why: string): Error {
    const tail = this.lines.slice(-LOG_LINES_IN_ERRORS).join('\n');
    return new Error(`harness: ${this.spec.region}/${this.id} ${why} (log ${this.spec.logFile}); last lines:\n${tail}`);
  }

  private ready(child: ChildProcess): Promise<void> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (err?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        child.off('exit', onExit);
        if (err) {
          child.kill('SIGKILL');
          reject(err);
        } else resolve();
      };
      const timer = setTimeout(() => settle(this.failure(`not ready after ${this.spec.startTimeoutMs} ms`)), this.spec.startTimeoutMs);
      const onExit = (code: number | null, signal: NodeJS.Signals | null): void => settle(this.failure(`exited (${signal ?? `code ${code}`}) before ready`));
      child.once('exit', onExit);
      readLines(child.stderr, (line) => this.note(line));
      readLines(child.stdout, (line) => {
        this.note(line);
        if (!settled && line.includes(`"msg":"${this.spec.readyMessage}"`)) settle();
      });
    });
  }
}

function readLines(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): void {
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
