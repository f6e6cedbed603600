/**
 * The operator's view of the brokers' link API (the admin HTTP server of each core node). The contract, which
 * the link agent is to serve:
 *
 *   GET    /api/v1/links            → 200 {"links": [{"name": "<remote clusterName>", "state": "Connected" |
 *                                     "Connecting" | "Disconnected" | "Disabled", "reason"?: "RemoteUnreachable" |
 *                                     "AuthFailed" | …, "message"?, "routesSent"?, "routesReceived"?, "queueDepth"?,
 *                                     "queueBytes"?, "lagSeconds"?, "lastConnectedTime"?}]}
 *   DELETE /api/v1/links?name=<n>   → 2xx (or 404: not running there); drop the link now
 *
 * Until it is served, every call fails or answers 404, statuses stay Unknown, and removing a link relies on
 * the links ConfigMap (the agents drop links that leave the file).
 */
import http from 'node:http';

export type LinkState = 'Connected' | 'Connecting' | 'Disconnected' | 'Disabled';
const LINK_STATES: readonly string[] = ['Connected', 'Connecting', 'Disconnected', 'Disabled'];

export interface LinkRuntimeStatus {
  name: string;
  state: LinkState;
  reason?: string;
  message?: string;
  routesSent?: number;
  routesReceived?: number;
  queueDepth?: number;
  queueBytes?: number;
  lagSeconds?: number;
  lastConnectedTime?: string;
}

export interface BrokerEndpoint {
  /** Pod name, for logs. */
  pod: string;
  host: string;
  port: number;
}

export interface BrokerLinks {
  /** Reports of the brokers that answered, merged per link name; undefined when none answered. */
  linkStatuses(endpoints: readonly BrokerEndpoint[]): Promise<Map<string, LinkRuntimeStatus> | undefined>;
  /** Asks every broker to drop the link at once; returns how many acknowledged. */
  removeLink(endpoints: readonly BrokerEndpoint[], name: string): Promise<number>;
}

const REASON = /^[A-Z][A-Za-z0-9]{0,63}$/;
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

function parseEntry(entry: unknown, index: number): LinkRuntimeStatus {
  if (!entry || typeof entry !== 'object') throw new Error(`links[${index}] is not an object`);
  const e = entry as Record<string, unknown>;
  if (typeof e.name !== 'string' || !e.name) throw new Error(`links[${index}].name is missing`);
  if (typeof e.state !== 'string' || !LINK_STATES.includes(e.state)) throw new Error(`links[${index}].state '${String(e.state)}' is not one of ${LINK_STATES.join(', ')}`);
  const status: LinkRuntimeStatus = { name: e.name, state: e.state as LinkState };
  if (typeof e.reason === 'string' && REASON.test(e.reason)) status.reason = e.reason;
  if (typeof e.message === 'string') status.message = e.message.slice(0, 1024);
  for (const key of ['routesSent', 'routesReceived', 'queueDepth', 'queueBytes', 'lagSeconds'] as const) {
    if (isCount(e[key])) status[key] = Math.floor(e[key]);
  }
  if (typeof e.lastConnectedTime === 'string' && !Number.isNaN(Date.parse(e.lastConnectedTime))) status.lastConnectedTime = new Date(e.lastConnectedTime).toISOString();
  return status;
}

/** Validates a `GET /api/v1/links` body; throws naming the first problem. */
export function parseLinksResponse(body: unknown): LinkRuntimeStatus[] {
  const links = (body as { links?: unknown } | null)?.links;
  if (!Array.isArray(links)) throw new Error('response has no "links" array');
  return links.map(parseEntry);
}

const STATE_RANK: Record<LinkState, number> = { Connected: 0, Connecting: 1, Disconnected: 2, Disabled: 3 };

/** One report per link: the best state any broker reports (a link runs where it can), errors kept from it. */
export function mergeLinkReports(reports: readonly (readonly LinkRuntimeStatus[])[]): Map<string, LinkRuntimeStatus> {
  const merged = new Map<string, LinkRuntimeStatus>();
  for (const report of reports) {
    for (const link of report) {
      const seen = merged.get(link.name);
      if (!seen || STATE_RANK[link.state] < STATE_RANK[seen.state]) merged.set(link.name, link);
    }
  }
  return merged;
}

function call(method: string, endpoint: BrokerEndpoint, path: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: endpoint.host, port: endpoint.port, path, method, headers: { accept: 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${endpoint.pod} ${path} timed out after ${timeoutMs} ms`)));
    req.end();
  });
}

export class HttpBrokerLinks implements BrokerLinks {
  constructor(
    private readonly timeoutMs = 2000,
    private readonly onError: (endpoint: BrokerEndpoint, err: Error) => void = () => undefined,
  ) {}

  async linkStatuses(endpoints: readonly BrokerEndpoint[]): Promise<Map<string, LinkRuntimeStatus> | undefined> {
    const reports = await Promise.all(
      endpoints.map(async (endpoint) => {
        try {
          const res = await call('GET', endpoint, '/api/v1/links', this.timeoutMs);
          if (res.status !== 200) throw new Error(`GET /api/v1/links answered ${res.status}`);
          return parseLinksResponse(JSON.parse(res.body));
        } catch (err) {
          this.onError(endpoint, err as Error);
          return undefined;
        }
      }),
    );
    const answered = reports.filter((r): r is LinkRuntimeStatus[] => r !== undefined);
    return answered.length ? mergeLinkReports(answered) : undefined;
  }

  async removeLink(endpoints: readonly BrokerEndpoint[], name: string): Promise<number> {
    const acks = await Promise.all(
      endpoints.map(async (endpoint) => {
        try {
          const res = await call('DELETE', endpoint, `/api/v1/links?name=${encodeURIComponent(name)}`, this.timeoutMs);
          return res.status >= 200 && res.status < 300;
        } catch (err) {
          this.onError(endpoint, err as Error);
          return false;
        }
      }),
    );
    return acks.filter(Boolean).length;
  }
}
