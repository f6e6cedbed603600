/**
 * Issue 6, end to end: the access-control workload over three linked regions (operator-rendered, 2 cores + 1
 * replicant + a link agent each, delay proxies between them), then the fault drills one after another in the same
 * mesh, each with a fresh stream, each asserting exactly-once and per-door order at both audit services.
 * Environment: MERIDIAN_E2E_SOAK_SECONDS (longer streams), MERIDIAN_E2E_DRILLS (a subset),
 * MERIDIAN_E2E_EVENT_INTERVAL_MS (default here 4000: half the rate, so the 2-core machine drains in time),
 * MERIDIAN_E2E_DIR (keep the mesh's data dirs and logs there).
 */
import type { Mesh } from '../harness/mesh.js';
import { DEFAULT_TIMING, DRILLS, startMesh, baselineProblems, exactlyOnceProblems, meridianTarget, runBaseline, runDrill, warmUp, type DrillContext, type DrillOutcome } from '../scenario/drills.js';
import { drillsFromEnv, envNumber, timingFromEnv } from '../scenario/env.js';
import { drillTable } from '../scenario/report.js';
import { Workload } from '../scenario/workload.js';

const timing = timingFromEnv({ ...DEFAULT_TIMING, drainTimeoutMs: 30000 });

/**
 * Drills that still fail on an open broker defect (figures and causes in e2e/scenario/README.md "Known failures" and
 * e2e/bench/RESULTS.md). They are not run by default here — `make test` must pass — but run whenever named in
 * MERIDIAN_E2E_DRILLS (e.g. `MERIDIAN_E2E_DRILLS=lost-volume`), and always by `make e2e`, which reports them as FAIL.
 * They assert the same as every other drill; remove an entry once its drill passes. us-west-down and audit-offline
 * left this list at 03:42 (db003ee: linked messages carry a publish identity; the audit client keeps its QoS 2
 * session state across connections), lost-volume at 04:51 (4c6aa3a: held copies keep their arrival order; the remote
 * announces the store epoch it knew, so the agent always reports its own new store).
 */
const OPEN_DEFECTS: Record<string, string> = {};
const explicitlySelected = new Set((process.env.MERIDIAN_E2E_DRILLS ?? '').split(',').map((id) => id.trim()));
const selected = new Set(drillsFromEnv().map((d) => d.id));
const lines: string[] = [];
const log = (line: string): void => { lines.push(`[${new Date().toISOString().slice(11, 19)}] ${line}`); };

describe('three regions end to end: access-control scenario and fault drills', () => {
  let mesh: Mesh | undefined;
  let workload: Workload | undefined;
  let ctx: DrillContext;
  const outcomes: DrillOutcome[] = [];
  const problems: Record<string, string[]> = {};

  beforeAll(async () => {
    mesh = await startMesh({ dir: process.env.MERIDIAN_E2E_DIR || undefined }, log);
    workload = await Workload.start(meridianTarget(mesh), { eventIntervalMs: envNumber('MERIDIAN_E2E_EVENT_INTERVAL_MS', 4000), log });
    await warmUp(workload, log);
    ctx = { mesh, workload, timing, log };
  }, 240000);

  afterAll(async () => {
    await workload?.stop();
    await mesh?.stop();
    if (outcomes.length > 0) lines.push(drillTable(outcomes, problems));
    // One block at the end: the drill log and the summary table, for the test output.
    console.log(lines.join('\n'));
  }, 60000);

  test('baseline: every event once and in per-door order at the audit services; EMEA gets every denial with p99 < 500 ms; links carry only what was asked for', async () => {
    const outcome = await runBaseline(ctx);
    outcomes.push(outcome);
    problems.baseline = [...exactlyOnceProblems(outcome), ...baselineProblems(outcome)];
    expect(problems.baseline).toEqual([]);
  }, timing.baselineSeconds * 1000 + timing.drainTimeoutMs + 60000);

  for (const drill of DRILLS) {
    const openDefect = OPEN_DEFECTS[drill.id] !== undefined && !explicitlySelected.has(drill.id);
    const run = !selected.has(drill.id) || openDefect ? test.skip : test;
    const note = openDefect ? ` [open defect, run with MERIDIAN_E2E_DRILLS=${drill.id}: ${OPEN_DEFECTS[drill.id]}]` : '';
    run(`${drill.id}: ${drill.description} → audit services get every event once, in per-door order${note}`, async () => {
      const outcome = await runDrill(ctx, drill);
      outcomes.push(outcome);
      problems[drill.id] = [...exactlyOnceProblems(outcome), ...outcome.problems];
      expect(problems[drill.id]).toEqual([]);
    }, 60000 + timing.leadMs + timing.tailMs + timing.drainTimeoutMs + 120000);
  }
});
