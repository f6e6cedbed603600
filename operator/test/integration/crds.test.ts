/**
 * The CRDs against a real kube-apiserver v1.20.2 + etcd: they apply and become Established, the server's
 * defaulting matches the operator's, valid examples are accepted, invalid ones rejected by the structural
 * schema, and what 1.20 cannot enforce (CEL) is caught by the operator's validator instead.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { allCrds, crdForServer, parseServerVersion, type CustomResourceDefinition } from '../../src/api/crds.js';
import { withClusterLinkDefaults, withRegionalClusterDefaults } from '../../src/api/defaults.js';
import type { ClusterLink, RegionalCluster } from '../../src/api/types.js';
import { validateRegionalCluster } from '../../src/api/validate.js';
import { exampleLink, fullRegionalCluster, minimalRegionalCluster } from '../fixtures/resources.js';
import { startApiServer, type ApiServer } from '../harness/apiserver.js';

const NS = 'meridian';
const BASE = `/apis/meridian.dev/v1alpha1/namespaces/${NS}`;
let api: ApiServer;
let crds: CustomResourceDefinition[];

function writeJson(name: string, value: unknown): string {
  const file = path.join(api.dir, name);
  writeFileSync(file, JSON.stringify(value));
  return file;
}

async function kubectlOk(args: string[], input?: string): Promise<string> {
  const result = await api.kubectl(args, { input });
  if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
  return result.stdout;
}

async function getJson<T>(apiPath: string): Promise<T> {
  const res = await api.request('GET', apiPath);
  if (res.status !== 200) throw new Error(`GET ${apiPath}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as T;
}

/** The object as the user wrote it (no uid, generation or status: the server owns those). */
function asApplied<T extends RegionalCluster | ClusterLink>(obj: T): T {
  const { status: _status, ...rest } = obj;
  return { ...rest, metadata: { name: obj.metadata.name, namespace: NS } } as T;
}

beforeAll(async () => {
  api = await startApiServer();
  const version = await getJson<{ major: string; minor: string }>('/version');
  crds = allCrds().map((crd) => crdForServer(crd, parseServerVersion(version.major, version.minor)));
  await kubectlOk(['create', 'namespace', NS]);
}, 600_000);

afterAll(async () => {
  await api?.stop();
});

describe('CRDs on kube-apiserver 1.20', () => {
  it('apply with kubectl and become Established', async () => {
    for (const crd of crds) await kubectlOk(['apply', '-f', writeJson(`${crd.metadata.name}.json`, crd)]);
    await kubectlOk(['wait', '--for=condition=Established', '--timeout=30s', ...crds.map((c) => `crd/${c.metadata.name}`)]);
    const rc = await getJson<{ status: { acceptedNames: { shortNames: string[] } } }>(
      '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/regionalclusters.meridian.dev',
    );
    expect(rc.status.acceptedNames.shortNames).toEqual(['mrc', 'regcluster']);
  });

  it('drop CEL rules silently, which is why the operator validates again (server dry-run of the unstripped CRD)', async () => {
    const raw = allCrds()[0]!;
    const names = { kind: 'CelProbe', listKind: 'CelProbeList', plural: 'celprobes', singular: 'celprobe', shortNames: [], categories: [] };
    const probe = { ...raw, metadata: { ...raw.metadata, name: 'celprobes.meridian.dev' }, spec: { ...raw.spec, names } };
    const file = writeJson('raw.json', probe);
    const out = await kubectlOk(['create', '--dry-run=server', '--validate=false', '-o', 'json', '-f', file]);
    expect(out).not.toContain('x-kubernetes-validations');
    expect(JSON.stringify(raw)).toContain('x-kubernetes-validations');
  });

  it('accept an example RegionalCluster and default it exactly as the operator does', async () => {
    const input = asApplied(fullRegionalCluster());
    input.spec.core = { ...input.spec.core, persistence: { storageClassName: 'fast' } };
    delete input.spec.imagePullPolicy;
    await kubectlOk(['apply', '-f', writeJson('us-west.json', input)]);
    const stored = await getJson<RegionalCluster>(`${BASE}/regionalclusters/us-west`);
    expect(stored.spec).toEqual(withRegionalClusterDefaults(input).spec);
    expect(stored.spec.imagePullPolicy).toBe('IfNotPresent');
    expect(stored.spec.core?.persistence?.size).toBe('10Gi');

    const minimal = asApplied(minimalRegionalCluster('us-east'));
    await kubectlOk(['apply', '-f', writeJson('us-east.json', minimal)]);
    const storedMinimal = await getJson<RegionalCluster>(`${BASE}/regionalclusters/us-east`);
    expect(storedMinimal.spec).toEqual(withRegionalClusterDefaults(minimal).spec);
    expect(validateRegionalCluster(storedMinimal)).toEqual([]);
  });

  it('accept an example ClusterLink with its defaults', async () => {
    const link = asApplied(exampleLink('to-emea', 'us-east', 'emea'));
    await kubectlOk(['apply', '-f', writeJson('link.json', link)]);
    const stored = await getJson<ClusterLink>(`${BASE}/clusterlinks/to-emea`);
    expect(stored.spec).toEqual(withClusterLinkDefaults(link).spec);
    const table = await kubectlOk(['get', 'mcl', '-n', NS]);
    expect(table.split('\n')[0]).toMatch(/^NAME\s+CLUSTER\s+REMOTE\s+ENABLED\s+CONNECTED\s+READY\s+AGE$/);
    expect(table).toMatch(/to-emea\s+us-east\s+emea\s+true/);
  });

  it('reject invalid resources through the structural schema', async () => {
    const bad = asApplied(minimalRegionalCluster('bad'));
    bad.spec.clusterName = 'has spaces';
    bad.spec.listeners = [{ name: 'mqtt', protocol: 'AMQP' as 'MQTT', port: 70000 }];
    const result = await api.kubectl(['apply', '--validate=false', '-f', writeJson('bad.json', bad)]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('spec.clusterName');
    expect(result.stderr).toContain('spec.listeners.protocol: Unsupported value: "AMQP"');
    expect(result.stderr).toContain('spec.listeners.port: Invalid value: 70000');
    const res = await api.request('GET', `${BASE}/regionalclusters/bad`);
    expect(res.status).toBe(404);

    const badLink = asApplied(exampleLink('bad-link', 'us-east', 'emea', { topics: ['a/#/b'] }));
    const linkResult = await api.kubectl(['apply', '-f', writeJson('bad-link.json', badLink)]);
    expect(linkResult.code).not.toBe(0);
    expect(linkResult.stderr).toContain('spec.topics');
  });

  it('accept what only CEL forbids, and the operator\'s validator reports it', async () => {
    const celOnly = asApplied(minimalRegionalCluster('cel-only'));
    celOnly.spec.listeners = [{ name: 'mqtts', protocol: 'MQTTS', port: 8883 }];
    await kubectlOk(['apply', '-f', writeJson('cel-only.json', celOnly)]);
    const stored = await getJson<RegionalCluster>(`${BASE}/regionalclusters/cel-only`);
    expect(validateRegionalCluster(stored).map((i) => `${i.path}: ${i.message}`)).toEqual(['spec.listeners[0]: MQTTS and WSS listeners need tls']);
  });

  it('serve the scale subresource on the replicant count and the status subresource apart from spec', async () => {
    const scale = await getJson<{ spec: { replicas: number } }>(`${BASE}/regionalclusters/us-west/scale`);
    expect(scale.spec.replicas).toBe(2);
    await kubectlOk(['scale', '-n', NS, 'mrc/us-west', '--replicas=4']);
    const scaled = await getJson<RegionalCluster>(`${BASE}/regionalclusters/us-west`);
    expect(scaled.spec.replicant?.replicas).toBe(4);

    const current = await getJson<RegionalCluster>(`${BASE}/regionalclusters/us-east`);
    const status = { readyCoreReplicas: 3, readyReplicantReplicas: 0, replicantReplicas: 0, replicantSelector: 'a=b' };
    const put = await api.request('PUT', `${BASE}/regionalclusters/us-east/status`, { ...current, spec: { ...current.spec, region: 'ignored' }, status });
    expect(put.status).toBe(200);
    const after = await getJson<RegionalCluster>(`${BASE}/regionalclusters/us-east`);
    expect(after.status).toEqual(status);
    expect(after.spec.region).toBe('us-east');
    const table = await kubectlOk(['get', 'mrc', '-n', NS, 'us-east']);
    expect(table.split('\n')[0]).toMatch(/^NAME\s+REGION\s+CORES\s+REPLICANTS\s+READY\s+AGE$/);
    expect(table).toMatch(/us-east\s+us-east\s+3\s+0\s+/);
  });

  it('accept the example manifests of the three regions', async () => {
    const root = path.resolve(import.meta.dirname, '../../..');
    for (const region of ['us-east', 'us-west', 'emea']) {
      await kubectlOk(['apply', '-f', path.join(root, 'e2e/manifests', `${region}.yaml`)]);
    }
    const table = await kubectlOk(['get', 'meridian', '-n', NS, '-o', 'name']);
    for (const name of ['regionalcluster.meridian.dev/emea', 'clusterlink.meridian.dev/to-us-west', 'clusterlink.meridian.dev/to-emea']) {
      expect(table).toContain(name);
    }
  });
});
