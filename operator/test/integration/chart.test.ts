/**
 * The Helm chart: `helm lint` and `helm template` are clean for its value combinations, its CRDs are the
 * generated ones, and — on a real kube-apiserver 1.20 with RBAC — it installs, and its ServiceAccount can do
 * what the operator does (server-side apply of a rendered cluster, status updates, its Lease, Events) and
 * nothing beyond its namespaces.
 */
import path from 'node:path';
import { loadAll } from 'js-yaml';
import { crdFiles } from '../../src/api/crds.js';
import type { RegionalCluster } from '../../src/api/types.js';
import { FIELD_MANAGER, renderRegionalCluster, toYaml } from '../../src/render/index.js';
import { k8sBinDir, runCommand, startApiServer, type ApiServer, type CommandResult } from '../harness/apiserver.js';
import { minimalInput } from '../unit/render/render-fixtures.js';

const CHART = path.resolve(import.meta.dirname, '../../../charts/meridian-operator');
const RELEASE_NS = 'meridian-system';
const SA_USER = `system:serviceaccount:${RELEASE_NS}:meridian-operator`;

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  rules?: { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[];
  spec?: { template?: { spec?: { serviceAccountName?: string; containers?: { args?: string[] }[] } } };
}

let helm: string;

async function helmRun(args: string[]): Promise<CommandResult> {
  return runCommand(helm, args);
}

async function template(...sets: string[]): Promise<K8sObject[]> {
  const result = await helmRun(['template', 'meridian-operator', CHART, '-n', RELEASE_NS, ...sets.flatMap((s) => ['--set', s])]);
  if (result.code !== 0) throw new Error(`helm template ${sets.join(' ')} failed: ${result.stderr}`);
  return (loadAll(result.stdout) as (K8sObject | null)[]).filter((o): o is K8sObject => o !== null);
}

const kinds = (objects: K8sObject[]): string[] => objects.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`).sort();

beforeAll(() => {
  helm = path.join(k8sBinDir(), 'helm');
}, 600_000);

describe('helm lint and template', () => {
  it('lint cleanly in strict mode', async () => {
    const result = await helmRun(['lint', '--strict', CHART, '--set', 'watchNamespaces={a,b}']);
    expect(result.code).toBe(0);
    expect(result.stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
    const defaults = await helmRun(['lint', '--strict', CHART]);
    expect(defaults.code).toBe(0);
  });

  it('render cluster-wide RBAC by default, with no wildcard anywhere', async () => {
    const objects = await template();
    expect(kinds(objects)).toEqual([
      'ClusterRole//meridian-operator',
      'ClusterRoleBinding//meridian-operator',
      'Deployment/meridian-system/meridian-operator',
      'Role/meridian-system/meridian-operator-leader-election',
      'RoleBinding/meridian-system/meridian-operator-leader-election',
      'ServiceAccount/meridian-system/meridian-operator',
    ]);
    const rules = objects.flatMap((o) => o.rules ?? []);
    expect(rules.flatMap((r) => [...r.apiGroups, ...r.resources, ...r.verbs]).filter((x) => x.includes('*'))).toEqual([]);
    const deployment = objects.find((o) => o.kind === 'Deployment');
    expect(deployment?.spec?.template?.spec?.serviceAccountName).toBe('meridian-operator');
    expect(deployment?.spec?.template?.spec?.containers?.[0]?.args).toEqual(
      expect.arrayContaining(['operator', '--leader-election=true', '--leader-election-lease=meridian-operator', '--log-level=info']),
    );
  });

  it('render a Role per watched namespace and no cluster-wide access when watchNamespaces is set', async () => {
    const objects = await template('watchNamespaces={team-a,team-b}', 'logLevel=debug');
    expect(kinds(objects).filter((k) => k.startsWith('Cluster'))).toEqual([]);
    expect(kinds(objects).filter((k) => /^Role(Binding)?\/team-/.test(k))).toEqual([
      'Role/team-a/meridian-operator',
      'Role/team-b/meridian-operator',
      'RoleBinding/team-a/meridian-operator',
      'RoleBinding/team-b/meridian-operator',
    ]);
    const args = objects.find((o) => o.kind === 'Deployment')?.spec?.template?.spec?.containers?.[0]?.args;
    expect(args).toEqual(expect.arrayContaining(['--watch-namespaces=team-a,team-b', '--log-level=debug']));
  });

  it('leave RBAC and the ServiceAccount out when asked, and require a name then', async () => {
    const objects = await template('rbac.create=false', 'serviceAccount.create=false', 'serviceAccount.name=existing');
    expect(kinds(objects)).toEqual(['Deployment/meridian-system/meridian-operator']);
    const missing = await helmRun(['template', 'meridian-operator', CHART, '--set', 'serviceAccount.create=false']);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('serviceAccount.name is required when serviceAccount.create is false');
  });

  it('ship the generated CRDs', async () => {
    const result = await helmRun(['show', 'crds', CHART]);
    const shipped = (loadAll(result.stdout) as K8sObject[]).filter(Boolean).map((o) => o.metadata.name).sort();
    expect(shipped).toEqual([...crdFiles().keys()].map((f) => f.replace(/\.yaml$/, '')).sort());
  });
});

describe('the chart on kube-apiserver 1.20 with RBAC', () => {
  let api: ApiServer;
  const kubectl = async (args: string[], user?: string, input?: string): Promise<CommandResult> => api.kubectl(args, { user, input });

  beforeAll(async () => {
    api = await startApiServer({ users: [{ name: SA_USER, groups: ['system:serviceaccounts', `system:serviceaccounts:${RELEASE_NS}`] }] });
    for (const ns of ['team-a', 'team-b', 'other']) expect((await kubectl(['create', 'namespace', ns])).code).toBe(0);
  }, 600_000);

  afterAll(async () => {
    await api?.stop();
  });

  it('installs with helm (CRDs included; client-side apply, as API servers before 1.25 need)', async () => {
    // Helm 4's default server-side apply makes a 1.20 server refuse the CRDs' x-kubernetes-validations (a field it
    // does not know); with client-side apply the server accepts the CRDs and drops the CEL rules.
    const install = await helmRun([
      'install', 'meridian-operator', CHART, '--kubeconfig', api.kubeconfig, '-n', RELEASE_NS, '--create-namespace', '--server-side=false',
      '--set', 'watchNamespaces={team-a,team-b}',
    ]);
    expect(install.stderr).toBe('');
    expect(install.code).toBe(0);
    const established = await kubectl(['wait', '--for=condition=Established', '--timeout=30s', 'crd/regionalclusters.meridian.dev', 'crd/clusterlinks.meridian.dev']);
    expect(established.code).toBe(0);
  });

  it('lets the operator\'s ServiceAccount apply a rendered cluster, write status, and hold its Lease', async () => {
    const input = minimalInput();
    const { status: _status, ...manifest } = input.cluster;
    const created = await kubectl(['apply', '-o', 'json', '-f', '-'], undefined, JSON.stringify({ ...manifest, metadata: { name: 'us-east', namespace: 'team-a' } }));
    expect(created.stderr).toBe('');
    const cluster = JSON.parse(created.stdout) as RegionalCluster;

    const asOperator = (args: string[], input?: string) => kubectl(args, SA_USER, input);
    const rendered = renderRegionalCluster({ ...input, cluster, options: { pdbApiVersion: 'policy/v1beta1' } });
    const applied = await asOperator(['apply', '--server-side', `--field-manager=${FIELD_MANAGER}`, '-f', '-'], rendered.objects.map(toYaml).join('---\n'));
    expect(applied.stderr).toBe('');
    expect(applied.code).toBe(0);

    const status = { observedGeneration: 1, replicantSelector: rendered.replicantSelector, replicantReplicas: 0 };
    const patched = await asOperator(['patch', 'mrc', 'us-east', '-n', 'team-a', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
    // kubectl 1.35 patches subresources only on servers that support it (1.24+); fall back to the raw API.
    if (patched.code !== 0) {
      const res = await api.request('PATCH', '/apis/meridian.dev/v1alpha1/namespaces/team-a/regionalclusters/us-east/status', { status }, SA_USER);
      expect(res.status).toBe(200);
    }
    const lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'meridian-operator', namespace: RELEASE_NS },
      spec: { holderIdentity: 'operator-0', leaseDurationSeconds: 15 },
    };
    expect((await asOperator(['create', '-f', '-'], JSON.stringify(lease))).code).toBe(0);
    expect((await asOperator(['annotate', 'lease', 'meridian-operator', '-n', RELEASE_NS, 'renewed=1'])).code).toBe(0);
    const event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: 'us-east.applied', namespace: 'team-a' },
      involvedObject: { apiVersion: 'meridian.dev/v1alpha1', kind: 'RegionalCluster', name: 'us-east', namespace: 'team-a' },
      reason: 'Applied',
      message: 'applied 11 objects',
      type: 'Normal',
    };
    expect((await asOperator(['create', '-f', '-'], JSON.stringify(event))).code).toBe(0);
  });

  it.each([
    ['read Secrets outside its namespaces', ['get', 'secrets', '-n', 'other']],
    ['touch other Leases', ['auth', 'can-i', 'update', 'leases/someone-else', '-n', RELEASE_NS]],
    ['delete the CRDs', ['auth', 'can-i', 'delete', 'customresourcedefinitions']],
    ['exec into pods', ['auth', 'can-i', 'create', 'pods/exec', '-n', 'team-a']],
    ['write RBAC', ['auth', 'can-i', 'create', 'rolebindings', '-n', 'team-a']],
  ])('does not let the ServiceAccount %s', async (_what, args) => {
    const result = await kubectl(args, SA_USER);
    expect(result.code).not.toBe(0);
  });
});
