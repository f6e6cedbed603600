/**
 * Prints the functions with the most self time in a V8 .cpuprofile (written by `node --cpu-prof`), grouped by
 * function, file and line, so a benchmark run can say where a broker's time goes.
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

interface FunctionTime {
  name: string;
  location: string;
  selfMs: number;
  share: number;
}

function topSelfTime(profile: CpuProfile, limit: number): FunctionTime[] {
  const byNode = new Map<number, ProfileNode>(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<string, { name: string; location: string; us: number }>();
  let totalUs = 0;
  profile.samples.forEach((nodeId, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    const frame = byNode.get(nodeId)?.callFrame;
    if (!frame) return;
    const name = frame.functionName || '(anonymous)';
    const location = frame.url ? `${shortUrl(frame.url)}:${frame.lineNumber + 1}` : '';
    const key = `${name}@${location}`;
    const entry = selfUs.get(key) ?? { name, location, us: 0 };
    entry.us += delta;
    selfUs.set(key, entry);
    totalUs += delta;
  });
  return [...selfUs.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, limit)
    .map((e) => ({ name: e.name, location: e.location, selfMs: e.us / 1000, share: totalUs > 0 ? e.us / totalUs : 0 }));
}

function shortUrl(url: string): string {
  const path = url.replace(/^file:\/\//, '');
  const modules = path.lastIndexOf('node_modules/');
  if (modules >= 0) return path.slice(modules + 'node_modules/'.length);
  const dist = path.indexOf('/dist/');
  return dist >= 0 ? path.slice(dist + 1) : path;
}

function main(file: string | undefined, limitText: string | undefined): number {
  if (!file) {
    process.stderr.write('usage: node dist/e2e/bench/lib/cpuprofile-top.js <file.cpuprofile> [top-n]\n');
    return 2;
  }
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const rows = topSelfTime(profile, Number(limitText ?? 25));
  process.stdout.write('| self % | self ms | function | location |\n|---|---|---|---|\n');
  for (const r of rows) process.stdout.write(`| ${(r.share * 100).toFixed(1)} | ${r.selfMs.toFixed(0)} | ${r.name} | ${r.location} |\n`);
  return 0;
}

process.exitCode = main(process.argv[2], process.argv[3]);
