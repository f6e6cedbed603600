/**
 * Reading and editing the live objects the link agents read, without a render: used while a RegionalCluster
 * cannot be rendered (invalid spec) — to tell which links the agents still have, and to take a deleted
 * ClusterLink out so that the finalizer still removes it from the brokers. The returned objects keep the labels and owner references the operator applied (server-side apply
 * would drop whatever the applied object leaves out).
 */
import type { V1ConfigMap, V1ObjectMeta, V1Secret } from '@kubernetes/client-node';
import { load } from 'js-yaml';
import type { LinksFile } from '../render/index.js';
import { LINKS_FILE_KEY } from '../render/names.js';
import { toYaml } from '../render/serialize.js';

function appliedMetadata(meta: V1ObjectMeta | undefined): V1ObjectMeta {
  return {
    name: meta?.name,
    namespace: meta?.namespace,
    ...(meta?.labels ? { labels: meta.labels } : {}),
    ...(meta?.ownerReferences ? { ownerReferences: meta.ownerReferences } : {}),
  };
}

function linksIn(configMap: V1ConfigMap | undefined): LinksFile['links'] {
  const text = configMap?.data?.[LINKS_FILE_KEY];
  return text ? ((load(text) as LinksFile | null)?.links ?? []) : [];
}

/** Names (remote cluster names) of the links in a live links ConfigMap. */
export function linkNamesIn(configMap: V1ConfigMap | undefined): Set<string> {
  return new Set(linksIn(configMap).map((l) => l.name));
}

/** The links ConfigMap without the entry named `remote`; undefined when it has no such entry. */
export function linksConfigMapWithout(configMap: V1ConfigMap, remote: string): V1ConfigMap | undefined {
  const links = linksIn(configMap);
  const kept = links.filter((l) => l.name !== remote);
  if (kept.length === links.length) return undefined;
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: appliedMetadata(configMap.metadata), data: { ...configMap.data, [LINKS_FILE_KEY]: toYaml({ links: kept }) } };
}

/** The link credentials Secret without the files of `remote` (`<remote>.password`, `.ca.crt`, `.tls.crt`, `.tls.key`). */
export function credentialsWithout(secret: V1Secret, remote: string): V1Secret | undefined {
  const data = secret.data ?? {};
  const kept = Object.fromEntries(Object.entries(data).filter(([key]) => !key.startsWith(`${remote}.`)));
  if (Object.keys(kept).length === Object.keys(data).length) return undefined;
  return { apiVersion: 'v1', kind: 'Secret', type: secret.type, metadata: appliedMetadata(secret.metadata), data: kept };
}

/** What the finalizer of a deleted ClusterLink does now. */
export type RemovalStep =
  | { kind: 'remove'; type: 'Normal' | 'Warning'; reason: 'LinkRemoved' | 'LinkRemovalUnconfirmed'; message: string }
  | { kind: 'wait'; retryInMs: number; /** Set on the first wait only (one Event, not one per retry). */ event?: string };

export interface RemovalInput {
  remote: string;
  configMap: string;
  /** Pods whose agent answered and still lists the link. */
  listing: readonly string[];
  /** Why the agents that did not answer did not (one entry each). */
  unanswered: readonly string[];
  /** How many agents were asked. */
  asked: number;
  /** Since the object's deletionTimestamp. */
  waitedMs: number;
  timeoutMs: number;
  /** Earlier waits for this deletion. */
  attempt: number;
}

export const REMOVAL_RETRY_MIN_MS = 500;
export const REMOVAL_RETRY_MAX_MS = 5000;

/**
 * The finalizer goes once no agent lists the link (none answering with it, none silent); otherwise the cluster is
 * requeued with back-off (500 ms doubling to 5 s, never past the deadline) until `timeoutMs` after the deletion,
 * when it goes anyway with a Warning that names what was not confirmed.
 */
export function removalStep(input: RemovalInput): RemovalStep {
  const { remote, configMap, listing, unanswered } = input;
  if (!listing.length && !unanswered.length) {
    const agents = input.asked ? `none of the ${input.asked} link agent(s) lists it any more` : 'no link agent runs';
    return { kind: 'remove', type: 'Normal', reason: 'LinkRemoved', message: `removed the link to ${remote} from ConfigMap ${configMap}; ${agents}` };
  }
  const pending = [...(listing.length ? [`still listed by the agents of ${listing.join(', ')}`] : []), ...unanswered].join('; ');
  if (!(input.waitedMs < input.timeoutMs)) {
    const seconds = Math.round(input.timeoutMs / 1000);
    return {
      kind: 'remove',
      type: 'Warning',
      reason: 'LinkRemovalUnconfirmed',
      message: `removed the link to ${remote} from ConfigMap ${configMap}, but after ${seconds}s it is ${pending}: finalizer removed anyway`,
    };
  }
  const retryInMs = Math.max(100, Math.min(REMOVAL_RETRY_MAX_MS, REMOVAL_RETRY_MIN_MS * 2 ** input.attempt, input.timeoutMs - input.waitedMs));
  return {
    kind: 'wait',
    retryInMs,
    ...(input.attempt === 0 ? { event: `removed the link to ${remote} from ConfigMap ${configMap}; waiting until the link agents drop it: ${pending}` } : {}),
  };
}
