/**
 * ClusterLink status when a region's links are shared by several REAL link agents (one active agent per link,
 * the others standby — broker/src/link/README.md): us-east is two core pods (127.0.0.1 and 127.0.0.2), each a
 * `meridian broker` core plus a `meridian link-agent` sidecar reading the same links file, linked to us-west and
 * emea (brokers with the embedded agent, linked back). The operator asks both agents and reports, per link, the
 * active agent's state and pod; when that agent goes, the link moves and the status follows.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ClusterLink } from '../../src/api/types.js';
import { activeAgentFor } from '../../../broker/src/link/region.js';
import { freePort, startApiServer, type ApiServer } from '../harness/apiserver.js';
import { eventually, KubeFixture, readLinkMounts, RELEASE_NS, SA_GROUPS, SA_USER } from '../harness/kube-fixture.js';
import { AgentRegion, LINK_PASSWORD, LINK_USER, MountSync, RemoteRegion } from '../harness/link-regions.js';
import { startOperatorProcess, type OperatorProcess } from '../harness/operator.js';

const NS = 'meridian';
const PODS = [{ name: 'us-east-core-0', ip: '127.0.0.1' }, { name: 'us-east-core-1', ip: '127.0.0.2' }];
const REMOTES = ['us-west', 'emea'];

let api: ApiServer;
let kube: KubeFixture;
let workDir: string;
let operator: OperatorProcess | undefined;
let east: AgentRegion | undefined;
const remotes: RemoteRegion[] = [];
let kubelet: MountSync | undefined;

/** The pod whose agent the rendezvous hash makes active for `link` among the agents of `pods`. */
function expectedActive(link: string, pods: readonly { name: string }[]): string {
  const agent = activeAgentFor(link, pods.map((p) => `${p.name}-link`));
  return agent?.replace(/-link$/, '') ?? '';
}

function linkManifest(remote: RemoteRegion): ClusterLink {
  return {
    apiVersion: 'meridian.dev/v1alpha1',
    kind: 'ClusterLink',
    metadata: { name: `to-${remote.clusterName}`, namespace: NS },
    spec: {
      clusterRef: 'us-east',
      remote: { clusterName: remote.clusterName, servers: [`127.0.0.1:${remote.broker.mqttPort}`] },
      authentication: { username: LINK_USER, passwordSecretRef: { name: 'remote-link' } },
      topics: ['sensors/#'],
    },
  };
}

/** Roles per pod for `link`, from the agents themselves. */
async function rolesOf(link: string): Promise<Record<string, string | undefined>> {
  const roles: Record<string, string | undefined> = {};
  for (const pod of east!.pods) roles[pod.name] = pod.sidecar ? (await east!.agentLinks(pod.name))?.find((l) => l.name === link)?.role : undefined;
  return roles;
}

beforeAll(async () => {
  // The two links land on different agents; otherwise this test would not show the merge.
  expect(new Set(REMOTES.map((r) => expectedActive(r, PODS))).size).toBe(2);
  workDir = mkdtempSync(path.join(os.tmpdir(), 'meridian-operator-shared-'));
  api = await startApiServer({ users: [{ name: SA_USER, groups: SA_GROUPS }] });
  kube = new KubeFixture(api, NS);
  await kube.kubectl(['create', 'namespace', RELEASE_NS]);
  await kube.kubectl(['create', 'namespace', NS]);
  await kube.kubectl(['apply', '--validate=false', '-f', path.join(import.meta.dirname, '../../../charts/meridian-operator/crds')]);
  const chartArgs = await kube.installChartRbac([`watchNamespaces={${NS}}`, 'logLevel=debug']);

  const adminPort = await freePort();
  east = await AgentRegion.start('us-east', PODS, adminPort);
  for (const name of REMOTES) remotes.push(await RemoteRegion.start(name, 'us-east', `127.0.0.1:${east.core.mqttPort}`));
  kubelet = new MountSync(east, () => readLinkMounts(kube, 'us-east'));
  operator = startOperatorProcess({
    kubeconfig: api.kubeconfigFor(SA_USER),
    identity: 'operator-shared',
    logFile: path.join(workDir, 'operator.log'),
    args: [...chartArgs, `--link-agent-admin-port=${adminPort}`, '--link-status-interval=1s'],
  });
  await operator.waitForLog('caches synced', (l) => l.msg === 'caches synced; starting workers', 60_000);
}, 600_000);

afterAll(async () => {
  await kubelet?.stop();
  await operator?.stop();
  await east?.dispose();
  await Promise.all(remotes.map((r) => r.dispose()));
  await api?.stop();
  if (workDir && !process.env.MERIDIAN_KEEP_APISERVER_DIR) rmSync(workDir, { recursive: true, force: true });
});

describe('ClusterLink status with two link agents sharing the links', () => {
  it('reports each link from its active agent, naming that pod', async () => {
    await kube.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'remote-link', namespace: NS }, data: { password: Buffer.from(LINK_PASSWORD).toString('base64') } });
    await kube.apply({
      apiVersion: 'meridian.dev/v1alpha1',
      kind: 'RegionalCluster',
      metadata: { name: 'us-east', namespace: NS },
      spec: { clusterName: 'us-east', region: 'us-east', image: 'meridian:dev', auth: { allowAnonymous: true }, core: { replicas: 2 } },
    });
    for (const remote of remotes) await kube.apply(linkManifest(remote));
    for (const pod of PODS) await kube.readyCorePod('us-east', pod.name, pod.ip);

    for (const remote of REMOTES) {
      const active = expectedActive(remote, PODS);
      const ready = await kube.linkCondition(`to-${remote}`, 'Ready', { status: 'True', reason: 'Connected' }, 60_000);
      expect(ready.message).toBe(`connected to ${remote} (agent of pod ${active})`);
      expect((await kube.link(`to-${remote}`))?.status).toMatchObject({ state: 'connected', activeAgent: active });
      // Both agents list the link; the one the operator names is the one that says it is active.
      expect(await rolesOf(remote)).toEqual(Object.fromEntries(PODS.map((p) => [p.name, p.name === active ? 'active' : 'standby'])));
    }
  });

  it('follows a link to the other agent when its active agent stops', async () => {
    const victim = expectedActive('us-west', PODS);
    const survivor = PODS.find((p) => p.name !== victim)!.name;
    const stoppedAt = Date.now();
    await east!.stopSidecar(victim);
    const moved = await eventually('to-us-west served by the other agent', async () => {
      const l = await kube.link('to-us-west');
      const connected = l?.status?.conditions?.find((c) => c.type === 'Connected');
      return l?.status?.activeAgent === survivor && connected?.status === 'True' ? l : undefined;
    }, 60_000);
    console.log(`[figure] active agent stopped → ClusterLink to-us-west connected through ${survivor} after ${Date.now() - stoppedAt} ms`);
    expect(moved.status?.state).toBe('connected');
    expect((await rolesOf('us-west'))[survivor]).toBe('active');
    // The other link stays where it was.
    expect((await kube.link('to-emea'))?.status).toMatchObject({ state: 'connected', activeAgent: survivor });
    expect(operator!.logs().filter((l) => l.level >= 50)).toEqual([]);
  });
});
