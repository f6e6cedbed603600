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
 * Drills that expose broker bugs, marked `test.failing` (they pass while the bug is there; remove the entry when it
 * is fixed). Details and counts in e2e/scenario/README.md ("Known failures").
 */
const KNOWN_FAILURES: Record<string, string> = {
  // Every run so far: US-West events out of per-door order at the audits across the whole-region restart (130–380),
  // and the EMEA dashboard loses ~80–140 US-West events published before the agent's link routes were back (the
  // replicant starts before the agent). Before commit 5b97ae8 (02:32, node shutdown no longer waits for open
  // connections) also US-East events were lost: while the stopping agent shut down, its failed copies to the
  // replicant were treated as delivered in LinkSidecar.send ("message not handed over: the node is gone") and the
  // carriers acknowledged to US-East (42–85 lost per run), plus ~100 duplicates of US-West events.
  'us-west-down': 'per-door order broken across the region restart (and, before 5b97ae8, US-East events lost)',
  // The acme audit's persistent session, resumed on the US-West replicant, gets its offline queue interleaved with
  // live messages: 700–4 100 first deliveries out of per-door order per run, and 0–3 events lost.
  'audit-offline': 'offline queue of a resumed persistent session delivered interleaved with live messages',
  // The loss is reported on both sides, but it is far larger than the deleted queue: 190–450 events lost at the
  // audits with 7–16 entries queued for US-West at the kill. The region's nodes hand the copies held for the killed
  // agent to its new incarnation ("link agent restarted: forwarded message handed over again", 239 times in one
  // run); with an empty store it has no remote routes until the remotes bootstrap it, and does not queue them.
  'lost-volume': 'copies handed to the wiped agent before the remotes re-sent its routes are not queued',
};
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
    const run = !selected.has(drill.id) ? test.skip : KNOWN_FAILURES[drill.id] ? test.failing : test;
    run(`${drill.id}: ${drill.description} → audit services get every event once, in per-door order`, async () => {
      const outcome = await runDrill(ctx, drill);
      outcomes.push(outcome);
      problems[drill.id] = [...exactlyOnceProblems(outcome), ...outcome.problems];
      expect(problems[drill.id]).toEqual([]);
    }, 60000 + timing.leadMs + timing.tailMs + timing.drainTimeoutMs + 120000);
  }
});
