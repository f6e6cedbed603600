/**
 * The operator's view of the link agents: the `meridian link-agent` sidecar of every core pod serves
 * `GET /api/v1/links` on its admin port (8082 by default; see broker/src/link/README.md "Status and metrics"):
 *
 *   {"cluster", "node", "file", "fileError": {"path", "reason", "since"} | null, "links": [{"name": "<remote clusterName>",
 *    "state": "connecting" | "connected" | "disconnected" | "misconfigured" | "disabled", "lastError": string | null,
 *    "connectedSince": ISO time | null, "role"?: "active" | "standby", "routesSent", "routesReceived",
 *    "queue": {"depth", "bytes", "oldestAgeMs", …}, …}]}
 *
 * `fileError`: the agent cannot apply its links file (unreadable, not YAML, not a `links:` list) and keeps running
 * the previous one; agents from before it was an object sent a string (taken as the reason, path unknown).
 * `connectedSince`: when the link's current connection became connected; agents from before it omit it.
 *
 * Running links (connecting, connected, disconnected) carry the route and queue figures; misconfigured and disabled
 * entries carry only name, state and lastError. Extra fields are ignored; a field the operator uses that has the
 * wrong type makes the whole answer count as no answer, with an error naming the field. Without `role` (agents that
 * do not share links) an agent counts as the link's active agent.
 *
 * There is no removal endpoint: an agent drops a link once it leaves the links file (ConfigMap), within ~2 s of the
 * kubelet updating the mounted file; the finalizer waits until no agent lists it.
 */
import http from 'node:http';

export const AGENT_LINK_STATES = ['connecting', 'connected', 'disconnected', 'misconfigured', 'disabled'] as const;
export type AgentLinkState = (typeof AGENT_LINK_STATES)[number];
export type AgentRole = 'active' | 'standby';

export interface AgentLinkReport {
  name: string;
  state: AgentLinkState;
  lastError: string | null;
  role: AgentRole;
  /** When the current connection became connected (null: not connected; undefined: an agent that does not say). */
  connectedSince?: string | null;
  /** Present for running links (connecting, connected, disconnected). */
  figures?: { routesSent: number; routesReceived: number; queueDepth: number; queueBytes: number; oldestAgeMs: number };
}

/** Why an agent does not apply its links file (it keeps running the last good one). */
export interface AgentFileError {
  /** The links file; null when the agent did not say (older agents). */
  path: string | null;
  reason: string;
  /** When the agent first saw the problem; null when it did not say. */
  since: string | null;
}

export interface AgentReport {
  /** The agent's node name, when it says. */
  node?: string;
  fileError: AgentFileError | null;
  links: AgentLinkReport[];
}

export interface AgentEndpoint {
  /** Pod name, for status and logs. */
  pod: string;
  host: string;
  port: number;
}

/** One agent asked once: its report, or why there is none. */
export type AgentPoll = { endpoint: AgentEndpoint; report: AgentReport } | { endpoint: AgentEndpoint; error: string };

export interface LinkAgents {
  /** Asks every endpoint (in parallel, each bounded by a timeout); one entry per endpoint. */
  poll(endpoints: readonly AgentEndpoint[]): Promise<AgentPoll[]>;
}

class ReportError extends Error {}

type Fields = Record<string, unknown>;

function objectAt(value: unknown, path: string): Fields {
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new ReportError(`${path} is not an object`);
  return value as Fields;
}

function countAt(obj: Fields, key: string, path: string): number {
  const value = obj[key];
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new ReportError(`${path}.${key}: expected a non-negative number, got ${JSON.stringify(value)}`);
  return value;
}

function nullableStringAt(obj: Fields, key: string, path: string): string | null {
  const value = obj[key];
  if (value === null || typeof value === 'string') return value;
  throw new ReportError(`${path}.${key}: expected a string or null, got ${JSON.stringify(value)}`);
}

function timeAt(obj: Fields, key: string, path: string): string | null | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return value;
  if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) throw new ReportError(`${path}.${key}: expected an ISO time or null, got ${JSON.stringify(value)}`);
  return value;
}

function parseFileError(value: unknown): AgentFileError | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return { path: null, reason: value, since: null };
  const e = objectAt(value, 'response.fileError');
  if (typeof e.reason !== 'string' || !e.reason) throw new ReportError(`response.fileError.reason: expected a non-empty string, got ${JSON.stringify(e.reason)}`);
  const path = e.path === undefined ? null : nullableStringAt(e, 'path', 'response.fileError');
  return { path, reason: e.reason, since: timeAt(e, 'since', 'response.fileError') ?? null };
}

function parseLink(entry: unknown, path: string): AgentLinkReport {
  const e = objectAt(entry, path);
  if (typeof e.name !== 'string' || !e.name) throw new ReportError(`${path}.name: expected a non-empty string, got ${JSON.stringify(e.name)}`);
  if (!AGENT_LINK_STATES.includes(e.state as AgentLinkState)) throw new ReportError(`${path}.state: ${JSON.stringify(e.state)} is not one of ${AGENT_LINK_STATES.join(', ')}`);
  if (e.role !== undefined && e.role !== 'active' && e.role !== 'standby') throw new ReportError(`${path}.role: ${JSON.stringify(e.role)} is not active or standby`);
  const report: AgentLinkReport = { name: e.name, state: e.state as AgentLinkState, lastError: nullableStringAt(e, 'lastError', path), role: (e.role as AgentRole | undefined) ?? 'active' };
  const connectedSince = timeAt(e, 'connectedSince', path);
  if (connectedSince !== undefined) report.connectedSince = connectedSince;
  if (report.state === 'misconfigured' || report.state === 'disabled') return report;
  const queue = objectAt(e.queue, `${path}.queue`);
  report.figures = {
    routesSent: countAt(e, 'routesSent', path),
    routesReceived: countAt(e, 'routesReceived', path),
    queueDepth: countAt(queue, 'depth', `${path}.queue`),
    queueBytes: countAt(queue, 'bytes', `${path}.queue`),
    oldestAgeMs: countAt(queue, 'oldestAgeMs', `${path}.queue`),
  };
  return report;
}

/** Validates a `GET /api/v1/links` body of a link agent; throws naming the first field that is wrong. */
export function parseAgentReport(body: unknown): AgentReport {
  const top = objectAt(body, 'response');
  if (!Array.isArray(top.links)) throw new ReportError(`response.links: expected an array, got ${JSON.stringify(top.links)}`);
  if (top.fileError !== undefined && top.fileError !== null && typeof top.fileError !== 'string' && (typeof top.fileError !== 'object' || Array.isArray(top.fileError))) {
    throw new ReportError(`response.fileError: expected an object, a string or null, got ${JSON.stringify(top.fileError)}`);
  }
  const fileError = parseFileError(top.fileError);
  const node = typeof top.node === 'string' ? top.node : undefined;
  return { ...(node ? { node } : {}), fileError, links: top.links.map((l, i) => parseLink(l, `response.links[${i}]`)) };
}

/** What the agents together say about one link. */
export interface MergedLinkStatus {
  name: string;
  /** The report that counts: the active agent's (the best state among active ones, if several claim it). */
  state: AgentLinkState;
  lastError: string | null;
  /** Pod of the agent whose report counts. */
  agentPod: string;
  /** From the counting report: when its connection became connected (null: not connected; undefined: not said). */
  connectedSince?: string | null;
  activeAgents: number;
  standbyAgents: number;
  /** From the counting report; queue figures summed (depth, bytes) or the maximum (oldest age) over every agent. */
  routesSent?: number;
  routesReceived?: number;
  queueDepth?: number;
  queueBytes?: number;
  oldestAgeMs?: number;
}

export interface MergedAgents {
  /** Agents that answered with a valid report. */
  answered: number;
  /** Pod → why it gave no report. */
  failed: Map<string, string>;
  /** Pod → why its agent does not apply the links file (it runs the previous one), for agents that answered. */
  fileErrors: Map<string, AgentFileError>;
  links: Map<string, MergedLinkStatus>;
}

const STATE_RANK: Record<AgentLinkState, number> = { connected: 0, connecting: 1, disconnected: 2, misconfigured: 3, disabled: 4 };

function better(a: { state: AgentLinkState; role: AgentRole }, b: { state: AgentLinkState; role: AgentRole }): boolean {
  if (a.role !== b.role) return a.role === 'active';
  return STATE_RANK[a.state] < STATE_RANK[b.state];
}

function mergeOne(reports: readonly { pod: string; link: AgentLinkReport }[]): MergedLinkStatus {
  const winner = reports.reduce((best, r) => (better(r.link, best.link) ? r : best));
  const merged: MergedLinkStatus = {
    name: winner.link.name,
    state: winner.link.state,
    lastError: winner.link.lastError,
    agentPod: winner.pod,
    ...(winner.link.connectedSince === undefined ? {} : { connectedSince: winner.link.connectedSince }),
    activeAgents: reports.filter((r) => r.link.role === 'active').length,
    standbyAgents: reports.filter((r) => r.link.role === 'standby').length,
  };
  const withFigures = reports.flatMap((r) => (r.link.figures ? [r.link.figures] : []));
  if (winner.link.figures) {
    merged.routesSent = winner.link.figures.routesSent;
    merged.routesReceived = winner.link.figures.routesReceived;
  }
  if (withFigures.length) {
    // A standby agent may still hold a queue it filled while it was active: those messages wait too.
    merged.queueDepth = withFigures.reduce((sum, f) => sum + f.queueDepth, 0);
    merged.queueBytes = withFigures.reduce((sum, f) => sum + f.queueBytes, 0);
    merged.oldestAgeMs = Math.max(...withFigures.map((f) => f.oldestAgeMs));
  }
  return merged;
}

/** One status per link from every agent's report (pure). */
export function mergeAgentPolls(polls: readonly AgentPoll[]): MergedAgents {
  const failed = new Map<string, string>();
  const fileErrors = new Map<string, AgentFileError>();
  const byLink = new Map<string, { pod: string; link: AgentLinkReport }[]>();
  let answered = 0;
  for (const poll of polls) {
    if ('error' in poll) {
      failed.set(poll.endpoint.pod, poll.error);
      continue;
    }
    answered++;
    if (poll.report.fileError) fileErrors.set(poll.endpoint.pod, poll.report.fileError);
    for (const link of poll.report.links) byLink.set(link.name, [...(byLink.get(link.name) ?? []), { pod: poll.endpoint.pod, link }]);
  }
  const links = new Map([...byLink].map(([name, reports]) => [name, mergeOne(reports)]));
  return { answered, failed, fileErrors, links };
}

/** Pods whose agent answered and still lists the link `name`. */
export function podsListing(polls: readonly AgentPoll[], name: string): string[] {
  return polls.flatMap((p) => ('report' in p && p.report.links.some((l) => l.name === name) ? [p.endpoint.pod] : []));
}

function get(endpoint: AgentEndpoint, path: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: endpoint.host, port: endpoint.port, path, method: 'GET', headers: { accept: 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.end();
  });
}

export class HttpLinkAgents implements LinkAgents {
  constructor(
    private readonly timeoutMs = 2000,
    private readonly onError: (endpoint: AgentEndpoint, err: string) => void = () => undefined,
  ) {}

  async poll(endpoints: readonly AgentEndpoint[]): Promise<AgentPoll[]> {
    return Promise.all(endpoints.map((endpoint) => this.pollOne(endpoint)));
  }

  private async pollOne(endpoint: AgentEndpoint): Promise<AgentPoll> {
    const where = `link agent of pod ${endpoint.pod} (${endpoint.host}:${endpoint.port})`;
    try {
      const res = await get(endpoint, '/api/v1/links', this.timeoutMs);
      if (res.status !== 200) throw new ReportError(`GET /api/v1/links answered ${res.status}`);
      let body: unknown;
      try {
        body = JSON.parse(res.body);
      } catch {
        throw new ReportError('GET /api/v1/links answered with a body that is not JSON');
      }
      return { endpoint, report: parseAgentReport(body) };
    } catch (err) {
      const error = `${where}: ${(err as Error).message}`;
      this.onError(endpoint, error);
      return { endpoint, error };
    }
  }
}
