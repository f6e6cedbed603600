import { Ajv, type ErrorObject } from 'ajv';
import { load as parseYaml } from 'js-yaml';
import { covers, overlaps } from '../routing/intersect.js';
import { topicFilterProblem } from '../routing/topic.js';

/** One cluster link, as written in the links file (`links:` list). */
export interface LinkConfig {
  /** The remote cluster's name (its `node.clusterName`). */
  name: string;
  /** host:port of the remote cluster's ordinary MQTT listeners, tried in turn. */
  servers: string[];
  clientIdPrefix: string;
  username?: string;
  passwordFile?: string;
  tls?: LinkTlsConfig;
  /** Filters of the remote topics this cluster wants (an empty list: nothing comes in over this link). */
  topics: string[];
  enabled: boolean;
  queue: LinkQueueConfig;
  compression: 'none' | 'deflate';
  /** The remote's routes expire when its agent stays silent this long. */
  routeTtlSeconds: number;
}

export interface LinkTlsConfig {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  serverName?: string;
  verify: boolean;
}

export interface LinkQueueConfig {
  /** Reserved for the sidecar agent; the embedded agent keeps its queues in the node's store. */
  dir?: string;
  maxBytes: number;
  /** `block`: the publisher waits for room (back-pressure); `reject`: its QoS ≥ 1 message is not acknowledged. */
  whenFull: 'block' | 'reject';
}

/** A rejected entry of the links file: where and why. */
export interface LinkConfigIssue {
  /** Index of the entry in `links:` (-1 for the file as a whole). */
  index: number;
  /** The entry's name when it has a readable one. */
  name?: string;
  /** Key path, e.g. `links[1].topics[0]`. */
  path: string;
  reason: string;
}

export interface LinksFile {
  links: LinkConfig[];
  issues: LinkConfigIssue[];
}

export class LinksFileError extends Error {
  constructor(readonly path: string, readonly reason: string) {
    super(`${path}: ${reason}`);
  }
}

const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]*$';
const nonEmpty = { type: 'string', minLength: 1 } as const;

const entrySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'servers'],
  properties: {
    name: { type: 'string', pattern: NAME_PATTERN, maxLength: 120 },
    servers: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[^\\s:/]+:\\d{1,5}$' } },
    clientIdPrefix: { type: 'string', pattern: '^[A-Za-z0-9_.-]*$', maxLength: 64, default: 'meridian-link-' },
    username: nonEmpty,
    passwordFile: nonEmpty,
    tls: {
      type: 'object',
      additionalProperties: false,
      properties: {
        caFile: nonEmpty, certFile: nonEmpty, keyFile: nonEmpty, serverName: nonEmpty,
        verify: { type: 'boolean', default: true },
      },
      dependencies: { certFile: ['keyFile'], keyFile: ['certFile'] },
    },
    topics: { type: 'array', items: { type: 'string' }, default: [] },
    enabled: { type: 'boolean', default: true },
    queue: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        dir: nonEmpty,
        maxBytes: { type: 'integer', minimum: 4096, default: 64 * 1024 * 1024 },
        whenFull: { enum: ['block', 'reject'], default: 'block' },
      },
    },
    compression: { enum: ['none', 'deflate'], default: 'none' },
    routeTtlSeconds: { type: 'integer', minimum: 3, maximum: 86400, default: 60 },
  },
  dependencies: { passwordFile: ['username'] },
} as const;

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true });
const validateEntry = ajv.compile(entrySchema);

const RESERVED_TOPIC = '$LINK/#';

/**
 * Parses the links file. The file as a whole must be YAML with a `links:` list (else LinksFileError, and the caller
 * keeps what runs); each entry is then checked on its own, so a bad entry is reported and skipped while the others
 * are returned. `localCluster` is this cluster's name: a link to itself is refused.
 */
export function parseLinksFile(text: string, localCluster: string): LinksFile {
  if (text.trim() === '') return { links: [], issues: [] };
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new LinksFileError('(file)', `not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return { links: [], issues: [] };
  if (!isRecord(doc)) throw new LinksFileError('(file)', 'must be a mapping with a `links:` list');
  const extra = Object.keys(doc).filter((k) => k !== 'links');
  if (extra.length > 0) throw new LinksFileError(extra[0], 'unknown key (only `links:` is allowed)');
  const entries = doc.links ?? [];
  if (!Array.isArray(entries)) throw new LinksFileError('links', 'must be a list');
  const links: LinkConfig[] = [];
  const issues: LinkConfigIssue[] = [];
  const seen = new Set<string>();
  entries.forEach((raw: unknown, index) => {
    const result = checkEntry(raw, index, localCluster, seen);
    if ('issue' in result) issues.push(result.issue);
    else {
      seen.add(result.link.name);
      links.push(result.link);
    }
  });
  return { links, issues };
}

function checkEntry(raw: unknown, index: number, localCluster: string, seen: Set<string>): { link: LinkConfig } | { issue: LinkConfigIssue } {
  const base = `links[${index}]`;
  const name = isRecord(raw) && typeof raw.name === 'string' ? raw.name : undefined;
  const issue = (path: string, reason: string): { issue: LinkConfigIssue } => ({ issue: { index, name, path, reason } });
  const entry = structuredClone(raw);
  if (!validateEntry(entry)) {
    const first = (validateEntry.errors ?? [])[0];
    return issue(base + errorPath(first), errorReason(first));
  }
  const link = entry as unknown as LinkConfig;
  if (link.name === localCluster) return issue(`${base}.name`, `a link to the local cluster ${JSON.stringify(localCluster)} itself`);
  if (seen.has(link.name)) return issue(`${base}.name`, `duplicate link name ${JSON.stringify(link.name)}`);
  const badServer = link.servers.findIndex((s) => !validPort(s));
  if (badServer >= 0) return issue(`${base}.servers[${badServer}]`, `port out of range in ${JSON.stringify(link.servers[badServer])}`);
  const topicProblem = topicsProblem(link.topics);
  if (topicProblem) return issue(`${base}.topics[${topicProblem.index}]`, topicProblem.reason);
  return { link };
}

/** Why a list of link topics is not acceptable: an invalid filter, `$LINK/...`, or two entries matching one topic. */
export function topicsProblem(topics: readonly string[]): { index: number; reason: string } | null {
  for (const [index, topic] of topics.entries()) {
    const problem = topicFilterProblem(topic);
    if (problem !== null) return { index, reason: `${JSON.stringify(topic)} is not a valid MQTT filter: it ${problem}` };
    if (topic.startsWith('$share/')) return { index, reason: `${JSON.stringify(topic)}: shared-subscription filters cannot be link topics` };
    if (overlaps(topic, RESERVED_TOPIC)) return { index, reason: `${JSON.stringify(topic)} overlaps ${RESERVED_TOPIC}, reserved for the link protocol` };
    for (let j = 0; j < index; j++) {
      const other = topics[j];
      if (covers(other, topic) || covers(topic, other)) return { index, reason: `${JSON.stringify(topic)} is redundant with ${JSON.stringify(other)} (one covers the other)` };
      if (overlaps(other, topic)) return { index, reason: `${JSON.stringify(topic)} overlaps ${JSON.stringify(other)}: merge them into one filter` };
    }
  }
  return null;
}

/** Canonical text of a link's settings: two configs with the same text need no restart. */
export function linkFingerprint(link: LinkConfig): string {
  return JSON.stringify(link, Object.keys(flattenKeys(link)).sort());
}

function flattenKeys(value: unknown, out: Record<string, true> = {}): Record<string, true> {
  if (Array.isArray(value)) value.forEach((v) => flattenKeys(v, out));
  else if (isRecord(value)) {
    for (const [k, v] of Object.entries(value)) {
      out[k] = true;
      flattenKeys(v, out);
    }
  }
  return out;
}

function validPort(server: string): boolean {
  const port = Number(server.slice(server.lastIndexOf(':') + 1));
  return port >= 1 && port <= 65535;
}

function errorPath(error: ErrorObject | undefined): string {
  if (!error) return '';
  const path = error.instancePath.split('/').slice(1).map((part) => (/^\d+$/.test(part) ? `[${part}]` : `.${part}`)).join('');
  if (error.keyword === 'additionalProperties') return `${path}.${String(error.params.additionalProperty)}`;
  if (error.keyword === 'required') return `${path}.${String(error.params.missingProperty)}`;
  if (error.keyword === 'dependencies') return `${path}.${String(error.params.missingProperty)}`;
  return path;
}

function errorReason(error: ErrorObject | undefined): string {
  if (!error) return 'invalid';
  if (error.keyword === 'additionalProperties') return 'unknown key';
  if (error.keyword === 'required') return 'is required';
  if (error.keyword === 'dependencies') return `is required with ${String(error.params.property)}`;
  if (error.keyword === 'enum') return `must be one of ${(error.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
  return error.message ?? 'invalid';
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
