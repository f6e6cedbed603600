/**
 * The example manifests (e2e/manifests/{us-east,us-west,emea}.yaml) form a working full mesh: every resource is
 * valid, every link renders, points at the other region's inbound-link NodePort as mapped by kind-config/, and its
 * credentials match a user of the remote region.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { load, loadAll } from 'js-yaml';
import { parsePasswordHash, verifyPassword } from '../../../../broker/src/mqtt/auth/password.js';
import { withClusterLinkDefaults, withRegionalClusterDefaults } from '../../../src/api/defaults.js';
import { clusterLinkSchemaIssues, regionalClusterSchemaIssues } from '../../../src/api/schema-validate.js';
import type { ClusterLink, RegionalCluster } from '../../../src/api/types.js';
import { validateClusterLink, validateRegionalCluster } from '../../../src/api/validate.js';
import { renderRegionalCluster, type LinksFile, type SecretData } from '../../../src/render/index.js';

const ROOT = path.resolve(import.meta.dirname, '../../../..');
const REGIONS = ['us-east', 'us-west', 'emea'];

interface SecretManifest {
  kind: 'Secret';
  metadata: { name: string };
  stringData: Record<string, string>;
}

interface Region {
  cluster: RegionalCluster;
  links: ClusterLink[];
  secrets: SecretData;
  users: { username: string; passwordHash?: string }[];
}

function readRegion(name: string): Region {
  const docs = loadAll(readFileSync(path.join(ROOT, 'e2e/manifests', `${name}.yaml`), 'utf8')) as { kind: string }[];
  const secretDocs = docs.filter((d): d is SecretManifest => d.kind === 'Secret');
  const secrets = Object.fromEntries(
    secretDocs.map((s) => [s.metadata.name, Object.fromEntries(Object.entries(s.stringData).map(([k, v]) => [k, Buffer.from(v).toString('base64')]))]),
  );
  const cluster = docs.find((d): d is RegionalCluster => d.kind === 'RegionalCluster');
  if (!cluster) throw new Error(`${name}.yaml has no RegionalCluster`);
  const usersSecret = secretDocs.find((s) => s.metadata.name === cluster.spec.auth?.usersSecret?.name);
  const users = (load(usersSecret?.stringData['users.yaml'] ?? 'users: []') as { users: Region['users'] }).users;
  const withUid = { ...cluster, metadata: { ...cluster.metadata, uid: `uid-${name}` } };
  return { cluster: withUid, links: docs.filter((d): d is ClusterLink => d.kind === 'ClusterLink'), secrets, users };
}

function kindMapping(name: string): { containerPort: number; hostPort: number } {
  const config = load(readFileSync(path.join(ROOT, 'kind-config', `${name}.yaml`), 'utf8')) as {
    name: string;
    nodes: { extraPortMappings: { containerPort: number; hostPort: number }[] }[];
  };
  expect(config.name).toBe(`meridian-${name}`);
  return config.nodes[0]!.extraPortMappings[0]!;
}

const regions = new Map(REGIONS.map((r) => [r, readRegion(r)]));

describe.each(REGIONS)('region %s', (name) => {
  const region = regions.get(name)!;

  it('has valid resources', () => {
    expect(regionalClusterSchemaIssues(region.cluster)).toEqual([]);
    expect(validateRegionalCluster(withRegionalClusterDefaults(region.cluster))).toEqual([]);
    for (const link of region.links) {
      expect(clusterLinkSchemaIssues(link)).toEqual([]);
      expect(validateClusterLink(withClusterLinkDefaults(link), region.cluster)).toEqual([]);
    }
  });

  it('links to both other regions at their kind NodePorts, and every link renders', () => {
    const result = renderRegionalCluster({ cluster: region.cluster, links: region.links, clusterSecret: 'x', secrets: region.secrets });
    expect(result.links.skipped).toEqual([]);
    const linksMap = result.objects.find((o) => o.kind === 'ConfigMap' && o.metadata?.name === `${name}-links`) as { data: Record<string, string> };
    const file = load(linksMap.data['links.yaml']!) as LinksFile;
    const others = REGIONS.filter((r) => r !== name).sort();
    expect(file.links.map((l) => l.name)).toEqual(others);
    for (const entry of file.links) {
      const remote = regions.get(entry.name)!.cluster;
      expect(entry.servers).toEqual([`meridian-${entry.name}-control-plane:${remote.spec.linkService?.nodePort}`]);
      expect(kindMapping(entry.name).containerPort).toBe(remote.spec.linkService?.nodePort);
    }
  });

  it('presents credentials the remote regions accept', async () => {
    for (const link of region.links) {
      const remote = regions.get(link.spec.remote.clusterName)!;
      const user = remote.users.find((u) => u.username === link.spec.authentication?.username);
      expect(user?.passwordHash).toBeDefined();
      const ref = link.spec.authentication!.passwordSecretRef!;
      const password = Buffer.from(region.secrets[ref.name]![ref.key ?? 'password']!, 'base64');
      expect(await verifyPassword(password, parsePasswordHash(user!.passwordHash!))).toBe(true);
    }
  });
});

it('kind clusters use distinct subnets and host ports', () => {
  const configs = REGIONS.map(
    (r) => load(readFileSync(path.join(ROOT, 'kind-config', `${r}.yaml`), 'utf8')) as { networking: { podSubnet: string; serviceSubnet: string } },
  );
  const subnets = configs.flatMap((c) => [c.networking.podSubnet, c.networking.serviceSubnet]);
  expect(new Set(subnets).size).toBe(subnets.length);
  const hostPorts = REGIONS.map((r) => kindMapping(r).hostPort);
  expect(hostPorts).toEqual([1883, 2883, 3883]);
});
