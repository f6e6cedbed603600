/**
 * The operator with the chart's default RBAC (a ClusterRole: all namespaces) and leader election off (the chart
 * then grants no Lease access), as one process on kube-apiserver 1.20: it manages clusters in any namespace, a
 * change to a listener's TLS Secret rolls the pods, and its health endpoint answers.
 */
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadAll } from 'js-yaml';
import type { Condition, RegionalCluster } from '../../src/api/types.js';
import { CONFIG_HASH_ANNOTATION } from '../../src/render/index.js';
import { k8sBinDir, runCommand, startApiServer, type ApiServer } from '../harness/apiserver.js';
import { startOperatorProcess, type OperatorProcess } from '../harness/operator.js';

const REPO = path.resolve(import.meta.dirname, '../../..');
const CHART = path.join(REPO, 'charts/meridian-operator');
const RELEASE_NS = 'meridian-system';
const SA_USER = `system:serviceaccount:${RELEASE_NS}:meridian-operator`;

interface K8sObject {
  kind: string;
  metadata: { name: string; generation?: number };
  rules?: { resources: string[] }[];
  spec?: { template?: { metadata?: { annotations?: Record<string, string> }; spec?: { containers?: { args?: string[] }[] } } };
  status?: { conditions?: Condition[] };
}

let api: ApiServer;
let workDir: string;
let operator: OperatorProcess;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function eventually<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined && value !== false) return value;
    await sleep(200);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

async function kubectl(args: string[], input?: string): Promise<string> {
  const result = await api.kubectl(args, { input });
  if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
  return result.stdout;
}

async function get<T>(apiPath: string): Promise<T | undefined> {
  const res = await api.request('GET', apiPath);
  return res.status === 200 ? (res.body as T) : undefined;
}

function httpGet(port: number, urlPath: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: urlPath }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
}

const stsHash = async (ns: string, name: string): Promise<string | undefined> =>
  (await get<K8sObject>(`/apis/apps/v1/namespaces/${ns}/statefulsets/${name}`))?.spec?.template?.metadata?.annotations?.[CONFIG_HASH_ANNOTATION];

beforeAll(async () => {
  workDir = mkdtempSync(path.join(os.tmpdir(), 'meridian-operator-cw-'));
  api = await startApiServer({ users: [{ name: SA_USER, groups: ['system:serviceaccounts', `system:serviceaccounts:${RELEASE_NS}`] }] });
  await kubectl(['create', 'namespace', RELEASE_NS]);
  await kubectl(['apply', '--validate=false', '-f', path.join(CHART, 'crds')]);
  await kubectl(['wait', '--for=condition=Established', '--timeout=30s', 'crd/regionalclusters.meridian.dev', 'crd/clusterlinks.meridian.dev']);
  const rendered = await runCommand(path.join(k8sBinDir(), 'helm'), ['template', 'meridian-operator', CHART, '-n', RELEASE_NS, '--set', 'leaderElection.enabled=false']);
  expect(rendered.stderr).toBe('');
  const objects = (loadAll(rendered.stdout) as (K8sObject | null)[]).filter((o): o is K8sObject => o !== null);
  expect(objects.map((o) => o.kind).sort()).toEqual(['ClusterRole', 'ClusterRoleBinding', 'Deployment', 'ServiceAccount']);
  await kubectl(['apply', '-f', '-'], objects.filter((o) => o.kind !== 'Deployment').map((o) => JSON.stringify(o)).join('\n'));
  const args = objects.find((o) => o.kind === 'Deployment')?.spec?.template?.spec?.containers?.[0]?.args ?? [];
  expect(args).toContain('--leader-election=false');
  operator = startOperatorProcess({ kubeconfig: api.kubeconfigFor(SA_USER), identity: 'solo', logFile: path.join(workDir, 'operator.log'), args: args.slice(1) });
  await operator.waitForLog('caches synced', (l) => l.msg === 'caches synced; starting workers');
}, 600_000);

afterAll(async () => {
  await operator?.stop();
  await api?.stop();
  if (workDir && !process.env.MERIDIAN_KEEP_APISERVER_DIR) rmSync(workDir, { recursive: true, force: true });
});

it('answers /healthz and /readyz', async () => {
  const started = await operator.waitForLog('started', (l) => l.msg === 'operator started');
  const port = Number(String(started.health).split(':').pop());
  expect(await httpGet(port, '/healthz')).toBe(200);
  expect(await httpGet(port, '/readyz')).toBe(200);
  expect(await httpGet(port, '/nothing')).toBe(404);
});

it('manages the us-west example in its own namespace with cluster-wide RBAC', async () => {
  await kubectl(['apply', '-f', path.join(REPO, 'e2e/manifests/us-west.yaml')]);
  const rc = await eventually('us-west applied', async () => {
    const c = await get<RegionalCluster>('/apis/meridian.dev/v1alpha1/namespaces/meridian/regionalclusters/us-west');
    return c?.status?.conditions?.find((x) => x.type === 'ConfigApplied')?.status === 'True' ? c : undefined;
  });
  expect(rc.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'AwaitingController' });
  expect(await stsHash('meridian', 'us-west-core')).toBe(rc.status?.configHash);
  for (const name of ['to-us-east', 'to-emea']) {
    await eventually(`${name} configured`, async () => {
      const l = await get<K8sObject>(`/apis/meridian.dev/v1alpha1/namespaces/meridian/clusterlinks/${name}`);
      return l?.status?.conditions?.find((c) => c.type === 'Configured')?.status === 'True';
    });
  }
  expect(operator.logs().filter((l) => l.level >= 50)).toEqual([]);
});

it('rolls the pods when a listener\'s TLS Secret changes', async () => {
  const ns = 'tls-team';
  await kubectl(['create', 'namespace', ns]);
  await kubectl(['create', 'secret', 'generic', 'broker-tls', '-n', ns, '--from-literal=tls.crt=CERT-1', '--from-literal=tls.key=KEY-1']);
  const cluster = {
    apiVersion: 'meridian.dev/v1alpha1',
    kind: 'RegionalCluster',
    metadata: { name: 'secure', namespace: ns },
    spec: {
      clusterName: 'secure',
      region: 'eu',
      image: 'meridian:dev',
      auth: { allowAnonymous: true },
      listeners: [{ name: 'mqtts', protocol: 'MQTTS', port: 8883, tls: { secretName: 'broker-tls' } }],
    },
  };
  await kubectl(['apply', '-f', '-'], JSON.stringify(cluster));
  const before = await eventually('secure-core created', () => stsHash(ns, 'secure-core'));
  await kubectl(['create', 'secret', 'generic', 'broker-tls', '-n', ns, '--from-literal=tls.crt=CERT-2', '--from-literal=tls.key=KEY-2', '--dry-run=client', '-o', 'json'])
    .then((json) => kubectl(['apply', '-f', '-'], json));
  const after = await eventually('hash changed', async () => {
    const hash = await stsHash(ns, 'secure-core');
    return hash !== before ? hash : undefined;
  });
  expect(after).toMatch(/^[0-9a-f]{64}$/);
});
