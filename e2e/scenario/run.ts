/**
 * `make e2e`: the three-region scenario, the fault drills and the mosquitto comparison; prints the summary table and
 * writes it into e2e/bench/RESULTS.md. Environment (all optional):
 *   MERIDIAN_E2E_BASELINE_SECONDS  fault-free stream length (default 60)
 *   MERIDIAN_E2E_SOAK_SECONDS      soak: the baseline runs this long and every drill streams 4× longer around its fault
 *   MERIDIAN_E2E_DRILLS            comma-separated drill ids (default all; '' or 'none' for the baseline only)
 *   MERIDIAN_E2E_MOSQUITTO=0       skip the mosquitto comparison
 *   MERIDIAN_E2E_WRITE=0           do not write RESULTS.md
 *   MERIDIAN_E2E_EVENT_INTERVAL_MS mean interval between two events of one door (default 2000)
 *   MERIDIAN_E2E_DIR               the mesh's work dir (data, logs), kept after the run
 *   MERIDIAN_E2E_COMMAND           the command named in the report (default 'make e2e')
 */
import { loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_DELAYS } from '../harness/mesh.js';
import { SCENARIO_DELAYS, runMosquittoComparison } from './comparison.js';
import { DEFAULT_TIMING, startMesh, baselineProblems, meridianTarget, runBaseline, runDrill, warmUp, type DrillContext, type DrillOutcome } from './drills.js';
import { drillProblems, drillTable, renderSection, writeSection, type E2eReport } from './report.js';
import { Workload, type WorkloadOptions } from './workload.js';
import { drillsFromEnv, envNumber, timingFromEnv } from './env.js';

function log(line: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

async function main(): Promise<number> {
  const timing = timingFromEnv({ ...DEFAULT_TIMING, baselineSeconds: 60, drainTimeoutMs: 180000 });
  const drills = drillsFromEnv();
  const workloadOptions: WorkloadOptions = { eventIntervalMs: envNumber('MERIDIAN_E2E_EVENT_INTERVAL_MS', 2000), log };
  const startedAt = new Date();
  const loadAverage = loadavg().map((l) => l.toFixed(1)).join(' ');
  const outcomes: DrillOutcome[] = [];
  const problems: Record<string, string[]> = {};
  let baseline: DrillOutcome | undefined;

  const mesh = await startMesh({ dir: process.env.MERIDIAN_E2E_DIR || undefined }, log);
  try {
    const workload = await Workload.start(meridianTarget(mesh), workloadOptions);
    try {
      await warmUp(workload, log);
      const ctx: DrillContext = { mesh, workload, timing, log };
      baseline = await runBaseline(ctx);
      outcomes.push(baseline);
      problems.baseline = drillProblems(baseline, baselineProblems(baseline));
      for (const drill of drills) {
        const outcome = await runDrill(ctx, drill);
        outcomes.push(outcome);
        problems[drill.id] = drillProblems(outcome);
      }
    } finally {
      await workload.stop();
    }
  } finally {
    await mesh.stop();
  }

  const comparison = process.env.MERIDIAN_E2E_MOSQUITTO === '0' ? undefined : await runMosquittoComparison(timing.baselineSeconds, workloadOptions);
  const report: E2eReport = {
    command: process.env.MERIDIAN_E2E_COMMAND ?? 'make e2e',
    startedAt,
    loadAverage,
    delays: Object.fromEntries(Object.entries(DEFAULT_DELAYS).map(([k, v]) => [k, v.delayMs])),
    doors: 'acme 200 door controllers in US-East + 100 in US-West, globex 50 + 50, one event per door every '
      + `${(workloadOptions.eventIntervalMs ?? 2000) / 1000} s on average (baseline ${timing.baselineSeconds} s)`,
    outcomes,
    problems,
    comparison,
    baseline,
  };
  void SCENARIO_DELAYS;
  process.stdout.write(`\n${drillTable(outcomes, problems)}\n\n`);
  const section = renderSection(report);
  if (process.env.MERIDIAN_E2E_WRITE !== '0') {
    const results = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../e2e/bench/RESULTS.md');
    writeSection(results, section);
    log(`written to ${results}`);
  }
  process.stdout.write(section);
  const failed = Object.entries(problems).filter(([, list]) => list.length > 0);
  for (const [drill, list] of failed) log(`FAILED ${drill}: ${list.join('; ')}`);
  return failed.length === 0 ? 0 : 1;
}

main().then((code) => process.exit(code), (err: unknown) => {
  log(`e2e run failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  process.exit(2);
});
