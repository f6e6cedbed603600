/**
 * Local configuration of one region, produced by the operator's own renderer (renderNodeConfig, renderLinks) from
 * the example resources in e2e/manifests/<region>.yaml. Only what must differ on one machine is overridden: paths,
 * ports, the bind address, the remote `servers` (the latency proxies) and the Secrets (the harness's own passwords).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { loadAll } from 'js-yaml';
import { withRegionalClusterDefaults } from '../../operator/src/api/defaults.js';
import type { ClusterLink, RegionalCluster } from '../../operator/src/api/types.js';
import { renderLinks, renderNodeConfig, type LinksFile, type NodeConfigFile } from '../../operator/src/render/index.js';
import { BROKER_CONTAINER, LINK_AGENT_CONTAINER, podTemplate } from '../../operator/src/render/pod.js';
import { repoRoot } from './paths.js';

export type RegionName = 'us-east' | 'us-west' | 'emea';
export const REGION_NAMES: readonly RegionName[] = ['us-east', 'us-west', 'emea'];

interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string };
  stringData?: Record<string, string>;
  data?: Record<string, string>;
}

/** A user of the manifest's users Secret (its hash is replaced by one of a password the harness knows). */
export interface ManifestUser {
  username: string;
  tenant?: string;
  superuser: boolean;
}

export interface RegionManifest {
  cluster: RegionalCluster;
  links: ClusterLink[];
  users: ManifestUser[];
}

function manifestPath(region: RegionName): string {
  return path.join(repoRoot(), 'e2e', 'manifests', `${region}.yaml`);
}

function secretText(secret: KubeObject, key: string): string | undefined {
  const plain = secret.stringData?.[key];
  if (plain !== undefined) return plain;
  const encoded = secret.data?.[key];
  return encoded === undefined ? undefined : Buffer.from(encoded, 'base64').toString('utf8');
}

function parseUsers(text: string, where: string): ManifestUser[] {
  const [doc] = loadAll(text) as Array<{ users?: Array<{ username?: unknown; tenant?: unknown; superuser?: unknown }> }>;
  if (!Array.isArray(doc?.users)) throw new Error(`${where}: users.yaml has no 'users' list`);
  return doc.users.map((u, i) => {
    if (typeof u.username !== 'string') throw new Error(`${where}: users[${i}].username is not a string`);
    return { username: u.username, superuser: u.superuser === true, ...(typeof u.tenant === 'string' ? { tenant: u.tenant } : {}) };
  });
}

/** Parses e2e/manifests/<region>.yaml: its RegionalCluster, ClusterLinks and the users of its users Secret. */
export function loadRegionManifest(region: RegionName): RegionManifest {
  const file = manifestPath(region);
  const objects = (loadAll(readFileSync(file, 'utf8')) as KubeObject[]).filter((o) => o && typeof o === 'object');
  const clusters = objects.filter((o) => o.kind === 'RegionalCluster') as unknown as RegionalCluster[];
  if (clusters.length !== 1) throw new Error(`${file}: expected one RegionalCluster, found ${clusters.length}`);
  const cluster = withRegionalClusterDefaults(clusters[0]!);
  const links = objects.filter((o) => o.kind === 'ClusterLink') as unknown as ClusterLink[];
  const usersSecretName = cluster.spec.auth?.usersSecret?.name;
  const usersSecret = objects.find((o) => o.kind === 'Secret' && o.metadata?.name === usersSecretName);
  if (!usersSecret) throw new Error(`${file}: users Secret '${usersSecretName ?? '(none)'}' of RegionalCluster ${region} not found`);
  const usersKey = cluster.spec.auth?.usersSecret?.key ?? 'users.yaml';
  const usersText = secretText(usersSecret, usersKey);
  if (usersText === undefined) throw new Error(`${file}: Secret ${usersSecretName} has no key ${usersKey}`);
  return { cluster, links, users: parseUsers(usersText, `${file} Secret ${usersSecretName}`) };
}

export interface NodeRenderInput {
  dataDir: string;
  usersFile: string;
  tlsDir: string;
  mqttPort: number;
  adminPort: number;
}

/** The node's config file: the rendered one with local paths, loopback, and this node's listener and admin ports. */
export function renderLocalNodeConfig(cluster: RegionalCluster, input: NodeRenderInput): NodeConfigFile {
  const config = renderNodeConfig(cluster, { nodeDataDir: input.dataDir, usersFile: input.usersFile, tlsDir: input.tlsDir, bindHost: '127.0.0.1' });
  if (config.listeners.length !== 1) {
    throw new Error(`harness: RegionalCluster ${cluster.spec.clusterName} has ${config.listeners.length} listeners; the harness maps exactly one to a local port`);
  }
  config.listeners = config.listeners.map((l) => ({ ...l, port: input.mqttPort }));
  config.admin = { ...config.admin, port: input.adminPort };
  return config;
}

export interface LinksRenderInput {
  credentialsDir: string;
  queueDir: string;
  /** Link password of this region's link user (the value of the links' passwordSecretRef). */
  linkPassword: string;
  /** Remote cluster name → the local addresses (proxies) that lead to its nodes. */
  servers: ReadonlyMap<string, string[]>;
}

/** The agent's links file and credential files (file name → content), rendered by renderLinks. */
export function renderLocalLinks(manifest: RegionManifest, input: LinksRenderInput): { file: LinksFile; credentials: Map<string, string> } {
  const { cluster } = manifest;
  const secretNames = new Set(manifest.links.flatMap((l) => (l.spec.authentication?.passwordSecretRef ? [l.spec.authentication.passwordSecretRef] : [])));
  const secrets = Object.fromEntries([...secretNames].map((ref) => [ref.name, { [ref.key ?? 'password']: Buffer.from(input.linkPassword).toString('base64') }]));
  const local = manifest.links
    .filter((l) => input.servers.has(l.spec.remote.clusterName))
    .map((l) => ({ ...l, spec: { ...l.spec, remote: { ...l.spec.remote, servers: input.servers.get(l.spec.remote.clusterName)! } } }));
  const rendered = renderLinks(cluster, local, secrets, { credentialsDir: input.credentialsDir, queueDir: input.queueDir });
  if (rendered.skipped.length) {
    throw new Error(`harness: region ${cluster.spec.clusterName}: links skipped by the renderer: ${rendered.skipped.map((s) => `${s.link} (${s.reason}: ${s.message})`).join('; ')}`);
  }
  const credentials = new Map(Object.entries(rendered.credentials).map(([name, b64]) => [name, Buffer.from(b64, 'base64').toString('utf8')]));
  return { file: rendered.file, credentials };
}

/** Local values for the pod-specific parts of the rendered container args. */
export interface LocalProcessArgs {
  /** Replaces `$(POD_NAME)` (e.g. `us-east-core-0`). */
  podName: string;
  configFile?: string;
  linksFile?: string;
  secretFile: string;
  dataDir?: string;
  clusterPort: number;
  adminPort?: number;
  /** `--seeds` instead of the rendered DNS discovery (nodes) or the pod-local core (agents). */
  seeds: string;
}

/** Pod paths and addresses a local process must not see: a rendered flag still holding one is an unmapped flag. */
const POD_ONLY = /\/etc\/meridian|\/var\/lib\/meridian|\$\(POD_/;

/**
 * The args of a rendered container (operator/src/render/pod.ts podTemplate) made local: pod paths, pod addresses,
 * ports and DNS discovery replaced; every other flag passed through as rendered, so a flag the operator adds is
 * exercised here too. A pod path or variable the harness does not know how to map is an error naming the flag.
 */
export function localizeArgs(rendered: readonly string[], local: LocalProcessArgs, what: string): string[] {
  const [command, ...flags] = rendered;
  const mapped = flags.map((flag) => {
    const eq = flag.indexOf('=');
    const name = eq < 0 ? flag : flag.slice(0, eq);
    const value = eq < 0 ? '' : flag.slice(eq + 1);
    const replace = (v: string | number | undefined): string => {
      if (v === undefined) throw new Error(`harness: ${what}: no local value for rendered flag ${flag}`);
      return `${name}=${v}`;
    };
    switch (name) {
      case '--config': return replace(local.configFile);
      case '--links': return replace(local.linksFile);
      case '--cluster-secret-file': return replace(local.secretFile);
      case '--data-dir': return replace(local.dataDir);
      case '--node-name': return replace(value.replaceAll('$(POD_NAME)', local.podName));
      case '--cluster-host':
      case '--admin-host': return replace('127.0.0.1');
      case '--cluster-port': return replace(local.clusterPort);
      case '--cluster-advertise': return replace(`127.0.0.1:${local.clusterPort}`);
      case '--admin-port': return replace(local.adminPort);
      case '--discovery':
      case '--seeds': return `--seeds=${local.seeds}`;
      default:
        if (POD_ONLY.test(flag)) throw new Error(`harness: ${what}: rendered flag ${flag} holds a pod path or variable the harness does not map`);
        return flag;
    }
  });
  if (!command) throw new Error(`harness: ${what}: the rendered container has no args`);
  return [command, ...mapped];
}

/** The rendered args of the broker container (role core or replicant) and of the link-agent sidecar (cores). */
export function renderedContainerArgs(cluster: RegionalCluster): { core: string[]; replicant: string[]; agent: string[] } {
  const args = (role: 'core' | 'replicant', container: string): string[] => {
    const settings = (role === 'core' ? cluster.spec.core : cluster.spec.replicant) ?? {};
    const pod = podTemplate({ cluster, role, settings, configHash: '', options: { clusterDomain: 'cluster.local' } });
    const found = pod.spec?.containers.find((c) => c.name === container);
    if (!found?.args) throw new Error(`harness: the rendered ${role} pod of ${cluster.spec.clusterName} has no ${container} container with args`);
    return found.args;
  };
  return { core: args('core', BROKER_CONTAINER), replicant: args('replicant', BROKER_CONTAINER), agent: args('core', LINK_AGENT_CONTAINER) };
}
