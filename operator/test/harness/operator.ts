/**
 * The operator as a separate process (`meridian operator`: `node dist/broker/src/cli/main.js operator`, built by `npx tsc`), logging pino
 * JSON lines to a file the tests read. Stopped by PID; killed on process exit if a test run dies first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';

const REPO_ROOT = path.resolve(import.meta.dirname, '../../..');
/** The operator runs as the image runs it: `meridian operator`. */
export const OPERATOR_ENTRY = path.join(REPO_ROOT, 'dist/broker/src/cli/main.js');

export interface LogLine {
  level: number;
  msg: string;
  time: string;
  [key: string]: unknown;
}

export interface OperatorProcess {
  identity: string;
  pid: number;
  logFile: string;
  logs(): LogLine[];
  waitForLog(what: string, predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Resolves with the exit code (or signal) once the process is gone. */
  exited: Promise<number | string>;
  kill(signal: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after `timeoutMs`. */
  stop(timeoutMs?: number): Promise<number | string>;
}

export interface OperatorProcessOptions {
  kubeconfig: string;
  identity: string;
  logFile: string;
  args?: string[];
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function startOperatorProcess(options: OperatorProcessOptions): OperatorProcess {
  if (!existsSync(OPERATOR_ENTRY)) throw new Error(`${OPERATOR_ENTRY} is missing: run npx tsc -p tsconfig.json first`);
  const log = openSync(options.logFile, 'a');
  // The harness's flags come last: of a repeated flag the last wins.
  const args = [
    OPERATOR_ENTRY,
    'operator',
    '--log-level=debug',
    ...(options.args ?? []),
    `--kubeconfig=${options.kubeconfig}`,
    `--leader-election-identity=${options.identity}`,
    '--health-host=127.0.0.1',
    '--health-port=0',
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', log, log], env: { ...process.env, POD_NAMESPACE: '', POD_NAME: '' } });
  closeSync(log);
  live.add(child);
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve(code ?? signal ?? -1);
    }),
  );
  const logs = (): LogLine[] =>
    readFileSync(options.logFile, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as LogLine);
  const tail = (): string => readFileSync(options.logFile, 'utf8').split('\n').slice(-25).join('\n');
  return {
    identity: options.identity,
    pid: child.pid as number,
    logFile: options.logFile,
    logs,
    exited,
    async waitForLog(what, predicate, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const found = logs().find(predicate);
        if (found) return found;
        if (child.exitCode !== null || child.signalCode !== null) break;
        await sleep(100);
      }
      throw new Error(`operator ${options.identity}: no log line '${what}' within ${timeoutMs} ms; log tail:\n${tail()}`);
    },
    kill(signal) {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid as number, signal);
    },
    async stop(timeoutMs = 10_000) {
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid as number, 'SIGTERM');
        const timer = setTimeout(() => child.exitCode === null && child.signalCode === null && process.kill(child.pid as number, 'SIGKILL'), timeoutMs);
        const result = await exited;
        clearTimeout(timer);
        return result;
      }
      return exited;
    },
  };
}
