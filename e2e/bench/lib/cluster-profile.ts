/**
 * Where a cluster node's CPU went during a benchmark phase, by job rather than by function: each busy sample of a
 * V8 .cpuprofile goes to the first job (in the order below) that has a frame anywhere on its stack, so a socket
 * write made by the route sync counts as route sync, not as "node internals".
 * Usage: node dist/e2e/bench/lib/cluster-profile.js <file.cpuprofile>...
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Checked in this order; the first that matches a frame of the sample's stack gets the sample. */
const JOBS: { job: string; matches: (url: string, fn: string) => boolean }[] = [
  { job: 'the profiler itself (in-process inspector session)', matches: (url) => url === 'node:inspector' },
  { job: 'admin API (the benchmark polling /api/v1/cluster)', matches: (url) => url.includes('/broker/src/admin/') || url.includes('node:_http_') },
  { job: 'client identity: takeover claims + cluster rpc', matches: (url) => /\/broker\/src\/cluster\/(takeover|rpc|session-codec)\.js/.test(url) },
  { job: 'route sync + route table', matches: (url) => /\/broker\/src\/(routesync|routing)\//.test(url) || /\/broker\/src\/cluster\/(route-sync-driver|local-routes)\.js/.test(url) },
  { job: 'cluster transport (framing, acks, heartbeats)', matches: (url) => url.includes('/broker/src/cluster/transport/') },
  { job: 'other cluster code', matches: (url) => url.includes('/broker/src/cluster/') },
  { job: 'MQTT: connect', matches: (url) => url.includes('aedes/lib/handlers/connect.js') },
  { job: 'MQTT: subscribe / unsubscribe', matches: (url) => /aedes\/lib\/handlers\/(subscribe|unsubscribe)\.js/.test(url) },
  { job: 'MQTT: other (parsing, writing, close)', matches: (url) => /\/(aedes|mqtt-packet|mqemitter|bl|qlobber)\//.test(url) || url.includes('/broker/src/mqtt/') },
  {
    job: 'MQTT: socket accept and teardown (node:net, stream pipeline)',
    matches: (url, fn) => fn === 'onconnection' || url.includes('internal/streams/pipeline') || url.includes('internal/streams/end-of-stream'),
  },
  { job: 'store', matches: (url) => url.includes('/broker/src/store/') || url.includes('/lmdb/') },
  { job: 'garbage collector', matches: (_url, fn) => fn === '(garbage collector)' },
];
const OTHER = 'other (runtime, timers, unattributed native)';

function load(path: string): CpuProfile {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  } catch (error) {
    throw new Error(`cannot read CPU profile ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** Busy microseconds per job; idle samples are left out. */
function jobTimes(profile: CpuProfile): { busyUs: number; totalUs: number; byJob: Map<string, number> } {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const jobOfNode = new Map<number, string>();
  const jobOf = (id: number): string => {
    const cached = jobOfNode.get(id);
    if (cached !== undefined) return cached;
    const stack: ProfileNode[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) {
      const node = byId.get(at);
      if (node) stack.push(node);
    }
    const job = JOBS.find(({ matches }) => stack.some((n) => matches(n.callFrame.url, n.callFrame.functionName)))?.job ?? OTHER;
    jobOfNode.set(id, job);
    return job;
  };
  const byJob = new Map<string, number>();
  let busyUs = 0;
  let totalUs = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    totalUs += us;
    const name = byId.get(id)?.callFrame.functionName;
    if (name === '(idle)' || name === '(program)') return;
    busyUs += us;
    const job = jobOf(id);
    byJob.set(job, (byJob.get(job) ?? 0) + us);
  });
  return { busyUs, totalUs, byJob };
}

function main(): void {
  const files = process.argv.slice(2);
  if (files.length === 0) throw new Error('usage: cluster-profile <file.cpuprofile>...');
  const results = files.map((file) => ({ name: basename(file, '.cpuprofile'), ...jobTimes(load(file)) }));
  const jobs = [...JOBS.map((j) => j.job), OTHER];
  const ms = (us: number): string => (us / 1000).toFixed(0);
  const lines = [
    `| job | ${results.map((r) => `${r.name} ms (% of busy)`).join(' | ')} |`,
    `|---|${results.map(() => '---').join('|')}|`,
    ...jobs.map((job) => `| ${job} | ${results.map((r) => {
      const us = r.byJob.get(job) ?? 0;
      return `${ms(us)} (${((us / (r.busyUs || 1)) * 100).toFixed(0)}%)`;
    }).join(' | ')} |`),
    `| **busy** (of profiled) | ${results.map((r) => `**${ms(r.busyUs)}** (of ${ms(r.totalUs)})`).join(' | ')} |`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

main();
