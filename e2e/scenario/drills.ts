import path from 'node:path';
import { Mesh, REGION_NAMES, pairKey, type MeshOptions, type PairKey, type RegionName } from '../harness/mesh.js';
import type { ReceiverStats } from './tally.js';
import { RECEIVERS, Workload, sleep, type ReceiverName, type Stream, type StreamResult, type WorkloadTarget } from './workload.js';

/**
 * Starts the mesh; once more when a port the harness picked was taken meanwhile by another process on this shared
 * machine (EADDRINUSE), in a fresh sub-directory when a work dir is given.
 */
export async function startMesh(options: MeshOptions, log: (line: string) => void): Promise<Mesh> {
  try {
    return await Mesh.start({ ...options, log });
  } catch (err) {
    if (!(err instanceof Error) || !err.message.includes('EADDRINUSE')) throw err;
    log(`mesh start hit a port taken meanwhile (${err.message.split('\n')[0]}); starting once more on new ports`);
    return Mesh.start({ ...options, log, dir: options.dir === undefined ? undefined : path.join(options.dir, 'retry') });
  }
}

/** The workload's view of a Meridian mesh: clients connect to each region's replicant as tenant users. */
export function meridianTarget(mesh: Mesh): WorkloadTarget {
  return {
    name: 'meridian',
    port: (region) => mesh.region(region).clientPort,
    credentials: (tenant) => mesh.credentials(tenant),
    mountpoints: true,
  };
}

export interface DrillTiming {
  /** Length of the fault-free stream of the baseline, s. */
  baselineSeconds: number;
  /** Stream before the fault and after the recovery in every drill, ms. */
  leadMs: number;
  tailMs: number;
  /** Bound on waiting for every receiver after a stream, ms. */
  drainTimeoutMs: number;
}

export const DEFAULT_TIMING: DrillTiming = { baselineSeconds: 15, leadMs: 3000, tailMs: 3000, drainTimeoutMs: 60000 };

export interface DrillContext {
  mesh: Mesh;
  workload: Workload;
  timing: DrillTiming;
  log: (line: string) => void;
}

export interface DrillOutcome {
  drill: string;
  description: string;
  stream: StreamResult;
  /** Bytes on the proxies of each region pair during the drill (stream and drain). */
  linkBytes: Record<PairKey, { aToB: number; bToA: number; total: number }>;
  linkBytesTotal: number;
  /** Growth of each region's link `forwarded` counter (`us-east>emea`); meaningless where an agent restarted. */
  forwarded: Record<string, number>;
  /** Facts the drill observed (outage deliveries, lost-volume reports), as sentences for the report. */
  observations: string[];
  /** Failed expectations specific to the drill (beyond exactly-once at the audit services). */
  problems: string[];
  /**
   * Events sent before this time (ms epoch) may be lost without it being a failure: the drill destroyed them on
   * purpose (a deleted queue volume), and the loss must be reported instead. Undefined: no loss accepted.
   */
  lossAcceptedUntil?: number;
  /** With `lossAcceptedUntil`: the most events the audit services together may lose, and why. */
  lossBound?: { count: number; why: string };
}

type FaultResult = {
  observations: string[]; problems: string[]; lossAcceptedUntil?: number; lossBound?: { count: number; why: string };
  /** Origin regions whose events the EMEA dashboard must all get in this drill (checked once the stream drained). */
  emeaGetsAllFrom?: string[];
};

interface DrillSpec {
  id: string;
  description: string;
  /** Runs the fault while the stream runs; returns observations and problems. */
  fault(ctx: DrillContext, stream: Stream): Promise<FaultResult>;
}

const nothing = async (): Promise<FaultResult> => ({ observations: [], problems: [] });

export const DRILLS: readonly DrillSpec[] = [
  {
    id: 'cut-us-east-emea',
    description: 'US-East↔EMEA link cut for 10 s mid-stream, then restored',
    async fault(ctx) {
      const pair = ctx.mesh.pair('us-east', 'emea');
      pair.cut();
      ctx.log('drill: us-east↔emea cut');
      await sleep(10000);
      pair.restore();
      ctx.log('drill: us-east↔emea restored');
      await ctx.mesh.region('emea').linksConnected(60000);
      return { observations: [], problems: [] };
    },
  },
  {
    id: 'kill-core',
    description: 'kill -9 of US-East core-0 (the node beside the link agent), restarted 5 s later',
    async fault(ctx) {
      const core = ctx.mesh.region('us-east').node('core-0');
      await core.kill('SIGKILL');
      ctx.log('drill: us-east core-0 killed');
      await sleep(5000);
      await core.start();
      ctx.log('drill: us-east core-0 restarted');
      await ctx.mesh.region('us-east').linksConnected(60000);
      return { observations: [], problems: [] };
    },
  },
  {
    id: 'kill-agent',
    description: 'kill -9 of a US-East link agent (the sending side of us-east→us-west and us-east→emea), restarted 3 s later',
    async fault(ctx) {
      const agent = ctx.mesh.region('us-east').node('agent-0');
      await agent.kill('SIGKILL');
      ctx.log('drill: us-east agent-0 killed');
      await sleep(3000);
      await agent.start();
      ctx.log('drill: us-east agent-0 restarted');
      await ctx.mesh.region('us-east').linksConnected(60000);
      return { observations: [], problems: [] };
    },
  },
  {
    id: 'us-west-down',
    description: 'the whole US-West region stopped for 20 s and restarted; US-East↔EMEA keeps working',
    async fault(ctx, stream) {
      const region = ctx.mesh.region('us-west');
      await region.stop();
      ctx.log('drill: us-west stopped');
      const before = stream.deliveredFrom('emea-dashboard', 'us-east');
      await sleep(20000);
      const during = stream.deliveredFrom('emea-dashboard', 'us-east') - before;
      const westAtRestart = stream.deliveredFrom('emea-dashboard', 'us-west');
      await region.start();
      ctx.log('drill: us-west restarted');
      await Promise.all(REGION_NAMES.map((r) => ctx.mesh.region(r).linksConnected(60000)));
      const observation = `EMEA dashboard received ${during} US-East denials/intrusions during the 20 s US-West outage`;
      // US-West events published after the restart reach EMEA (its nodes accept clients only with a complete table).
      const restartedAt = Date.now();
      while (Date.now() < restartedAt + 15000 && stream.deliveredFrom('emea-dashboard', 'us-west') <= westAtRestart) await sleep(200);
      const westAfter = stream.deliveredFrom('emea-dashboard', 'us-west') - westAtRestart;
      const restartObservation = `EMEA dashboard got US-West events again ${Date.now() - restartedAt} ms after the links were back`;
      const problems = [...(during > 0 ? [] : [`${observation}: expected some`]), ...(westAfter > 0 ? [] : ['EMEA dashboard got no US-West event within 15 s after the links were back'])];
      return { observations: [observation, restartObservation], problems, emeaGetsAllFrom: ['us-west'] };
    },
  },
  {
    id: 'audit-offline',
    description: 'the acme audit service (persistent session, US-West) offline for 30 s and back',
    async fault(ctx) {
      await ctx.workload.takeOffline('acme-audit');
      ctx.log('drill: acme audit offline');
      await sleep(30000);
      await ctx.workload.bringOnline('acme-audit');
      ctx.log('drill: acme audit back');
      return { observations: [], problems: [] };
    },
  },
  {
    id: 'lost-volume',
    description: 'kill -9 of a US-East link agent, its data dir deleted (lost queue volume), restarted',
    async fault(ctx) {
      const east = ctx.mesh.region('us-east');
      const agent = east.node('agent-0');
      const before = await east.agentLinks(0);
      await agent.kill('SIGKILL');
      agent.wipeData();
      const depths = before.links.map((l) => `${l.name} ${l.queue.depth}`).join(', ');
      // What the deleted volume held for US-West (the audits' region): the most the audits may lose.
      const queuedForAudits = before.links.find((l) => l.name === 'us-west')?.queue.depth ?? 0;
      ctx.log('drill: us-east agent-0 killed and its data dir deleted');
      await sleep(1000);
      await agent.start();
      ctx.log('drill: us-east agent-0 restarted on an empty data dir');
      await Promise.all(REGION_NAMES.map((r) => ctx.mesh.region(r).linksConnected(60000)));
      // The remotes bootstrap the new agent's routes right after the handshake: allow them 2 s. Events sent
      // before then may be gone with the volume (or found no link route); everything after must arrive once.
      await sleep(2000);
      const lossAcceptedUntil = Date.now();
      // A receiver reports the reset when the first message of the new store epoch arrives: poll for both sides.
      const kinds = ['own-store-new', 'remote-agent-reset'];
      const deadline = Date.now() + 15000;
      let reports = await lostVolumeReports(ctx.mesh);
      while (!kinds.every((kind) => reports.some((r) => r.includes(kind))) && Date.now() < deadline) {
        await sleep(500);
        reports = await lostVolumeReports(ctx.mesh);
      }
      const sides = kinds.filter((kind) => !reports.some((r) => r.includes(kind)));
      const observations = [`queue depth of the agent just before the kill: ${depths}`,
        ...(reports.length > 0 ? reports : ['nothing in any agent\'s /api/v1/links or log reports the lost queue volume'])];
      return {
        observations,
        problems: sides.length === 0 ? [] : [`the lost queue volume was not reported as ${sides.join(' nor ')}`],
        lossAcceptedUntil,
        lossBound: { count: queuedForAudits + LOST_VOLUME_MARGIN, why: `the agent's us-west queue held ${queuedForAudits} at the kill (+${LOST_VOLUME_MARGIN} appended before the kill landed)` },
      };
    },
  },
];

/** Entries the agent may append between the queue-depth snapshot and the kill landing. */
const LOST_VOLUME_MARGIN = 20;

/** Every report of a lost queue volume: link status fields (`originResets`, `lostQueueReports`) and agent warnings. */
export async function lostVolumeReports(mesh: Mesh): Promise<string[]> {
  const reports: string[] = [];
  for (const name of REGION_NAMES) {
    const region = mesh.region(name);
    for (let i = 0; i < region.agents.length; i++) {
      if (!region.agents[i]?.running) continue;
      const body = await region.agentLinks(i);
      for (const link of body.links) {
        const resets = typeof link.originResets === 'number' ? link.originResets : 0;
        const lost = Array.isArray(link.lostQueueReports) ? link.lostQueueReports : [];
        if (resets > 0 || lost.length > 0) {
          reports.push(`${name}/agent-${i} link ${link.name}: originResets ${resets}, lostQueueReports ${JSON.stringify(lost)}`);
        }
      }
      for (const line of region.agents[i]!.logs()) {
        if (/new store|was lost|lost with/i.test(line)) reports.push(`${name}/agent-${i} log: ${line.slice(0, 300)}`);
      }
    }
  }
  return reports;
}

/** Streams in a loop until one reaches every receiver completely: the remote routes of every receiver are in place. */
export async function warmUp(workload: Workload, log: (line: string) => void, attempts = 10): Promise<void> {
  for (let i = 1; i <= attempts; i++) {
    const stream = workload.startStream(`warmup-${i}`);
    await sleep(1500);
    const result = await stream.drain(8000, 300);
    const missing = Object.values(result.receivers).reduce((n, r) => n + r.lost, 0);
    if (missing === 0) {
      log(`warm-up ${i}: every receiver got all ${result.sent} events`);
      return;
    }
    log(`warm-up ${i}: ${missing} events missing at receivers (routes still propagating)`);
  }
  throw new Error(`routes not ready: ${attempts} warm-up streams each missed events at some receiver`);
}

export async function runBaseline(ctx: DrillContext): Promise<DrillOutcome> {
  return runDrill(ctx, {
    id: 'baseline',
    description: `steady stream for ${ctx.timing.baselineSeconds} s, no fault`,
    async fault() {
      await sleep(Math.max(0, ctx.timing.baselineSeconds * 1000 - ctx.timing.leadMs - ctx.timing.tailMs));
      return nothing();
    },
  });
}

/** Starts a stream, lets it run `leadMs`, runs the fault, streams `tailMs` more, drains, measures. */
export async function runDrill(ctx: DrillContext, spec: DrillSpec): Promise<DrillOutcome> {
  ctx.log(`drill ${spec.id}: ${spec.description}`);
  const pairs = allPairs();
  for (const [a, b] of pairs) ctx.mesh.pair(a, b).resetCounters();
  const forwardedBefore = await forwardedCounters(ctx.mesh);
  const stream = ctx.workload.startStream(spec.id);
  let faultResult: FaultResult;
  try {
    await sleep(ctx.timing.leadMs);
    faultResult = await spec.fault(ctx, stream);
    await sleep(ctx.timing.tailMs);
  } catch (err) {
    // The drill's own steps failed (e.g. links not back in time): still drain and report what arrived.
    const message = err instanceof Error ? err.message : String(err);
    ctx.log(`drill ${spec.id}: ${message}`);
    faultResult = { observations: [], problems: [`drill step failed: ${message}`] };
  } finally {
    stream.stop();
  }
  const result = await stream.drain(ctx.timing.drainTimeoutMs);
  const forwardedAfter = await forwardedCounters(ctx.mesh);
  const linkBytes = {} as DrillOutcome['linkBytes'];
  let linkBytesTotal = 0;
  for (const [a, b] of pairs) {
    const bytes = ctx.mesh.pair(a, b).bytes();
    linkBytes[pairKey(a, b)] = bytes;
    linkBytesTotal += bytes.total;
  }
  const forwarded: Record<string, number> = {};
  for (const [key, after] of Object.entries(forwardedAfter)) forwarded[key] = after - (forwardedBefore[key] ?? 0);
  const outcome: DrillOutcome = { drill: spec.id, description: spec.description, stream: result, linkBytes, linkBytesTotal, forwarded, ...faultResult };
  if (faultResult.lossAcceptedUntil !== undefined) {
    const lost = Object.values(result.receivers).map((r) => `${r.receiver} ${r.lost}`).join(', ');
    outcome.observations.push(`lost in the accepted window (sent before the agent was back with routes): ${lost}`);
  }
  const bound = faultResult.lossBound;
  const auditLoss = result.receivers['acme-audit'].lost + result.receivers['globex-audit'].lost;
  if (bound && auditLoss > bound.count) {
    outcome.problems.push(`the audits lost ${auditLoss} events, more than the deleted volume can explain: ${bound.why}`);
  }
  if (result.failedPublishes > 0) {
    outcome.observations.push(`${result.failedPublishes} publishes failed at the client and were never acknowledged (excluded from the expected events), e.g. ${result.publishErrors.slice(0, 2).join('; ')}`);
  }
  const emea = result.receivers['emea-dashboard'];
  for (const origin of faultResult.emeaGetsAllFrom ?? []) {
    const lost = emea.lostByRegion[origin] ?? 0;
    if (lost > 0) outcome.problems.push(`EMEA dashboard lost ${lost} events from ${origin}`);
  }
  if (emea.lost > 0 || emea.duplicated > 0 || emea.outOfOrder > 0) {
    outcome.observations.push(`EMEA dashboard: ${emea.lost} lost (by origin ${JSON.stringify(emea.lostByRegion)}), ${emea.duplicated} duplicated, ${emea.outOfOrder} out of order`);
  }
  ctx.log(`drill ${spec.id}: ${summaryLine(outcome)}`);
  for (const line of outcome.observations) ctx.log(`drill ${spec.id}: ${line.slice(0, 600)}`);
  return outcome;
}

function allPairs(): Array<[RegionName, RegionName]> {
  return [['us-east', 'us-west'], ['us-east', 'emea'], ['us-west', 'emea']];
}

async function forwardedCounters(mesh: Mesh): Promise<Record<string, number>> {
  const counters: Record<string, number> = {};
  for (const name of REGION_NAMES) {
    for (const link of await mesh.region(name).links()) counters[`${name}>${link.name}`] = link.forwarded;
  }
  return counters;
}

/** Exactly-once and per-door order at both audit services, nothing foreign anywhere, every publish completed. */
export function exactlyOnceProblems(outcome: DrillOutcome, receivers: readonly ReceiverName[] = ['acme-audit', 'globex-audit']): string[] {
  const problems: string[] = [];
  const cutoff = outcome.lossAcceptedUntil;
  const { stream } = outcome;
  if (stream.unacknowledged > 0) problems.push(`${stream.unacknowledged} publishes not completed`);

  for (const name of receivers) problems.push(...receiverProblems(stream.receivers[name], cutoff));
  for (const stats of Object.values(stream.receivers)) {
    if (stats.foreign > 0) problems.push(`${stats.receiver}: ${stats.foreign} events it must never get (other tenant or unsubscribed kind)`);
  }
  return problems;
}

export function receiverProblems(stats: ReceiverStats, lossAcceptedUntil?: number): string[] {
  const problems: string[] = [];
  if (stats.expected === 0) problems.push(`${stats.receiver}: no events expected (nothing was sent?)`);
  if (lossAcceptedUntil !== undefined) {
    const late = stats.lostSentAt.filter((t) => t > lossAcceptedUntil).length;
    if (late > 0) problems.push(`${stats.receiver}: ${late} events sent after the drill's loss window lost (${stats.lost} lost in all)`);
  } else if (stats.lost > 0) problems.push(`${stats.receiver}: ${stats.lost} of ${stats.expected} lost (by origin ${JSON.stringify(stats.lostByRegion)}; e.g. ${stats.lostExamples.slice(0, 3).join(', ')})`);
  if (stats.duplicated > 0) problems.push(`${stats.receiver}: ${stats.duplicated} duplicates (by origin ${JSON.stringify(stats.duplicatedByRegion)})`);
  if (stats.outOfOrder > 0) problems.push(`${stats.receiver}: ${stats.outOfOrder} out of per-door order`);
  return problems;
}

/**
 * Baseline-only: each link forwarded exactly what the remote's subscribers asked for — US-East and US-West send
 * EMEA only acme denials and intrusions (the dashboard's filters), US-East sends US-West every acme and globex
 * event (both audit services are there), nothing goes out of EMEA or from US-West to US-East.
 */
export function linkSelectivityProblems(outcome: DrillOutcome): string[] {
  const kinds = outcome.stream.sentByKind;
  const n = (key: string): number => kinds[key] ?? 0;
  const expected: Record<string, number> = {
    'us-east>emea': n('acme:us-east:denied') + n('acme:us-east:intrusion'),
    'us-west>emea': n('acme:us-west:denied') + n('acme:us-west:intrusion'),
    'us-east>us-west': (outcome.stream.sentBy['acme:us-east'] ?? 0) + (outcome.stream.sentBy['globex:us-east'] ?? 0),
    'us-west>us-east': 0,
    'emea>us-east': 0,
    'emea>us-west': 0,
  };
  const problems: string[] = [];
  for (const [link, count] of Object.entries(expected)) {
    const got = outcome.forwarded[link];
    if (got === undefined) problems.push(`no link ${link} reported`);
    else if (got !== count) problems.push(`link ${link} forwarded ${got} messages, the remote's subscribers asked for ${count}`);
  }
  return problems;
}

/** The baseline's own expectations: EMEA gets every denial and intrusion with p99 < 500 ms; links are selective. */
export function baselineProblems(outcome: DrillOutcome): string[] {
  const emea = outcome.stream.receivers['emea-dashboard'];
  return [
    ...receiverProblems(emea),
    ...(emea.latency.p99 < 500 ? [] : [`EMEA dashboard p99 ${emea.latency.p99} ms ≥ 500 ms`]),
    ...linkSelectivityProblems(outcome),
  ];
}

export function summaryLine(o: DrillOutcome): string {
  const audit = o.stream.receivers['acme-audit'];
  const emea = o.stream.receivers['emea-dashboard'];
  return `sent ${o.stream.sent}, acme audit ${audit.delivered}/${audit.expected} (lost ${audit.lost}, dup ${audit.duplicated}, order ${audit.outOfOrder}), `
    + `EMEA ${emea.delivered}/${emea.expected} p50/p99 ${emea.latency.p50}/${emea.latency.p99} ms, link bytes ${o.linkBytesTotal}`;
}

export { RECEIVERS };
