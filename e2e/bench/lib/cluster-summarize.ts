/**
 * Summarizes the results written by e2e/bench/cluster.sh into Markdown: the seed workload (subscribe + route
 * visibility), cross-node throughput/latency against a standalone node, route memory and bootstrap of a new replicant.
 * Usage: node dist/e2e/bench/lib/cluster-summarize.js <results-dir>
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PubReport, SubReport } from '../../../broker/src/bench/report.js';
import type { WatchResult } from './cluster-watch.js';

const SEED_TARGET_MS = { clients: 1000, ms: 500 };
const EMQX_SEED_MS: Record<number, string> = { 100: '1.09 s (co-located cores)', 1000: '2.585 s (geo cluster)' };
const BOOTSTRAP_TARGET_MS = 2000;
const TARGETS = ['solo', 'cross'] as const;

function readJson<T>(path: string): T {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (error) {
    throw new Error(`cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function ms(value: number | undefined): string {
  return value === undefined ? '–' : value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

function spread(values: number[]): string {
  return `${ms(median(values))} (${ms(Math.min(...values))}–${ms(Math.max(...values))})`;
}

/** "client-ticks broker-ticks ticks-per-second" as cluster.sh writes it: CPU milliseconds of each side. */
function cpuMs(path: string): { clientMs: number; brokersMs: number } | undefined {
  if (!existsSync(path)) return undefined;
  const [client, brokers, hz] = readFileSync(path, 'utf8').trim().split(/\s+/).map(Number);
  if (client === undefined || brokers === undefined || !hz) return undefined;
  return { clientMs: (client * 1000) / hz, brokersMs: (brokers * 1000) / hz };
}

/** Request time of a poll round, and the period between rounds where there were at least two rounds. */
function pollFigures(polls: WatchResult['poll'][]): string {
  const request = `${ms(median(polls.map((p) => p.requestMs.mean)))} / ${ms(Math.max(...polls.map((p) => p.requestMs.max)))}`;
  const periodic = polls.filter((p) => p.rounds >= 2);
  const period = periodic.length === 0 ? 'one round' : `${ms(median(periodic.map((p) => p.periodMs.mean)))} / ${ms(Math.max(...periodic.map((p) => p.periodMs.max)))}`;
  return `${request}; ${period}`;
}

function seedSection(dir: string, files: string[]): string[] {
  const runs = new Map<number, { watch: WatchResult; removed: WatchResult; bench: SubReport; cpu?: { clientMs: number; brokersMs: number } }[]>();
  for (const file of files) {
    const match = /^seed-(\d+)-(\d+)-watch\.json$/.exec(file);
    if (!match) continue;
    const clients = Number(match[1]);
    const base = `seed-${match[1]}-${match[2]}`;
    const run = {
      watch: readJson<WatchResult>(join(dir, file)),
      removed: readJson<WatchResult>(join(dir, `${base}-removed.json`)),
      bench: readJson<SubReport>(join(dir, `${base}-bench.json`)),
      cpu: cpuMs(join(dir, `${base}.cpu`)),
    };
    runs.set(clients, [...(runs.get(clients) ?? []), run]);
  }
  if (runs.size === 0) return [];
  const polledFromReady = [...runs.values()].some((list) => list.some((r) => r.watch.pollFrom === 'ready'));
  const lines = [
    '### Seed workload: unique wildcard filter per client, round-robin over c1, c2, r1',
    '',
    'Milliseconds from the bench\'s first CONNECT; median (min–max) over the runs. "Visible" = every node\'s',
    '`/api/v1/cluster` shows every lane with all its routes (an upper bound: late by at most one poll period).',
    ...(polledFromReady ? [
      'The nodes were polled only from the last SUBACK on (polling costs them CPU the clients wait for), so "visible"',
      'cannot come out earlier than "subscribed" and the slowest node is the last one polled complete.',
    ] : []),
    '',
    '| clients | runs | all subscribed (last SUBACK) | routes visible on every node | **total** | slowest node to see them | CONNACK p50 / p99 | CPU ms: bench client / 3 nodes | routes gone everywhere after disconnect | poll: request ms mean / max; period ms mean / max | EMQX | target |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const [clients, list] of [...runs].sort((a, b) => a[0] - b[0])) {
    const totals = list.map((r) => r.watch.totalMs ?? NaN);
    const slowest = list.map((r) => Object.entries(r.watch.visibleMs).reduce((a, b) => ((b[1] ?? 0) > (a[1] ?? 0) ? b : a))[0]);
    const connect = list.map((r) => r.bench.connect.perClientMs);
    const target = clients === SEED_TARGET_MS.clients ? (median(totals) <= SEED_TARGET_MS.ms ? `≤ ${SEED_TARGET_MS.ms} ms: met` : `≤ ${SEED_TARGET_MS.ms} ms: **missed**`) : '–';
    lines.push(`| ${clients} | ${list.length} | ${spread(list.map((r) => r.watch.subscribedMs ?? NaN))} | ${spread(list.map((r) => r.watch.allVisibleMs ?? NaN))} | ` +
      `**${spread(totals)}** | ${[...new Set(slowest)].join(', ')} | ${ms(median(connect.map((c) => c?.p50 ?? NaN)))} / ${ms(median(connect.map((c) => c?.p99 ?? NaN)))} | ` +
      `${ms(median(list.map((r) => r.cpu?.clientMs ?? NaN)))} / ${ms(median(list.map((r) => r.cpu?.brokersMs ?? NaN)))} | ` +
      `${spread(list.map((r) => r.removed.allVisibleMs ?? NaN))} | ${pollFigures(list.map((r) => r.watch.poll))} | ` +
      `${EMQX_SEED_MS[clients] ?? '–'} | ${target} |`);
  }
  return [...lines, '', ...seedReferenceLines(dir, files), ''];
}

/** The same sub load against one standalone broker: the floor set by this machine and the bench client. */
function seedReferenceLines(dir: string, files: string[]): string[] {
  const runs = new Map<string, { elapsedMs: number; brokerCpuMs: number }[]>();
  for (const file of files) {
    const match = /^seedref-(\d+)-\d+-(\w+)\.json$/.exec(file);
    if (!match) continue;
    const key = `${match[1]} ${match[2]}`;
    const run = { elapsedMs: readJson<SubReport>(join(dir, file)).subscribe.elapsedMs, brokerCpuMs: cpuMs(join(dir, file.replace(/\.json$/, '.cpu')))?.brokersMs ?? NaN };
    runs.set(key, [...(runs.get(key) ?? []), run]);
  }
  if (runs.size === 0) return [];
  const lines = [
    'The same `bench sub` load against one standalone broker (nothing to sync), first CONNECT to last SUBACK:',
    '',
    '| clients | broker | runs | all subscribed, ms: median (min–max) | broker CPU ms |',
    '|---|---|---|---|---|',
  ];
  const sorted = [...runs].sort((a, b) => a[0].localeCompare(b[0], 'en', { numeric: true }));
  for (const [key, values] of sorted) {
    const [clients, broker] = key.split(' ') as [string, string];
    lines.push(`| ${clients} | ${broker === 'solo' ? 'Meridian, standalone node' : broker} | ${values.length} | ${spread(values.map((v) => v.elapsedMs))} | ` +
      `${ms(median(values.map((v) => v.brokerCpuMs)))} |`);
  }
  return lines;
}

interface PubCase {
  report: PubReport;
  brokerCpuMs?: number;
}

function loadPubCases(dir: string, files: string[]): Map<string, PubCase> {
  const cases = new Map<string, PubCase>();
  for (const file of files) {
    if (!/^(tput|lat)-q\d-\d+x\d+-(solo|cross)\.json$/.test(file)) continue;
    const name = file.replace(/\.json$/, '');
    const cpuFile = join(dir, `${name}.cpu`);
    let brokerCpuMs: number | undefined;
    if (existsSync(cpuFile)) {
      const [ticks, hz] = readFileSync(cpuFile, 'utf8').trim().split(/\s+/).map(Number);
      if (ticks !== undefined && hz !== undefined && hz > 0) brokerCpuMs = (ticks * 1000) / hz;
    }
    const report = readJson<PubReport>(join(dir, file));
    cases.set(name, brokerCpuMs === undefined ? { report } : { report, brokerCpuMs });
  }
  return cases;
}

function throughputSection(dir: string, files: string[]): string[] {
  const cases = loadPubCases(dir, files);
  if (cases.size === 0) return [];
  const keys = [...new Set([...cases.keys()].map((name) => /^(?:tput|lat)-(q\d-\d+x\d+)-/.exec(name)?.[1] as string))].sort(
    (a, b) => a.localeCompare(b, 'en', { numeric: true }),
  );
  const lines = [
    '### Cross-node throughput and latency: publishers on replicant r1, subscribers on core c1',
    '',
    'Against the same load on a standalone node (no cluster) running at the same time. Broker CPU = user + system',
    'of the broker processes during the max-rate run per delivered message (standalone: one process; cross-node:',
    'r1 + c1 + c2). Latency: end-to-end at the fixed total rate. Publishers start --publish-delay after the last',
    'SUBACK (see the route window below).',
    '',
    '| QoS | pubs → subs | standalone msg/s | cross-node msg/s | cross / standalone | broker CPU µs/msg standalone / cross | standalone p50 / p99 ms | cross-node p50 / p99 ms | missing standalone / cross |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const key of keys) {
    const [qos, topology] = key.split('-') as [string, string];
    const get = (mode: string, target: string): PubCase | undefined => cases.get(`${mode}-${key}-${target}`);
    const rate = (target: string): number | undefined => get('tput', target)?.report.receive?.ratePerSec;
    const cpu = (target: string): string => {
      const c = get('tput', target);
      const received = c?.report.receive?.received ?? 0;
      return c?.brokerCpuMs !== undefined && received > 0 ? ((c.brokerCpuMs * 1000) / received).toFixed(1) : '–';
    };
    const latency = (target: string): string => {
      const l = get('lat', target)?.report.receive?.latencyMs;
      return l ? `${l.p50.toFixed(2)} / ${l.p99.toFixed(2)}` : '–';
    };
    const missing = TARGETS.map((t) => ['tput', 'lat'].map((m) => get(m, t)?.report.receive?.missing ?? 0).reduce((a, b) => a + b, 0)).join(' / ');
    const [solo, cross] = [rate('solo'), rate('cross')];
    const ratio = solo && cross ? `${(cross / solo).toFixed(2)}×` : '–';
    lines.push(`| ${qos.slice(1)} | ${topology.replace('x', ' → ')} | ${ms(solo)} | ${ms(cross)} | ${ratio} | ${cpu('solo')} / ${cpu('cross')} | ` +
      `${latency('solo')} | ${latency('cross')} | ${missing} |`);
  }
  return [...lines, '', ...routeWindowLines(dir, files), ''];
}

/** Runs with no publish delay: messages published on r1 before the subscriber's route reached it. */
function routeWindowLines(dir: string, files: string[]): string[] {
  const runs = files.filter((file) => /^lat-q1-1x1-cross-nodelay-\d+\.json$/.test(file)).map((file) => readJson<PubReport>(join(dir, file)));
  if (runs.length === 0) return [];
  const described = runs.map((r) => `${r.receive?.missing ?? 0} of ${r.receive?.expected ?? 0}`).join(', ');
  return [
    `Route window: QoS 1, 1 → 1, ${runs[0]?.settings.rate ?? '?'} msg/s published on r1 from the moment the subscriber on c1 had its SUBACK ` +
      `(no publish delay), messages that reached nobody: ${described}. These are the messages published before the ` +
      'subscriber\'s route arrived on r1; all were PUBACKed, correctly for a node that has no matching route.',
  ];
}

function memoryOf(path: string): Map<string, { rssKiB: number; heapBytes: number }> {
  const nodes = new Map<string, { rssKiB: number; heapBytes: number }>();
  if (!existsSync(path)) return nodes;
  for (const line of readFileSync(path, 'utf8').trim().split('\n')) {
    const [name, rss, heap] = line.split(/\s+/);
    if (name) nodes.set(name, { rssKiB: Number(rss), heapBytes: Number(heap) });
  }
  return nodes;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function bootstrapSection(dir: string): string[] {
  const seedFile = join(dir, 'boot-seed-watch.json');
  const r2File = join(dir, 'boot-r2-watch.json');
  if (!existsSync(seedFile) || !existsSync(r2File)) return [];
  const seed = readJson<WatchResult>(seedFile);
  const r2 = readJson<WatchResult>(r2File);
  const bench = readJson<SubReport>(join(dir, 'boot-bench.json'));
  const routes = Object.values(seed.expect).reduce((a, b) => a + b, 0);
  const per100k = 100_000 / routes;
  const before = memoryOf(join(dir, 'memory-before.txt'));
  const after = memoryOf(join(dir, 'memory-after.txt'));
  const lines = [
    `### Route memory and bootstrap: ${routes} routes (${bench.settings.count} clients × ${bench.settings.topics.length} filters on c1)`,
    '',
    `Subscribing took ${ms(seed.subscribedMs)} ms; the last route was visible on every node ${ms(seed.allVisibleMs)} ms after the bench started ` +
      `(${ms((seed.allVisibleMs ?? 0) - (seed.subscribedMs ?? 0))} ms after the last SUBACK).`,
    '',
    '| node | holds | RSS delta | RSS per 100k routes | V8 heap delta | heap per 100k routes |',
    '|---|---|---|---|---|---|',
  ];
  for (const [name, a] of after) {
    const b = before.get(name);
    if (!b) continue;
    const rss = (a.rssKiB - b.rssKiB) * 1024;
    const heap = a.heapBytes - b.heapBytes;
    const holds = name === 'c1' ? `${bench.settings.count} connections + their subscriptions + the routes` : 'the routes (remote lane) only';
    lines.push(`| ${name} | ${holds} | ${mib(rss)} | ${mib(rss * per100k)} | ${mib(heap)} | ${mib(heap * per100k)} |`);
  }
  const log = r2.log ?? {};
  const full = r2.allVisibleMs;
  const fromPeer = full !== undefined && log.firstPeerConnectedMs !== undefined ? full - log.firstPeerConnectedMs : undefined;
  const met = fromPeer !== undefined && fromPeer <= BOOTSTRAP_TARGET_MS ? 'met' : '**missed**';
  const r2Memory = memoryOf(join(dir, 'memory-r2.txt')).get('r2');
  lines.push(
    '',
    `New replicant r2 (times from its process start, poll period ${ms(r2.poll.periodMs.mean)} ms mean / ${ms(r2.poll.periodMs.max)} ms max):`,
    '',
    '| node ready | first cluster peer connected | upstream core chosen | all routes in its table | **bootstrap (peer connected → full table)** | target ≤ 2 s |',
    '|---|---|---|---|---|---|',
    `| ${ms(log.nodeReadyMs)} ms | ${ms(log.firstPeerConnectedMs)} ms | ${ms(log.upstreamChosenMs)} ms | ${ms(full)} ms | **${ms(fromPeer)} ms** | ${met} |`,
    '',
  );
  if (r2Memory) lines.push(`r2 after the bootstrap: RSS ${mib(r2Memory.rssKiB * 1024)}, V8 heap ${mib(r2Memory.heapBytes)}.`, '');
  const micro = join(dir, 'routesync-bench.txt');
  if (existsSync(micro)) {
    lines.push('Pure data-structure figures (`node --expose-gc dist/broker/src/routesync/bench.js`, same machine, same time):', '', '```');
    lines.push(...readFileSync(micro, 'utf8').trim().split('\n'), '```', '');
  }
  return lines;
}

function main(): void {
  const dir = process.argv[2];
  if (dir === undefined) throw new Error('usage: cluster-summarize <results-dir>');
  const files = readdirSync(dir).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const notes = existsSync(join(dir, 'notes.txt')) ? readFileSync(join(dir, 'notes.txt'), 'utf8').trim().split('\n') : [];
  const out = [
    ...notes.map((line) => `- ${line}`),
    '',
    ...seedSection(dir, files),
    ...throughputSection(dir, files),
    ...bootstrapSection(dir),
  ];
  process.stdout.write(out.join('\n') + '\n');
}

main();
