/**
 * Test helpers over a started ApiServer: kubectl and raw REST calls as admin, polling with a deadline, conditions
 * and Events of Meridian objects, and the Helm chart's RBAC (the operator runs under the chart's ServiceAccount).
 */
import path from 'node:path';
import { loadAll } from 'js-yaml';
import type { ClusterLink, Condition, RegionalCluster } from '../../src/api/types.js';
import { k8sBinDir, runCommand, type ApiServer } from './apiserver.js';

export const REPO = path.resolve(import.meta.dirname, '../../..');
export const CHART = path.join(REPO, 'charts/meridian-operator');
export const RELEASE_NS = 'meridian-system';
export const SA_USER = `system:serviceaccount:${RELEASE_NS}:meridian-operator`;
export const SA_GROUPS = ['system:serviceaccounts', `system:serviceaccounts:${RELEASE_NS}`];
const MERGE = 'application/merge-patch+json';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` every 200 ms until it returns something other than undefined/false; the last error is reported. */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    await sleep(200);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

interface ChartObject {
  kind: string;
  spec?: { template?: { spec?: { containers?: { args?: string[] }[] } } };
}

export class KubeFixture {
  constructor(
    readonly api: ApiServer,
    readonly namespace: string,
  ) {}

  async kubectl(args: string[], input?: string): Promise<string> {
    const result = await this.api.kubectl(args, { input });
    if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
    return result.stdout;
  }

  async apply(obj: object): Promise<void> {
    await this.kubectl(['apply', '-f', '-'], JSON.stringify(obj));
  }

  async get<T>(apiPath: string): Promise<T | undefined> {
    const res = await this.api.request('GET', apiPath);
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw new Error(`GET ${apiPath}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body as T;
  }

  async mergePatch(apiPath: string, patch: unknown): Promise<void> {
    const result = await this.api.request('PATCH', apiPath, patch, 'admin', MERGE);
    if (result.status !== 200) throw new Error(`PATCH ${apiPath}: ${result.status} ${JSON.stringify(result.body)}`);
  }

  corePath(resource: string, name: string): string {
    return `/api/v1/namespaces/${this.namespace}/${resource}/${name}`;
  }

  linkPath(name: string): string {
    return `/apis/meridian.dev/v1alpha1/namespaces/${this.namespace}/clusterlinks/${name}`;
  }

  link(name: string): Promise<ClusterLink | undefined> {
    return this.get<ClusterLink>(this.linkPath(name));
  }

  cluster(name: string): Promise<RegionalCluster | undefined> {
    return this.get<RegionalCluster>(`/apis/meridian.dev/v1alpha1/namespaces/${this.namespace}/regionalclusters/${name}`);
  }

  /** Waits until the ClusterLink's condition `type` has every field of `match`. */
  linkCondition(name: string, type: string, match: Partial<Condition>, timeoutMs = 20_000): Promise<Condition> {
    return eventually(`ClusterLink ${name} condition ${type} ${JSON.stringify(match)}`, async () => {
      const c = (await this.link(name))?.status?.conditions?.find((x) => x.type === type);
      return c && Object.entries(match).every(([k, v]) => (c as unknown as Record<string, unknown>)[k] === v) ? c : undefined;
    }, timeoutMs);
  }

  /** Events about the object named `objectName`: reason and message. */
  async events(objectName: string): Promise<{ reason: string; message: string; type: string }[]> {
    const list = await this.get<{ items: { reason: string; message: string; type: string; involvedObject: { name: string } }[] }>(`/api/v1/namespaces/${this.namespace}/events`);
    return (list?.items ?? []).filter((e) => e.involvedObject.name === objectName).map(({ reason, message, type }) => ({ reason, message, type }));
  }

  /**
   * A core Pod object of `cluster` that the operator selects, made running and Ready at `podIP` (there is no
   * kubelet: the test writes the status).
   */
  async readyCorePod(cluster: string, name: string, podIP: string): Promise<void> {
    await this.apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: this.namespace,
        labels: { 'app.kubernetes.io/name': 'meridian', 'app.kubernetes.io/instance': cluster, 'app.kubernetes.io/component': 'core', 'app.kubernetes.io/managed-by': 'meridian-operator' },
      },
      spec: { containers: [{ name: 'broker', image: 'meridian:dev' }] },
    });
    const status = { status: { podIP, podIPs: [{ ip: podIP }], phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } };
    const res = await this.api.request('PATCH', `${this.corePath('pods', name)}/status`, status, 'admin', MERGE);
    if (res.status !== 200) throw new Error(`patching the status of Pod ${name}: ${res.status} ${JSON.stringify(res.body)}`);
  }

  /**
   * Applies the chart's RBAC and ServiceAccount (from `helm template` with `sets`) and returns the operator's
   * arguments from the chart's Deployment (after `operator`).
   */
  async installChartRbac(sets: string[]): Promise<string[]> {
    const helm = await runCommand(path.join(k8sBinDir(), 'helm'), ['template', 'meridian-operator', CHART, '-n', RELEASE_NS, ...sets.flatMap((s) => ['--set', s])]);
    if (helm.code !== 0) throw new Error(`helm template failed: ${helm.stderr}`);
    const objects = (loadAll(helm.stdout) as (ChartObject | null)[]).filter((o): o is ChartObject => o !== null);
    const args = objects.find((o) => o.kind === 'Deployment')?.spec?.template?.spec?.containers?.[0]?.args;
    if (!args || args[0] !== 'operator') throw new Error('the chart\'s Deployment does not run `operator`');
    await this.kubectl(['apply', '-f', '-'], objects.filter((o) => o.kind !== 'Deployment').map((o) => JSON.stringify(o)).join('\n'));
    return args.slice(1).map((a) => a.replace('$(POD_NAMESPACE)', RELEASE_NS));
  }
}

/** The links ConfigMap and credentials Secret of RegionalCluster `cluster`, as the kubelet mounts them. */
export async function readLinkMounts(kube: KubeFixture, cluster: string): Promise<{ linksYaml: string | undefined; credentials: Record<string, string> } | undefined> {
  const configMap = await kube.get<{ data?: Record<string, string> }>(kube.corePath('configmaps', `${cluster}-links`));
  if (!configMap) return undefined;
  const secret = await kube.get<{ data?: Record<string, string> }>(kube.corePath('secrets', `${cluster}-link-credentials`));
  return { linksYaml: configMap.data?.['links.yaml'], credentials: secret?.data ?? {} };
}
