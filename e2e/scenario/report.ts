import { readFileSync, writeFileSync } from 'node:fs';
import type { ComparisonResult } from './comparison.js';
import { exactlyOnceProblems, type DrillOutcome } from './drills.js';
import type { LatencySummary } from './tally.js';
import type { StreamResult } from './workload.js';

export const SECTION_TITLE = '## Three regions end to end';

export interface E2eReport {
  command: string;
  startedAt: Date;
  loadAverage: string;
  delays: Record<string, number>;
  doors: string;
  outcomes: DrillOutcome[];
  /** Problems per drill id (exactly-once and drill-specific); empty = passed. */
  problems: Record<string, string[]>;
  comparison?: ComparisonResult;
  /** The comparison's Meridian counterpart (the baseline). */
  baseline?: DrillOutcome;
}

const ms = (v: number): string => (Number.isNaN(v) ? '–' : String(Math.round(v)));
const lat = (l: LatencySummary): string => `${ms(l.p50)} / ${ms(l.p99)}`;
const kib = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KiB`;

function auditTotals(stream: StreamResult): { expected: number; delivered: number; lost: number; duplicated: number; outOfOrder: number } {
  const audits = [stream.receivers['acme-audit'], stream.receivers['globex-audit']];
  const sum = (f: (s: (typeof audits)[number]) => number): number => audits.reduce((n, s) => n + f(s), 0);
  return { expected: sum((s) => s.expected), delivered: sum((s) => s.delivered), lost: sum((s) => s.lost), duplicated: sum((s) => s.duplicated), outOfOrder: sum((s) => s.outOfOrder) };
}

/** The per-drill summary table (markdown). */
export function drillTable(outcomes: readonly DrillOutcome[], problems: Record<string, string[]>): string {
  const rows = [
    '| drill | sent | audit delivered / expected | lost | duplicated | out of order | EMEA dashboard p50 / p99 ms | acme audit p50 / p99 ms | link bytes | result |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const o of outcomes) {
    const t = auditTotals(o.stream);
    const verdict = (problems[o.drill] ?? []).length === 0 ? 'pass' : `**FAIL**: ${(problems[o.drill] ?? []).join('; ')}`;
    rows.push(`| ${o.drill} | ${o.stream.sent} | ${t.delivered} / ${t.expected} | ${t.lost} | ${t.duplicated} | ${t.outOfOrder} | ${lat(o.stream.receivers['emea-dashboard'].latency)} | ${lat(o.stream.receivers['acme-audit'].latency)} | ${kib(o.linkBytesTotal)} | ${verdict} |`);
  }
  return rows.join('\n');
}

export function drillProblems(outcome: DrillOutcome, extra: string[] = []): string[] {
  return [...exactlyOnceProblems(outcome), ...outcome.problems, ...extra];
}

function latencyByOrigin(stream: StreamResult, delays: Record<string, number>): string[] {
  const emea = stream.receivers['emea-dashboard'].latencyByRegion;
  const audit = stream.receivers['acme-audit'].latencyByRegion;
  return [
    `| origin → receiver | injected one-way delay | p50 / p99 / max ms |`,
    '|---|---|---|',
    `| us-east → EMEA dashboard | ${delays['us-east|emea']} ms | ${emea['us-east'] ? `${lat(emea['us-east'])} / ${ms(emea['us-east'].max)}` : '–'} |`,
    `| us-west → EMEA dashboard | ${delays['us-west|emea']} ms | ${emea['us-west'] ? `${lat(emea['us-west'])} / ${ms(emea['us-west'].max)}` : '–'} |`,
    `| us-east → acme audit (US-West) | ${delays['us-east|us-west']} ms | ${audit['us-east'] ? `${lat(audit['us-east'])} / ${ms(audit['us-east'].max)}` : '–'} |`,
    `| us-west → acme audit (local) | 0 | ${audit['us-west'] ? `${lat(audit['us-west'])} / ${ms(audit['us-west'].max)}` : '–'} |`,
  ];
}

function comparisonTable(baseline: DrillOutcome, comparison: ComparisonResult, delays: Record<string, number>): string[] {
  const m = baseline.stream;
  const q = comparison.stream;
  const row = (label: string, meridian: string, mosquitto: string): string => `| ${label} | ${meridian} | ${mosquitto} |`;
  const mb = baseline.linkBytes;
  const qb = comparison.linkBytes.byPair;
  const perEvent = (bytes: number, events: number): string => (events > 0 ? `${Math.round(bytes / events)} B` : '–');
  const em = m.receivers['emea-dashboard'].latencyByRegion;
  const eq = q.receivers['emea-dashboard'].latencyByRegion;
  const am = m.receivers['acme-audit'].latencyByRegion;
  const aq = q.receivers['acme-audit'].latencyByRegion;
  const l = (s: LatencySummary | undefined): string => (s ? lat(s) : '–');
  return [
    '| figure | Meridian (3 linked regions) | mosquitto 2.0 (star of bridges via US-East) |',
    '|---|---|---|',
    row('events sent', String(m.sent), String(q.sent)),
    row('bytes on all inter-region proxies', kib(baseline.linkBytesTotal), kib(comparison.linkBytes.total)),
    row('… per event sent', perEvent(baseline.linkBytesTotal, m.sent), perEvent(comparison.linkBytes.total, q.sent)),
    row('us-east ↔ us-west', kib(mb['us-east|us-west'].total), kib(qb['us-east|us-west'] ?? 0)),
    row('us-east ↔ emea', kib(mb['us-east|emea'].total), kib(qb['us-east|emea'] ?? 0)),
    row('us-west ↔ emea', kib(mb['us-west|emea'].total), '0 (no bridge: via US-East)'),
    row(`EMEA dashboard p50 / p99 ms, from us-east (${delays['us-east|emea']} ms)`, l(em['us-east']), l(eq['us-east'])),
    row(`EMEA dashboard p50 / p99 ms, from us-west (${delays['us-west|emea']} ms; mosquitto ${delays['us-east|us-west'] + delays['us-east|emea']} ms via hub)`, l(em['us-west']), l(eq['us-west'])),
    row(`acme audit p50 / p99 ms, from us-east (${delays['us-east|us-west']} ms)`, l(am['us-east']), l(aq['us-east'])),
    row('audit lost / duplicated', `${auditTotals(m).lost} / ${auditTotals(m).duplicated}`, `${auditTotals(q).lost} / ${auditTotals(q).duplicated}`),
  ];
}

/** The whole RESULTS.md section. */
export function renderSection(report: E2eReport): string {
  const lines = [
    `${SECTION_TITLE} (\`make e2e\`, details in [../scenario/README.md](../scenario/README.md))`,
    '',
    `Command: \`${report.command}\`, run ${report.startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC, load average before ${report.loadAverage}.`,
    `Three regions (each 2 cores + 1 replicant + a link-agent sidecar, rendered by the operator from e2e/manifests), full mesh through delay proxies`,
    `(one-way ${Object.entries(report.delays).map(([k, v]) => `${k} ${v} ms`).join(', ')}). Workload: ${report.doors}, QoS 2, persistent sessions;`,
    'acme audit and globex audit (persistent sessions) in US-West, acme officer dashboard (denied + intrusion) in EMEA. Drills run one after',
    'another in one mesh, each with its own stream; "audit" counts both audit services; link bytes are both directions of all three pairs.',
    '',
    drillTable(report.outcomes, report.problems),
  ];
  if (report.baseline) {
    lines.push('', 'Baseline latency against the injected delay (p99 target < 500 ms at the EMEA dashboard):', '', ...latencyByOrigin(report.baseline.stream, report.delays));
    lines.push('', 'Baseline link forwarding (messages per link; each must equal what the remote subscribers asked for):', '',
      `| link | ${Object.keys(report.baseline.forwarded).join(' | ')} |`, `|---|${Object.keys(report.baseline.forwarded).map(() => '---').join('|')}|`,
      `| forwarded | ${Object.values(report.baseline.forwarded).join(' | ')} |`);
  }
  if (report.baseline && report.comparison) {
    lines.push('', 'Same workload over three mosquitto 2.0 brokers (`topic # both 2`, star around US-East: a full mesh of `both` bridges loops),',
      'through the same delay proxies, baseline only:', '', ...comparisonTable(report.baseline, report.comparison, report.delays));
  }
  const observations = report.outcomes.flatMap((o) => o.observations.map((x) => `- ${o.drill}: ${x}`));
  if (observations.length > 0) lines.push('', 'Observed during the drills:', '', ...observations);
  return `${lines.join('\n')}\n`;
}

/** Replaces the section in RESULTS.md (or appends it), leaving every other section as it is. */
export function writeSection(file: string, section: string): void {
  const text = readFileSync(file, 'utf8');
  const start = text.indexOf(`\n${SECTION_TITLE}`);
  if (start < 0) {
    writeFileSync(file, `${text.trimEnd()}\n\n${section}`);
    return;
  }
  const next = text.indexOf('\n## ', start + 1);
  const after = next < 0 ? '' : text.slice(next);
  writeFileSync(file, `${text.slice(0, start + 1)}${section}${after}`);
}
