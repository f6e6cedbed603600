/**
 * Summarizes the JSON reports written by e2e/bench/single-node.sh into a Markdown table comparing Meridian with
 * mosquitto. Usage: node dist/e2e/bench/lib/summarize.js <results-dir>
 * Report files are named <mode>-q<qos>-<publishers>x<subscribers>-<broker>.json, mode `tput` (max rate) or `lat`
 * (fixed rate).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PubReport } from '../../../broker/src/bench/report.js';

const BROKERS = ['meridian', 'mosquitto'] as const;
type Broker = (typeof BROKERS)[number];
const TARGET_THROUGHPUT_RATIO = 1.0;
const TARGET_P99_RATIO = 2.0;

interface CaseKey {
  qos: number;
  topology: string;
}

interface CaseResult {
  report: PubReport;
  /** Broker CPU (user + system) during the run, in milliseconds, when the script recorded it. */
  brokerCpuMs?: number;
}

function loadReports(dir: string): Map<string, CaseResult> {
  const results = new Map<string, CaseResult>();
  for (const file of readdirSync(dir)) {
    if (!/^(tput|lat)-q\d-\d+x\d+-(meridian|mosquitto)\.json$/.test(file)) continue;
    const name = file.replace(/\.json$/, '');
    const text = readFileSync(join(dir, file), 'utf8');
    let report: PubReport;
    try {
      report = JSON.parse(text) as PubReport;
    } catch (error) {
      throw new Error(`${join(dir, file)} is not a bench JSON report: ${error instanceof Error ? error.message : String(error)}`);
    }
    const brokerCpuMs = readBrokerCpuMs(join(dir, `${name}.cpu`));
    results.set(name, brokerCpuMs === undefined ? { report } : { report, brokerCpuMs });
  }
  return results;
}

/** `<ticks> <ticks per second>` as written by single-node.sh. */
function readBrokerCpuMs(path: string): number | undefined {
  if (!existsSync(path)) return undefined;
  const [ticks, hz] = readFileSync(path, 'utf8').trim().split(/\s+/).map(Number);
  return ticks !== undefined && hz !== undefined && hz > 0 ? (ticks * 1000) / hz : undefined;
}

function casesOf(reports: Map<string, CaseResult>): CaseKey[] {
  const keys = new Map<string, CaseKey>();
  for (const name of reports.keys()) {
    const match = /^(?:tput|lat)-q(\d)-(\d+x\d+)-/.exec(name);
    if (match) keys.set(`${match[1]}-${match[2]}`, { qos: Number(match[1]), topology: match[2] as string });
  }
  return [...keys.values()].sort((a, b) => a.qos - b.qos || parseInt(a.topology) - parseInt(b.topology));
}

function fixed(value: number | undefined, digits: number): string {
  return value === undefined || !Number.isFinite(value) ? 'n/a' : value.toFixed(digits);
}

function ratio(numerator: number | undefined, denominator: number | undefined): number | undefined {
  return numerator !== undefined && denominator !== undefined && denominator > 0 ? numerator / denominator : undefined;
}

function row(results: Map<string, CaseResult>, key: CaseKey): { line: string; met: boolean } {
  const result = (mode: string, broker: Broker): CaseResult | undefined => results.get(`${mode}-q${key.qos}-${key.topology}-${broker}`);
  const get = (mode: string, broker: Broker): PubReport | undefined => result(mode, broker)?.report;
  const cpuPerMessageUs = (broker: Broker): number | undefined => {
    const r = result('tput', broker);
    const received = r?.report.receive?.received;
    return r?.brokerCpuMs !== undefined && received ? (r.brokerCpuMs * 1000) / received : undefined;
  };
  const clientCpu = (broker: Broker): number | undefined => get('tput', broker)?.clientCpu?.percentOfOneCore;
  const throughput = (broker: Broker): number | undefined => get('tput', broker)?.receive?.ratePerSec;
  const missing = (broker: Broker): number => get('tput', broker)?.receive?.missing ?? 0;
  const latency = (broker: Broker): { p50?: number; p99?: number } => {
    const d = get('lat', broker)?.receive?.latencyMs;
    return d ? { p50: d.p50, p99: d.p99 } : {};
  };
  const [m, q] = [latency('meridian'), latency('mosquitto')];
  const tputRatio = ratio(throughput('meridian'), throughput('mosquitto'));
  const p99Ratio = ratio(m.p99, q.p99);
  const met = tputRatio !== undefined && p99Ratio !== undefined && tputRatio >= TARGET_THROUGHPUT_RATIO && p99Ratio <= TARGET_P99_RATIO;
  const lossNote = (broker: Broker): string => (missing(broker) > 0 ? ` (${missing(broker)} missing)` : '');
  const cells = [
    `QoS ${key.qos}`,
    key.topology.replace('x', ' → '),
    fixed(throughput('meridian'), 0) + lossNote('meridian'),
    fixed(throughput('mosquitto'), 0) + lossNote('mosquitto'),
    fixed(tputRatio, 2) + '×',
    `${fixed(cpuPerMessageUs('meridian'), 1)} / ${fixed(cpuPerMessageUs('mosquitto'), 1)}`,
    `${fixed(clientCpu('meridian'), 0)}% / ${fixed(clientCpu('mosquitto'), 0)}%`,
    `${fixed(m.p50, 2)} / ${fixed(m.p99, 2)}`,
    `${fixed(q.p50, 2)} / ${fixed(q.p99, 2)}`,
    fixed(p99Ratio, 2) + '×',
    met ? 'met' : 'MISSED',
  ];
  return { line: `| ${cells.join(' | ')} |`, met };
}

function main(dir: string | undefined): number {
  if (!dir) {
    process.stderr.write('usage: node dist/e2e/bench/lib/summarize.js <results-dir>\n');
    return 2;
  }
  const reports = loadReports(dir);
  const cases = casesOf(reports);
  if (cases.length === 0) {
    process.stderr.write(`no bench reports in ${dir}\n`);
    return 1;
  }
  const lines = [
    '| QoS | pubs → subs | Meridian msg/s | mosquitto msg/s | throughput M/m | broker CPU µs/msg M / m | bench client CPU M / m | Meridian p50 / p99 ms | mosquitto p50 / p99 ms | p99 M/m | target |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  let allMet = true;
  for (const key of cases) {
    const { line, met } = row(reports, key);
    lines.push(line);
    allMet &&= met;
  }
  process.stdout.write(lines.join('\n') + '\n');
  process.stdout.write(`\nTarget (throughput ≥ ${TARGET_THROUGHPUT_RATIO}× mosquitto, p99 ≤ ${TARGET_P99_RATIO}× mosquitto): ${allMet ? 'met in every case' : 'MISSED in at least one case'}\n`);
  return 0;
}

process.exitCode = main(process.argv[2]);
