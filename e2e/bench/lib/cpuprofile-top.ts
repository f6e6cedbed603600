/**
 * Where a process's CPU time went, from a V8 .cpuprofile (written by `node --cpu-prof`): self time per function
 * and per package, as shares of the busy (non-idle) time, so a benchmark can say what to optimize.
 * Usage: node dist/e2e/bench/lib/cpuprofile-top.js <file.cpuprofile> [top-n]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

interface Bucket {
  label: string;
  us: number;
}

/** Sums self time (µs) per key over all samples; `(idle)` samples are returned separately. */
function selfTimes(profile: CpuProfile, keyOf: (frame: ProfileNode['callFrame']) => string): { buckets: Bucket[]; idleUs: number } {
  const byNode = new Map<number, ProfileNode>(profile.nodes.map((node) => [node.id, node]));
  const totals = new Map<string, number>();
  let idleUs = 0;
  profile.samples.forEach((nodeId, i) => {
    const frame = byNode.get(nodeId)?.callFrame;
    const delta = profile.timeDeltas[i] ?? 0;
    if (!frame) return;
    if (frame.functionName === '(idle)') {
      idleUs += delta;
      return;
    }
    const key = keyOf(frame);
    totals.set(key, (totals.get(key) ?? 0) + delta);
  });
  const buckets = [...totals.entries()].map(([label, us]) => ({ label, us })).sort((a, b) => b.us - a.us);
  return { buckets, idleUs };
}

function functionKey(frame: ProfileNode['callFrame']): string {
  const name = frame.functionName || '(anonymous)';
  return frame.url ? `${name} — ${shortUrl(frame.url)}:${frame.lineNumber + 1}` : name;
}

/** npm package, Meridian's own code, Node internals, or a V8 pseudo-frame such as (garbage collector). */
function packageKey(frame: ProfileNode['callFrame']): string {
  const url = frame.url.replace(/^file:\/\//, '');
  if (url === '') return frame.functionName.startsWith('(') ? frame.functionName : 'native / syscalls';
  const modules = url.lastIndexOf('node_modules/');
  if (modules >= 0) {
    const parts = url.slice(modules + 'node_modules/'.length).split('/');
    return parts[0]?.startsWith('@') ? `${parts[0]}/${parts[1]}` : (parts[0] ?? url);
  }
  if (url.startsWith('node:')) return 'node internals';
  const dist = url.indexOf('/dist/');
  return dist >= 0 ? `meridian ${url.slice(dist + '/dist/'.length).split('/').slice(0, 3).join('/')}` : url;
}

function shortUrl(url: string): string {
  const path = url.replace(/^file:\/\//, '');
  const modules = path.lastIndexOf('node_modules/');
  if (modules >= 0) return path.slice(modules + 'node_modules/'.length);
  const dist = path.indexOf('/dist/');
  return dist >= 0 ? path.slice(dist + 1) : path;
}

function table(title: string, buckets: Bucket[], busyUs: number, limit: number): string {
  const rows = buckets.slice(0, limit).map((b) => `| ${((b.us / busyUs) * 100).toFixed(1)} | ${(b.us / 1000).toFixed(0)} | ${b.label} |`);
  return [`| % of busy | self ms | ${title} |`, '|---|---|---|', ...rows].join('\n') + '\n';
}

function main(file: string | undefined, limitText: string | undefined): number {
  if (!file) {
    process.stderr.write('usage: node dist/e2e/bench/lib/cpuprofile-top.js <file.cpuprofile> [top-n]\n');
    return 2;
  }
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const limit = Number(limitText ?? 25);
  const functions = selfTimes(profile, functionKey);
  const packages = selfTimes(profile, packageKey);
  const busyUs = functions.buckets.reduce((sum, b) => sum + b.us, 0);
  const totalMs = (busyUs + functions.idleUs) / 1000;
  process.stdout.write(`busy ${(busyUs / 1000).toFixed(0)} ms of ${totalMs.toFixed(0)} ms profiled (${((busyUs / 1000 / totalMs) * 100).toFixed(0)}%)\n\n`);
  process.stdout.write(table('package', packages.buckets, busyUs, 15) + '\n');
  process.stdout.write(table('function — location', functions.buckets, busyUs, limit));
  return 0;
}

process.exitCode = main(process.argv[2], process.argv[3]);
