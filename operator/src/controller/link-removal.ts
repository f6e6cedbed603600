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
