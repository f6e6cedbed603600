/**
 * A real Kubernetes control plane for integration tests: etcd + kube-apiserver v1.20.2 on loopback random ports,
 * no controller-manager and no scheduler (so: no pods, no garbage collection). Binaries come from
 * e2e/k8s/provide-tools.sh (cached under ~/.cache/meridian/bin; built on first use, which takes minutes).
 * Both processes are stopped by PID in `stop()`, and killed on process exit if a test run dies before that.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import https from 'node:https';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const REPO_ROOT = path.resolve(import.meta.dirname, '../../..');
const PROVIDE_TOOLS = path.join(REPO_ROOT, 'e2e/k8s/provide-tools.sh');
const TOOLS = ['etcd', 'kube-apiserver', 'kubectl', 'helm'] as const;

export interface ApiServerUser {
  name: string;
  groups: string[];
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ApiServer {
  /** https://127.0.0.1:<port> */
  url: string;
  /** Working directory (certificates, kubeconfigs, logs); removed by stop() unless MERIDIAN_KEEP_APISERVER_DIR is set. */
  dir: string;
  /** CA bundle that verifies the serving certificate. */
  caFile: string;
  /** Kubeconfig of `admin` (group system:masters). */
  kubeconfig: string;
  binDir: string;
  pids: { etcd: number; apiserver: number };
  /** Kubeconfig of a user passed in `users` (authorised by RBAC only). */
  kubeconfigFor(user: string): string;
  kubectl(args: string[], options?: { input?: string; user?: string }): Promise<CommandResult>;
  /** A raw API request as admin (or `user`); the body is JSON, sent as `contentType` (default application/json). */
  request(method: string, apiPath: string, body?: unknown, user?: string, contentType?: string): Promise<{ status: number; body: unknown }>;
  /**
   * Kills kube-apiserver (SIGKILL, a crash: on SIGTERM it waits for open watches for a long while; etcd keeps
   * running), waits `downMs`, and starts it again on the same port with the same flags: clients see their
   * connections and watches drop, then a server whose watch cache starts at the current etcd revision (older
   * resource versions get 410 Gone).
   */
  restartApiServer(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export interface StartOptions {
  users?: ApiServerUser[];
  startTimeoutMs?: number;
}

/** Directory holding the four binaries; runs the provider script (cached, locked) when one is missing. */
export function k8sBinDir(): string {
  const dir = process.env.MERIDIAN_K8S_BIN ?? path.join(os.homedir(), '.cache/meridian/bin');
  if (TOOLS.every((t) => existsSync(path.join(dir, t)))) return dir;
  if (process.env.MERIDIAN_K8S_BIN) throw new Error(`MERIDIAN_K8S_BIN=${dir} lacks one of ${TOOLS.join(', ')}`);
  const run = spawnSync('bash', [PROVIDE_TOOLS, 'all'], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`${PROVIDE_TOOLS} failed with exit code ${run.status}`);
  return dir;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

function startProcess(binary: string, args: string[], logFile: string): ChildProcess {
  const log = openSync(logFile, 'a');
  const child = spawn(binary, args, { stdio: ['ignore', log, log] });
  closeSync(log);
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** SIGTERM, then SIGKILL after `timeoutMs` (0: SIGKILL at once). */
async function stopProcess(child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.kill(child.pid, timeoutMs === 0 ? 'SIGKILL' : 'SIGTERM');
  const timer = setTimeout(() => child.pid !== undefined && child.exitCode === null && process.kill(child.pid, 'SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

function logTail(file: string, lines = 30): string {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n') : '(no log)';
}

async function waitFor(what: string, probe: () => Promise<boolean>, child: ChildProcess, logFile: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}) before it was ready; log tail:\n${logTail(logFile)}`);
    }
    if (await probe().catch(() => false)) return;
    await sleep(200);
  }
  throw new Error(`${what} not ready within ${timeoutMs} ms; log tail:\n${logTail(logFile)}`);
}

function httpGetOk(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(url, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.setTimeout(2000, () => req.destroy());
  });
}

function httpsRequest(
  url: string,
  ca: string,
  token: string,
  method: string,
  body?: unknown,
  contentType = 'application/json',
): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = https.request(url, {
      method,
      ca,
      headers: {
        authorization: `Bearer ${token}`,
        accept: 'application/json',
        ...(payload === undefined ? {} : { 'content-type': contentType, 'content-length': Buffer.byteLength(payload) }),
      },
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // plain-text answers (/readyz) stay strings
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.end(payload);
  });
}

function writeKubeconfig(file: string, server: string, caFile: string, user: string, token: string): void {
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'meridian-test', cluster: { server, 'certificate-authority': caFile } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: user, context: { cluster: 'meridian-test', user, namespace: 'default' } }],
    'current-context': user,
  };
  writeFileSync(file, JSON.stringify(config, null, 2), { mode: 0o600 });
}

async function startEtcd(binDir: string, dir: string, timeoutMs: number): Promise<{ child: ChildProcess; url: string }> {
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const logFile = path.join(dir, 'etcd.log');
  const child = startProcess(
    path.join(binDir, 'etcd'),
    [
      '--name=meridian-test',
      `--data-dir=${path.join(dir, 'etcd')}`,
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=meridian-test=${peer}`,
      '--log-level=warn',
      '--logger=zap',
    ],
    logFile,
  );
  await waitFor('etcd', () => httpGetOk(`${url}/health`), child, logFile, timeoutMs);
  return { child, url };
}

function writeCredentials(dir: string, users: ApiServerUser[]): { tokens: Map<string, string>; saPub: string; saKey: string; tokenFile: string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const saPub = path.join(dir, 'sa.pub');
  const saKey = path.join(dir, 'sa.key');
  writeFileSync(saPub, publicKey);
  writeFileSync(saKey, privateKey, { mode: 0o600 });
  const tokens = new Map<string, string>();
  const lines = [{ name: 'admin', groups: ['system:masters'] }, ...users].map((u, i) => {
    const token = randomBytes(24).toString('hex');
    tokens.set(u.name, token);
    return `${token},${u.name},uid-${i},"${u.groups.join(',')}"`;
  });
  const tokenFile = path.join(dir, 'tokens.csv');
  writeFileSync(tokenFile, `${lines.join('\n')}\n`, { mode: 0o600 });
  return { tokens, saPub, saKey, tokenFile };
}

function apiServerArgs(dir: string, etcdUrl: string, port: number, creds: ReturnType<typeof writeCredentials>): string[] {
  return [
    `--etcd-servers=${etcdUrl}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${port}`,
    '--insecure-port=0',
    `--cert-dir=${path.join(dir, 'pki')}`,
    `--token-auth-file=${creds.tokenFile}`,
    `--service-account-key-file=${creds.saPub}`,
    `--service-account-signing-key-file=${creds.saKey}`,
    '--service-account-issuer=https://kubernetes.default.svc',
    '--api-audiences=https://kubernetes.default.svc',
    '--service-cluster-ip-range=10.96.0.0/16',
    '--disable-admission-plugins=ServiceAccount',
    '--authorization-mode=RBAC',
    '--anonymous-auth=false',
    '--profiling=false',
    '--enable-priority-and-fairness=false',
    '--allow-privileged=false',
    '--logtostderr=true',
    '--v=1',
  ];
}

export async function startApiServer(options: StartOptions = {}): Promise<ApiServer> {
  const binDir = k8sBinDir();
  const timeoutMs = options.startTimeoutMs ?? 60_000;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'meridian-apiserver-'));
  let etcd: ChildProcess | undefined;
  let apiserver: ChildProcess | undefined;
  const stop = async (): Promise<void> => {
    if (apiserver) await stopProcess(apiserver);
    if (etcd) await stopProcess(etcd);
    if (!process.env.MERIDIAN_KEEP_APISERVER_DIR) rmSync(dir, { recursive: true, force: true });
  };
  try {
    const started = await startEtcd(binDir, dir, timeoutMs);
    etcd = started.child;
    const creds = writeCredentials(dir, options.users ?? []);
    const port = await freePort();
    const url = `https://127.0.0.1:${port}`;
    const logFile = path.join(dir, 'kube-apiserver.log');
    apiserver = startProcess(path.join(binDir, 'kube-apiserver'), apiServerArgs(dir, started.url, port, creds), logFile);
    const caFile = path.join(dir, 'pki', 'apiserver.crt');
    const adminToken = creds.tokens.get('admin') as string;
    const ready = async (): Promise<boolean> =>
      existsSync(caFile) && (await httpsRequest(`${url}/readyz`, readFileSync(caFile, 'utf8'), adminToken, 'GET')).status === 200;
    await waitFor('kube-apiserver', ready, apiserver, logFile, timeoutMs);
    const pids = { etcd: etcd.pid as number, apiserver: apiserver.pid as number };
    const args = apiServerArgs(dir, started.url, port, creds);
    const restartApiServer = async (downMs = 0): Promise<void> => {
      if (apiserver) await stopProcess(apiserver, 0);
      await sleep(downMs);
      apiserver = startProcess(path.join(binDir, 'kube-apiserver'), args, logFile);
      pids.apiserver = apiserver.pid as number;
      await waitFor('kube-apiserver (restarted)', ready, apiserver, logFile, timeoutMs);
    };
    return makeHandle({ url, dir, caFile, binDir, pids, tokens: creds.tokens, stop, restartApiServer });
  } catch (err) {
    await stop();
    throw err;
  }
}

interface HandleParts {
  url: string;
  dir: string;
  caFile: string;
  binDir: string;
  pids: { etcd: number; apiserver: number };
  tokens: Map<string, string>;
  stop: () => Promise<void>;
  restartApiServer: (downMs?: number) => Promise<void>;
}

function makeHandle({ url, dir, caFile, binDir, pids, tokens, stop, restartApiServer }: HandleParts): ApiServer {
  const kubeconfigs = new Map<string, string>();
  const kubeconfigFor = (user: string): string => {
    const token = tokens.get(user);
    if (!token) throw new Error(`no such test user '${user}' (known: ${[...tokens.keys()].join(', ')})`);
    let file = kubeconfigs.get(user);
    if (!file) {
      file = path.join(dir, `kubeconfig-${user.replace(/[^A-Za-z0-9_.-]/g, '_')}`);
      writeKubeconfig(file, url, caFile, user, token);
      kubeconfigs.set(user, file);
    }
    return file;
  };
  const ca = readFileSync(caFile, 'utf8');
  return {
    url,
    dir,
    caFile,
    binDir,
    pids,
    kubeconfig: kubeconfigFor('admin'),
    kubeconfigFor,
    kubectl: (args, opts = {}) => runCommand(path.join(binDir, 'kubectl'), ['--kubeconfig', kubeconfigFor(opts.user ?? 'admin'), ...args], opts.input),
    request: (method, apiPath, body, user = 'admin', contentType) => httpsRequest(`${url}${apiPath}`, ca, tokens.get(user) ?? '', method, body, contentType),
    restartApiServer,
    stop,
  };
}

export function runCommand(binary: string, args: string[], input?: string, timeoutMs = 60_000): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', (err) => reject(new Error(`${binary} ${args.join(' ')}: ${err.message}`)));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(input ?? '');
  });
}
