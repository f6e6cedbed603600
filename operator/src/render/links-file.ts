/**
 * The link agents' links file, rendered from the ClusterLinks that refer to a RegionalCluster. Credentials are
 * copied out of the Secrets the links reference into one Secret per cluster (mounted once in every pod), so that
 * adding or changing a link changes two mounted volumes' contents, never the pod template: the agents hot-reload.
 */
import { DEFAULT_QUEUE_MAX_BYTES } from '../api/cluster-link-schema.js';
import { withClusterLinkDefaults } from '../api/defaults.js';
import type { ClusterLink, RegionalCluster } from '../api/types.js';
import { validateClusterLink, summarizeIssues, type ValidationReason } from '../api/validate.js';
import { POD_PATHS } from './names.js';

export interface LinkTlsFile {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  serverName?: string;
  verify: boolean;
}

export interface LinkFileEntry {
  name: string;
  servers: string[];
  clientIdPrefix: string;
  username?: string;
  passwordFile?: string;
  tls?: LinkTlsFile;
  topics: string[];
  enabled: boolean;
  queue: { dir: string; maxBytes: number; whenFull: 'block' | 'reject' };
  compression: 'none' | 'deflate';
}

export interface LinksFile {
  links: LinkFileEntry[];
}

export interface LinkPaths {
  /** Directory where the link credentials Secret is mounted. */
  credentialsDir: string;
  /** Parent of the per-link queue directories. */
  queueDir: string;
}

export const POD_LINK_PATHS: LinkPaths = {
  credentialsDir: POD_PATHS.linkCredentialsDir,
  queueDir: `${POD_PATHS.linkAgentDataDir}/queues`,
};

/** Secret name → key → value, base64-encoded as in a Secret's `data`. */
export type SecretData = Record<string, Record<string, string>>;

export type LinkSkipReason = ValidationReason | 'SecretNotFound' | 'DuplicateRemote';

export interface SkippedLink {
  /** metadata.name of the ClusterLink. */
  link: string;
  reason: LinkSkipReason;
  message: string;
}

export interface RenderedLinks {
  file: LinksFile;
  /** Key (file name under credentialsDir) → base64 value. */
  credentials: Record<string, string>;
  /** metadata.name of the ClusterLinks in the file. */
  included: string[];
  skipped: SkippedLink[];
}

class MissingSecret extends Error {}

function secretValue(secrets: SecretData, name: string, key: string): string {
  const value = secrets[name]?.[key];
  if (value === undefined) throw new MissingSecret(secrets[name] ? `Secret ${name} has no key ${key}` : `Secret ${name} not found`);
  return value;
}

function entryFor(cluster: RegionalCluster, link: ClusterLink, secrets: SecretData, paths: LinkPaths): { entry: LinkFileEntry; credentials: Record<string, string> } {
  const { spec } = link;
  const name = spec.remote.clusterName;
  const credentials: Record<string, string> = {};
  const file = (suffix: string, secret: string, key: string): string => {
    credentials[`${name}.${suffix}`] = secretValue(secrets, secret, key);
    return `${paths.credentialsDir}/${name}.${suffix}`;
  };
  const auth = spec.authentication;
  const passwordFile = auth?.passwordSecretRef ? file('password', auth.passwordSecretRef.name, auth.passwordSecretRef.key ?? 'password') : undefined;
  let tls: LinkTlsFile | undefined;
  if (spec.tls) {
    tls = { verify: spec.tls.verify ?? true };
    if (spec.tls.caSecretRef) tls.caFile = file('ca.crt', spec.tls.caSecretRef.name, spec.tls.caSecretRef.key ?? 'ca.crt');
    if (auth?.clientCertificateSecretRef) {
      tls.certFile = file('tls.crt', auth.clientCertificateSecretRef.name, 'tls.crt');
      tls.keyFile = file('tls.key', auth.clientCertificateSecretRef.name, 'tls.key');
    }
    if (spec.tls.serverName) tls.serverName = spec.tls.serverName;
  }
  const entry: LinkFileEntry = {
    name,
    servers: [...spec.remote.servers],
    clientIdPrefix: spec.clientIdPrefix ?? `${cluster.spec.clusterName}-link-`,
    ...(auth?.username === undefined ? {} : { username: auth.username }),
    ...(passwordFile === undefined ? {} : { passwordFile }),
    ...(tls === undefined ? {} : { tls }),
    topics: [...(spec.topics ?? [])],
    enabled: spec.enabled ?? true,
    queue: {
      dir: `${paths.queueDir}/${name}`,
      maxBytes: spec.queue?.maxBytes ?? DEFAULT_QUEUE_MAX_BYTES,
      whenFull: spec.queue?.whenFull === 'Reject' ? 'reject' : 'block',
    },
    compression: spec.compression === 'Deflate' ? 'deflate' : 'none',
  };
  return { entry, credentials };
}

/** The ClusterLinks of `cluster` (same namespace, clusterRef = its name, not being deleted), by name. */
export function linksOf(cluster: RegionalCluster, links: readonly ClusterLink[]): ClusterLink[] {
  return links
    .filter((l) => l.spec.clusterRef === cluster.metadata.name && l.metadata.namespace === cluster.metadata.namespace && !l.metadata.deletionTimestamp)
    .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0));
}

/** `cluster` must have schema defaults applied; links are defaulted here. */
export function renderLinks(cluster: RegionalCluster, links: readonly ClusterLink[], secrets: SecretData, paths: LinkPaths = POD_LINK_PATHS): RenderedLinks {
  const result: RenderedLinks = { file: { links: [] }, credentials: {}, included: [], skipped: [] };
  const byRemote = new Map<string, string>();
  for (const raw of linksOf(cluster, links)) {
    const link = withClusterLinkDefaults(raw);
    const name = link.metadata.name;
    const issues = validateClusterLink(link, cluster, { clusterRef: link.status?.clusterRef, remoteClusterName: link.status?.remoteClusterName });
    if (issues.length) {
      result.skipped.push({ link: name, reason: issues[0]!.reason, message: summarizeIssues(issues) });
      continue;
    }
    const remote = link.spec.remote.clusterName;
    const holder = byRemote.get(remote);
    if (holder) {
      result.skipped.push({ link: name, reason: 'DuplicateRemote', message: `ClusterLink ${holder} already links to ${remote}` });
      continue;
    }
    try {
      const { entry, credentials } = entryFor(cluster, link, secrets, paths);
      byRemote.set(remote, name);
      result.file.links.push(entry);
      Object.assign(result.credentials, credentials);
      result.included.push(name);
    } catch (err) {
      if (!(err instanceof MissingSecret)) throw err;
      result.skipped.push({ link: name, reason: 'SecretNotFound', message: err.message });
    }
  }
  result.file.links.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return result;
}
