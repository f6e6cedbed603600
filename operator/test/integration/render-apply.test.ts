/**
 * The rendered objects are valid Kubernetes objects: kube-apiserver 1.20 accepts them through server-side apply
 * (it validates every field), and applying the same render again changes nothing (deterministic rendering).
 */
import { allCrds, crdForServer } from '../../src/api/crds.js';
import type { RegionalCluster } from '../../src/api/types.js';
import { FIELD_MANAGER, renderRegionalCluster, toYaml, type RenderInput } from '../../src/render/index.js';
import { startApiServer, type ApiServer } from '../harness/apiserver.js';
import { fullInput, minimalInput } from '../unit/render/render-fixtures.js';

const NS = 'meridian';
let api: ApiServer;

async function kubectlOk(args: string[], input?: string): Promise<string> {
  const result = await api.kubectl(args, { input });
  if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
  return result.stdout;
}

/** Creates the RegionalCluster so the owner references point at a real object with its real uid. */
async function createCluster(input: RenderInput): Promise<RenderInput> {
  const { status: _status, ...rc } = input.cluster;
  const manifest = { ...rc, metadata: { name: rc.metadata.name, namespace: NS } };
  const created = JSON.parse(await kubectlOk(['apply', '-o', 'json', '-f', '-'], JSON.stringify(manifest))) as RegionalCluster;
  return { ...input, cluster: created };
}

interface AppliedObject {
  kind: string;
  metadata: { name: string; resourceVersion?: string; managedFields?: unknown };
}

async function applyRendered(input: RenderInput): Promise<AppliedObject[]> {
  const { objects } = renderRegionalCluster({ ...input, options: { pdbApiVersion: 'policy/v1beta1' } });
  const yaml = objects.map(toYaml).join('---\n');
  const out = await kubectlOk(['apply', '--server-side', `--field-manager=${FIELD_MANAGER}`, '-o', 'json', '-f', '-'], yaml);
  return (JSON.parse(out) as { items: AppliedObject[] }).items;
}

/**
 * The stored objects without resourceVersion and managedFields: kube-apiserver before 1.23 rewrites the
 * managedFields timestamp on a no-op apply that lands in a later second when the applied object differs from the
 * stored one only by server-side normalisation (a StatefulSet's claim templates, an empty Secret `data`), which
 * moves the resourceVersion although nothing changed.
 */
function content(objects: AppliedObject[]): unknown[] {
  return objects.map(({ metadata: { resourceVersion: _rv, managedFields: _mf, ...metadata }, ...rest }) => ({ ...rest, metadata }));
}

beforeAll(async () => {
  api = await startApiServer();
  const crds = allCrds().map((crd) => crdForServer(crd, { major: 1, minor: 20 }));
  await kubectlOk(['apply', '-f', '-'], crds.map((c) => JSON.stringify(c)).join('\n'));
  await kubectlOk(['wait', '--for=condition=Established', '--timeout=30s', ...crds.map((c) => `crd/${c.metadata.name}`)]);
  await kubectlOk(['create', 'namespace', NS]);
}, 600_000);

afterAll(async () => {
  await api?.stop();
});

it.each([
  ['minimal', minimalInput],
  ['full', fullInput],
])('the %s render applies cleanly and re-applies as a no-op', async (_name, makeInput) => {
  const input = await createCluster(makeInput());
  const first = await applyRendered(input);
  expect(first.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(renderRegionalCluster(input).objects.map((o) => `${o.kind}/${o.metadata?.name}`));
  await new Promise((resolve) => setTimeout(resolve, 1100)); // the second apply lands in a later second, always
  const second = await applyRendered(input);
  expect(content(second)).toEqual(content(first));

  const sts = JSON.parse(await kubectlOk(['get', '-n', NS, 'statefulset', `${input.cluster.metadata.name}-core`, '-o', 'json'])) as {
    metadata: { ownerReferences: { uid: string }[] };
  };
  expect(sts.metadata.ownerReferences[0]?.uid).toBe(input.cluster.metadata.uid);
});
