/**
 * Observer for e2e/bench/cluster.sh: polls the /api/v1/cluster table of every cluster node until each node's lanes
 * hold exactly the expected route counts, and reports when each node got there, on the wall clock shared with
 * `meridian bench sub --ready-file` (which records the run's start and its last SUBACK as epoch milliseconds).
 *
 *   node dist/e2e/bench/lib/cluster-watch.js --node c1=ADMIN_PORT --node c2=... --expect c1=334,c2=333,r1=333 \
 *     [--ready-file F [--poll-from ready|start]] [--since-epoch-ms T] [--log NODE_LOG] [--poll-ms 10] [--timeout-s 60]
 *     [--while-running PID]   (give up as soon as that process, e.g. the bench, has exited)
 *
 * Prints one JSON document (WatchResult). Exit 1 when the tables do not converge before the timeout, or when the
 * ready file does not appear: the JSON then says what each node last showed.
 *
 * Granularity: a node counts as complete at the arrival of the first response that shows the expected counts, so
 * the recorded time is late by at most one poll period (the interval plus the request's own time, both reported).
 *
 * Observer effect: answering /api/v1/cluster every 10 ms cost the nodes 13-16% of their CPU during a 1000-client
 * run (profiled), and that CPU is what the clients wait for. With a ready file, the nodes are therefore polled only
 * from the moment it appears (--poll-from ready, the default; the file itself is checked every READY_CHECK_MS):
 * every route cannot be visible before the last SUBSCRIBE was handled, so the total, max(last SUBACK, visible
 * everywhere), stays an upper bound late by at most one poll period. --poll-from start polls from the beginning
 * and shows when each node caught up, at the cost of disturbing the run.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface Lane {
  actor: string;
  routes: number;
}

interface ClusterTable {
  nodeId: string;
  routes: number;
  lanes: Lane[];
}

interface WatchedNode {
  name: string;
  adminPort: number;
  completeAtEpochMs?: number;
  lastLanes?: Record<string, number>;
  lastError?: string;
}

interface ReadyFile {
  startedAtEpochMs: number;
  subscribedAtEpochMs: number;
  subscriptions: number;
}

interface PollStats {
  rounds: number;
  /** Time between the ends of two consecutive rounds: how stale a "complete" observation can be. */
  periodMs: { mean: number; max: number };
  /** Time one round of requests took (all nodes in parallel). */
  requestMs: { mean: number; max: number };
}

interface LogTimes {
  nodeReadyEpochMs?: number;
  firstPeerConnectedEpochMs?: number;
  upstreamChosenEpochMs?: number;
}

export interface WatchResult {
  converged: boolean;
  /** The origin of every *Ms figure below: the bench run's start, or --since-epoch-ms. */
  originEpochMs: number;
  /** Polling of the nodes began at the start, or once the bench's ready file appeared (last SUBACK). */
  pollFrom: 'start' | 'ready';
  expect: Record<string, number>;
  ready?: ReadyFile;
  /** Last SUBACK, from the origin (with --ready-file). */
  subscribedMs?: number;
  /** Per node: when its table first showed every expected route, from the origin. */
  visibleMs: Record<string, number | undefined>;
  /** When the last node got there. */
  allVisibleMs?: number;
  /** max(subscribedMs, allVisibleMs): every client subscribed and every route visible on every node. */
  totalMs?: number;
  poll: PollStats;
  log?: LogTimes & { nodeReadyMs?: number; firstPeerConnectedMs?: number; upstreamChosenMs?: number };
  lastLanes: Record<string, Record<string, number> | undefined>;
  errors: Record<string, string | undefined>;
  /** --while-running: that process exited before the tables converged. */
  exited?: number;
}

interface Options {
  nodes: WatchedNode[];
  expect: Record<string, number>;
  readyFile?: string;
  sinceEpochMs?: number;
  log?: string;
  pollFrom: 'start' | 'ready';
  pollMs: number;
  whileRunning?: number;
  timeoutMs: number;
}

const REQUEST_TIMEOUT_MS = 2000;
const READY_CHECK_MS = 2;

function nowEpochMs(): number {
  return performance.timeOrigin + performance.now();
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      node: { type: 'string', multiple: true },
      expect: { type: 'string' },
      'ready-file': { type: 'string' },
      'since-epoch-ms': { type: 'string' },
      log: { type: 'string' },
      'poll-from': { type: 'string' },
      'while-running': { type: 'string' },
      'poll-ms': { type: 'string', default: '10' },
      'timeout-s': { type: 'string', default: '60' },
    },
    strict: true,
  });
  const nodes = (values.node ?? []).map((spec) => {
    const [name, port] = pair(spec, '--node');
    return { name, adminPort: positiveNumber(port, `--node ${spec}`) };
  });
  if (nodes.length === 0) throw new Error('cluster-watch: give at least one --node name=adminPort');
  if (values.expect === undefined) throw new Error('cluster-watch: --expect actor=routes,... is required');
  const expect = Object.fromEntries(values.expect.split(',').map((entry) => {
    const [actor, count] = pair(entry, '--expect');
    return [actor, nonNegativeNumber(count, `--expect ${entry}`)];
  }));
  if (values['ready-file'] === undefined && values['since-epoch-ms'] === undefined) {
    throw new Error('cluster-watch: give --ready-file (a bench sub run) or --since-epoch-ms (the origin of the times)');
  }
  const pollFrom = values['poll-from'] ?? (values['ready-file'] === undefined ? 'start' : 'ready');
  if (pollFrom !== 'start' && pollFrom !== 'ready') throw new Error(`cluster-watch: --poll-from is start or ready, got "${pollFrom}"`);
  if (pollFrom === 'ready' && values['ready-file'] === undefined) throw new Error('cluster-watch: --poll-from ready needs --ready-file');
  return {
    nodes,
    expect,
    ...(values['ready-file'] !== undefined ? { readyFile: values['ready-file'] } : {}),
    ...(values['since-epoch-ms'] !== undefined ? { sinceEpochMs: positiveNumber(values['since-epoch-ms'], '--since-epoch-ms') } : {}),
    ...(values.log !== undefined ? { log: values.log } : {}),
    pollFrom,
    ...(values['while-running'] !== undefined ? { whileRunning: positiveNumber(values['while-running'], '--while-running') } : {}),
    pollMs: nonNegativeNumber(values['poll-ms'] ?? '10', '--poll-ms'),
    timeoutMs: positiveNumber(values['timeout-s'] ?? '60', '--timeout-s') * 1000,
  };
}

function pair(text: string, flag: string): [string, string] {
  const at = text.indexOf('=');
  if (at <= 0) throw new Error(`cluster-watch: ${flag} wants name=value, got "${text}"`);
  return [text.slice(0, at), text.slice(at + 1)];
}

function positiveNumber(text: string, what: string): number {
  const value = Number(text);
  if (!(value > 0)) throw new Error(`cluster-watch: ${what}: expected a positive number, got "${text}"`);
  return value;
}

function nonNegativeNumber(text: string, what: string): number {
  const value = Number(text);
  if (!(value >= 0) || text.trim() === '') throw new Error(`cluster-watch: ${what}: expected a number >= 0, got "${text}"`);
  return value;
}

/** Lane route counts of one node, or an error text (e.g. not listening yet: a replicant still starting). */
async function fetchLanes(node: WatchedNode): Promise<Record<string, number> | string> {
  try {
    const response = await fetch(`http://127.0.0.1:${node.adminPort}/api/v1/cluster`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    if (response.status !== 200) return `HTTP ${response.status}`;
    const table = (await response.json()) as ClusterTable;
    return Object.fromEntries(table.lanes.map((lane) => [lane.actor, lane.routes]));
  } catch (error) {
    const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : '';
    return `${error instanceof Error ? error.message : String(error)}${cause}`;
  }
}

/** Every expected actor has a lane (so the node knows it: the cluster has formed) with exactly that many routes. */
function matches(lanes: Record<string, number>, expect: Record<string, number>): boolean {
  return Object.entries(expect).every(([actor, routes]) => lanes[actor] === routes);
}

function readReadyFile(path: string): ReadyFile | undefined {
  if (!existsSync(path)) return undefined;
  const text = readFileSync(path, 'utf8');
  // The bench writes the file in one call; a half-written file is retried at the next round.
  try {
    const parsed = JSON.parse(text) as Partial<ReadyFile>;
    if (typeof parsed.startedAtEpochMs !== 'number' || typeof parsed.subscribedAtEpochMs !== 'number') {
      throw new Error(`cluster-watch: ${path} lacks startedAtEpochMs/subscribedAtEpochMs (is dist/ older than the bench's --ready-file times?)`);
    }
    return parsed as ReadyFile;
  } catch (error) {
    if (error instanceof SyntaxError) return undefined;
    throw error;
  }
}

/** Epoch ms of the first log line with each message, from pino's ISO `time` field (millisecond resolution). */
function logTimes(path: string): LogTimes {
  const times: LogTimes = {};
  if (!existsSync(path)) return times;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    let entry: { msg?: string; time?: string | number; component?: string };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      continue;
    }
    const at = typeof entry.time === 'number' ? entry.time : Date.parse(String(entry.time));
    if (!Number.isFinite(at)) continue;
    if (entry.msg === 'node ready') times.nodeReadyEpochMs ??= at;
    if (entry.msg === 'cluster peer connected' && entry.component === 'cluster') times.firstPeerConnectedEpochMs ??= at;
    if (entry.msg === 'route sync upstream chosen') times.upstreamChosenEpochMs ??= at;
  }
  return times;
}

class PollClock {
  private readonly periods: number[] = [];
  private readonly requests: number[] = [];
  private lastEnd: number | undefined;

  record(start: number, end: number): void {
    this.requests.push(end - start);
    if (this.lastEnd !== undefined) this.periods.push(end - this.lastEnd);
    this.lastEnd = end;
  }

  stats(): PollStats {
    return { rounds: this.requests.length, periodMs: meanMax(this.periods), requestMs: meanMax(this.requests) };
  }
}

function meanMax(values: number[]): { mean: number; max: number } {
  if (values.length === 0) return { mean: 0, max: 0 };
  return { mean: values.reduce((a, b) => a + b, 0) / values.length, max: Math.max(...values) };
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function watch(options: Options): Promise<WatchResult> {
  const clock = new PollClock();
  const deadline = performance.now() + options.timeoutMs;
  const watched = options.whileRunning;
  const gaveUp = (): boolean => watched !== undefined && !isRunning(watched);
  let ready: ReadyFile | undefined;
  const done = (): boolean => options.nodes.every((n) => n.completeAtEpochMs !== undefined) && (options.readyFile === undefined || ready !== undefined);
  if (options.pollFrom === 'ready' && options.readyFile !== undefined) {
    // One request per node first: Node loads its HTTP client on the first fetch() and opens the keep-alive
    // connections, tens of milliseconds that would otherwise land on the first real poll.
    await Promise.all(options.nodes.map((node) => fetchLanes(node)));
    while (ready === undefined && performance.now() < deadline && !gaveUp()) {
      ready = readReadyFile(options.readyFile);
      if (ready === undefined) await new Promise((resolve) => setTimeout(resolve, READY_CHECK_MS));
    }
  }
  while (!done() && performance.now() < deadline && !gaveUp()) {
    const roundStart = performance.now();
    const pending = options.nodes.filter((n) => n.completeAtEpochMs === undefined);
    const answers = await Promise.all(pending.map((node) => fetchLanes(node)));
    const arrivedAt = nowEpochMs();
    pending.forEach((node, i) => recordAnswer(node, answers[i] as Record<string, number> | string, arrivedAt, options.expect));
    if (options.readyFile !== undefined && ready === undefined) ready = readReadyFile(options.readyFile);
    clock.record(roundStart, performance.now());
    const wait = roundStart + options.pollMs - performance.now();
    if (wait > 0 && !done()) await new Promise((resolve) => setTimeout(resolve, wait));
  }
  // A last look at the ready file: the process may have written it just before it exited.
  if (options.readyFile !== undefined && ready === undefined) ready = readReadyFile(options.readyFile);
  return { ...result(options, ready, clock.stats()), ...(watched !== undefined && gaveUp() && !done() ? { exited: watched } : {}) };
}

function recordAnswer(node: WatchedNode, answer: Record<string, number> | string, arrivedAt: number, expect: Record<string, number>): void {
  if (typeof answer === 'string') {
    node.lastError = answer;
    return;
  }
  delete node.lastError;
  node.lastLanes = answer;
  if (matches(answer, expect)) node.completeAtEpochMs = arrivedAt;
}

function result(options: Options, ready: ReadyFile | undefined, poll: PollStats): WatchResult {
  const origin = ready?.startedAtEpochMs ?? options.sinceEpochMs ?? nowEpochMs();
  const since = (epoch: number | undefined): number | undefined => (epoch === undefined ? undefined : epoch - origin);
  const visibleMs = Object.fromEntries(options.nodes.map((n) => [n.name, since(n.completeAtEpochMs)]));
  const allComplete = options.nodes.every((n) => n.completeAtEpochMs !== undefined);
  const allVisibleMs = allComplete ? Math.max(...options.nodes.map((n) => since(n.completeAtEpochMs) ?? 0)) : undefined;
  const subscribedMs = ready ? ready.subscribedAtEpochMs - origin : undefined;
  const converged = allComplete && (options.readyFile === undefined || ready !== undefined);
  const totalMs = converged && allVisibleMs !== undefined ? Math.max(allVisibleMs, subscribedMs ?? 0) : undefined;
  const log = options.log === undefined ? undefined : logTimes(options.log);
  return {
    converged,
    originEpochMs: origin,
    pollFrom: options.pollFrom,
    expect: options.expect,
    ...(ready ? { ready, subscribedMs } : {}),
    visibleMs,
    ...(allVisibleMs !== undefined ? { allVisibleMs } : {}),
    ...(totalMs !== undefined ? { totalMs } : {}),
    poll,
    ...(log ? {
      log: {
        ...log,
        nodeReadyMs: since(log.nodeReadyEpochMs),
        firstPeerConnectedMs: since(log.firstPeerConnectedEpochMs),
        upstreamChosenMs: since(log.upstreamChosenEpochMs),
      },
    } : {}),
    lastLanes: Object.fromEntries(options.nodes.map((n) => [n.name, n.lastLanes])),
    errors: Object.fromEntries(options.nodes.map((n) => [n.name, n.lastError])),
  };
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const outcome = await watch(options);
  process.stdout.write(JSON.stringify(outcome, (_key, value: unknown) => (typeof value === 'number' && !Number.isInteger(value) ? Math.round(value * 100) / 100 : value)) + '\n');
  if (!outcome.converged) {
    const why = outcome.exited !== undefined ? `process ${outcome.exited} exited before the tables converged` : `not converged within ${options.timeoutMs / 1000} s`;
    process.stderr.write(`cluster-watch: ${why}; last lanes ${JSON.stringify(outcome.lastLanes)}, ` +
      `errors ${JSON.stringify(outcome.errors)}, ready file ${outcome.ready ? 'seen' : options.readyFile === undefined ? 'not asked' : 'missing'}\n`);
    process.exitCode = 1;
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 2;
});
