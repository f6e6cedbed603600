/**
 * The operator against a real kube-apiserver 1.20 (+ etcd), as two separate processes under the Helm chart's
 * ServiceAccount identity and RBAC (the chart's own RBAC objects, from `helm template`, with the flags of its
 * Deployment): CRDs, the example region, owner references, status and printer columns, what rolls and what does
 * not, invalid resources, Secrets appearing later, the brokers' link API, the ClusterLink finalizer, leader
 * hand-over after SIGKILL, and an API server restart (dropped watches, 410 Gone, relist).
 *
 * There is no controller-manager: StatefulSets never get pods and the status must say so. Here a fake link-agent
 * admin API (`/api/v1/links`, in the agent's format) stands in for the agents, reached through a Pod object whose
 * status names 127.0.0.1; link-agents.test.ts runs the same against real `meridian link-agent` processes.
 */
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { ClusterLink, Condition, RegionalCluster } from '../../src/api/types.js';
import { CONFIG_HASH_ANNOTATION } from '../../src/render/index.js';
import { freePort, startApiServer, type ApiServer } from '../harness/apiserver.js';
import { CHART, eventually, KubeFixture, REPO, RELEASE_NS, SA_GROUPS, SA_USER, sleep } from '../harness/kube-fixture.js';
import { startOperatorProcess, type OperatorProcess } from '../harness/operator.js';

const NS = 'meridian';
const LEASE = { durationS: 12, renewS: 9, retryS: 1 };
const RC_PATH = `/apis/meridian.dev/v1alpha1/namespaces/${NS}/regionalclusters`;
const CL_PATH = `/apis/meridian.dev/v1alpha1/namespaces/${NS}/clusterlinks`;

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    finalizers?: string[];
    ownerReferences?: { kind: string; name: string; uid: string; controller?: boolean; blockOwnerDeletion?: boolean }[];
    annotations?: Record<string, string>;
  };
  data?: Record<string, string>;
  spec?: {
    holderIdentity?: string;
    leaseTransitions?: number;
    template?: { metadata?: { annotations?: Record<string, string> }; spec?: { containers?: { args?: string[] }[] } };
  };
}

let api: ApiServer;
let kube: KubeFixture;
let workDir: string;
let operatorArgs: string[];
const operators: OperatorProcess[] = [];
let fakeAgent: http.Server;
/** The links the fake agent lists (as a real agent would until its links file drops them). */
const fakeAgentLinks = new Set(['us-west', 'emea']);

const MERGE = 'application/merge-patch+json';
const kubectl = (args: string[], input?: string): Promise<string> => kube.kubectl(args, input);
const get = <T>(apiPath: string): Promise<T | undefined> => kube.get<T>(apiPath);
const mergePatch = (apiPath: string, patch: unknown): Promise<void> => kube.mergePatch(apiPath, patch);

const cluster = (name: string): Promise<RegionalCluster | undefined> => get<RegionalCluster>(`${RC_PATH}/${name}`);
const link = (name: string): Promise<ClusterLink | undefined> => get<ClusterLink>(`${CL_PATH}/${name}`);
const core = (apiPath: string): Promise<K8sObject | undefined> => get<K8sObject>(apiPath);
const configMap = (name: string): Promise<K8sObject | undefined> => core(`/api/v1/namespaces/${NS}/configmaps/${name}`);
const statefulSet = (name: string): Promise<K8sObject | undefined> => core(`/apis/apps/v1/namespaces/${NS}/statefulsets/${name}`);
const lease = (): Promise<K8sObject | undefined> => core(`/apis/coordination.k8s.io/v1/namespaces/${RELEASE_NS}/leases/meridian-operator`);

function conditionOf(obj: { status?: { conditions?: Condition[] } } | undefined, type: string): Condition | undefined {
  return obj?.status?.conditions?.find((c) => c.type === type);
}

async function conditionEventually(kind: 'mrc' | 'mcl', name: string, type: string, match: Partial<Condition>, timeoutMs = 20_000): Promise<Condition> {
  return eventually(`${kind} ${name} condition ${type} ${JSON.stringify(match)}`, async () => {
    const obj = kind === 'mrc' ? await cluster(name) : await link(name);
    const c = conditionOf(obj, type);
    return c && Object.entries(match).every(([k, v]) => (c as unknown as Record<string, unknown>)[k] === v) ? c : undefined;
  }, timeoutMs);
}

async function eventReasons(objectName: string): Promise<string[]> {
  const list = await get<{ items: { reason: string; involvedObject: { name: string } }[] }>(`/api/v1/namespaces/${NS}/events`);
  return (list?.items ?? []).filter((e) => e.involvedObject.name === objectName).map((e) => e.reason);
}

const linksYaml = async (clusterName: string): Promise<string> => (await configMap(`${clusterName}-links`))?.data?.['links.yaml'] ?? '';

function startOperator(identity: string): OperatorProcess {
  const op = startOperatorProcess({
    kubeconfig: api.kubeconfigFor(SA_USER),
    identity,
    logFile: path.join(workDir, `${identity}.log`),
    args: operatorArgs,
  });
  operators.push(op);
  return op;
}

const agentLink = (name: string, state: string, lastError: string | null, routesSent: number, routesReceived: number) => ({
  name, state, lastError, server: null, actor: `${name}-actor`, incarnation: 1, routeSync: 'live', routesSent, routesReceived, routesRestored: 0,
  remoteAgents: 1, bootstraps: 1, lastBootstrapAt: null, queue: { depth: 0, bytes: 0, maxBytes: 1024, oldestAgeMs: 0, whenFull: 'block' },
  forwarded: 0, received: 0, deduplicated: 0, bytesOut: 0, bytesIn: 0,
});

async function startFakeAgent(port: number): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://agent');
    if (req.method === 'GET' && url.pathname === '/api/v1/links') {
      const links = [agentLink('us-west', 'connected', null, 3, 5), agentLink('emea', 'connecting', 'emea.example.net:1883: Connection refused: Bad username or password', 0, 0)];
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ cluster: 'us-east', node: 'us-east-core-0-link', file: '/etc/meridian/links/links.yaml', fileError: null, links: links.filter((l) => fakeAgentLinks.has(l.name)) }));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return server;
}

beforeAll(async () => {
  workDir = mkdtempSync(path.join(os.tmpdir(), 'meridian-operator-test-'));
  api = await startApiServer({ users: [{ name: SA_USER, groups: SA_GROUPS }] });
  kube = new KubeFixture(api, NS);
  await kubectl(['create', 'namespace', RELEASE_NS]);
  await kubectl(['create', 'namespace', NS]);
  await kubectl(['apply', '--validate=false', '-f', path.join(CHART, 'crds')]);
  const chartArgs = await kube.installChartRbac([
    `watchNamespaces={${NS}}`,
    `leaderElection.leaseDurationSeconds=${LEASE.durationS}`,
    `leaderElection.renewDeadlineSeconds=${LEASE.renewS}`,
    `leaderElection.retryPeriodSeconds=${LEASE.retryS}`,
    'logLevel=debug',
  ]);
  fakeAgent = await startFakeAgent(await freePort());
  const agentPort = (fakeAgent.address() as AddressInfo).port;
  operatorArgs = [...chartArgs, `--link-agent-admin-port=${agentPort}`, '--link-status-interval=2s'];
}, 600_000);

afterAll(async () => {
  await Promise.all(operators.map((op) => op.stop()));
  await new Promise<void>((resolve) => (fakeAgent ? fakeAgent.close(() => resolve()) : resolve()));
  await api?.stop();
  if (workDir && !process.env.MERIDIAN_KEEP_APISERVER_DIR) rmSync(workDir, { recursive: true, force: true });
});

describe('the operator on kube-apiserver 1.20', () => {
  let leader: OperatorProcess;
  let standby: OperatorProcess;

  it('finds the CRDs established', async () => {
    const out = await kubectl(['wait', '--for=condition=Established', '--timeout=30s', 'crd/regionalclusters.meridian.dev', 'crd/clusterlinks.meridian.dev']);
    expect(out).toContain('condition met');
  });

  it('runs two operators with the chart\'s flags: one leads, the other stands by', async () => {
    leader = startOperator('operator-a');
    await leader.waitForLog('caches synced', (l) => l.msg === 'caches synced; starting workers');
    standby = startOperator('operator-b');
    await standby.waitForLog('campaigning', (l) => l.msg === 'campaigning for leadership');
    await sleep(LEASE.retryS * 2000);
    expect((await lease())?.spec?.holderIdentity).toBe('operator-a');
    expect(standby.logs().some((l) => l.msg === 'became leader' || l.msg === 'caches synced; starting workers')).toBe(false);
  });

  it('turns the us-east example into its objects, each owned by the RegionalCluster', async () => {
    await kubectl(['apply', '-f', path.join(REPO, 'e2e/manifests/us-east.yaml')]);
    const rc = await eventually('us-east applied', async () => {
      const c = await cluster('us-east');
      return conditionOf(c, 'ConfigApplied')?.status === 'True' ? c : undefined;
    });
    const expected = [
      'configmaps/us-east-config',
      'configmaps/us-east-links',
      'secrets/us-east-cluster-secret',
      'secrets/us-east-link-credentials',
      'services/us-east-nodes',
      'services/us-east',
      'services/us-east-inbound-links',
    ].map((p) => `/api/v1/namespaces/${NS}/${p}`);
    expected.push(
      `/apis/apps/v1/namespaces/${NS}/statefulsets/us-east-core`,
      `/apis/apps/v1/namespaces/${NS}/deployments/us-east-replicant`,
      `/apis/policy/v1beta1/namespaces/${NS}/poddisruptionbudgets/us-east-core`,
      `/apis/policy/v1beta1/namespaces/${NS}/poddisruptionbudgets/us-east-replicant`,
    );
    for (const apiPath of expected) {
      const obj = await core(apiPath);
      expect({ apiPath, owner: obj?.metadata.ownerReferences }).toEqual({
        apiPath,
        owner: [{ apiVersion: 'meridian.dev/v1alpha1', kind: 'RegionalCluster', name: 'us-east', uid: rc.metadata.uid, controller: true, blockOwnerDeletion: true }],
      });
    }
    const links = await linksYaml('us-east');
    expect(links).toContain('name: us-west');
    expect(links).toContain('name: emea');
    for (const name of ['to-us-west', 'to-emea']) {
      expect((await eventually(`finalizer on ${name}`, async () => ((await link(name))?.metadata.finalizers?.length ? link(name) : undefined)))?.metadata.finalizers).toEqual(['meridian.dev/link-cleanup']);
    }
  });

  it('reports honest status conditions and printer columns (no controller-manager: nothing is ready)', async () => {
    const ready = await conditionEventually('mrc', 'us-east', 'Ready', { status: 'False', reason: 'AwaitingController' });
    expect(ready.message).toContain('core 0/2 ready, replicant 0/1 ready');
    const rc = (await cluster('us-east')) as RegionalCluster;
    expect(rc.status?.observedGeneration).toBe(rc.metadata.generation);
    expect(rc.status?.conditions?.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Ready', 'False', 'AwaitingController'],
      ['Available', 'False', 'NoCoreNodesReady'],
      ['CoreNodesProgressing', 'True', 'AwaitingController'],
      ['ReplicantNodesProgressing', 'True', 'AwaitingController'],
      ['ConfigApplied', 'True', 'Applied'],
    ]);
    for (const c of rc.status?.conditions ?? []) {
      expect(c.observedGeneration).toBe(rc.metadata.generation);
      expect(Date.parse(c.lastTransitionTime)).not.toBeNaN();
    }
    expect(rc.status).toMatchObject({
      clusterName: 'us-east',
      region: 'us-east',
      coreReplicas: 0,
      readyCoreReplicas: 0,
      replicantReplicas: 0,
      readyReplicantReplicas: 0,
      replicantSelector: 'app.kubernetes.io/name=meridian,app.kubernetes.io/instance=us-east,app.kubernetes.io/component=replicant',
      listeners: [{ name: 'mqtt', protocol: 'MQTT', port: 1883, address: `us-east.${NS}.svc:1883` }],
      nodes: [],
    });
    expect(rc.status?.configHash).toMatch(/^[0-9a-f]{64}$/);

    const table = await kubectl(['get', 'mrc', '-n', NS]);
    const [header, row] = table.trim().split('\n').map((l) => l.trim().split(/\s+/));
    expect(header).toEqual(['NAME', 'REGION', 'CORES', 'REPLICANTS', 'READY', 'AGE']);
    expect(row?.slice(0, 5)).toEqual(['us-east', 'us-east', '0', '0', 'False']);

    const linkReady = await conditionEventually('mcl', 'to-us-west', 'Connected', { status: 'Unknown', reason: 'LinkStatusUnavailable' });
    expect(linkReady.message).toContain('/api/v1/links');
    const l = (await link('to-us-west')) as ClusterLink;
    expect(l.status?.conditions?.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Ready', 'Unknown', 'LinkStatusUnavailable'],
      ['Connected', 'Unknown', 'LinkStatusUnavailable'],
      ['Configured', 'True', 'Applied'],
      ['SecretsResolved', 'True', 'Resolved'],
    ]);
    expect(l.status).toMatchObject({ clusterRef: 'us-east', remoteClusterName: 'us-west', observedGeneration: l.metadata.generation });
    const links = await kubectl(['get', 'mcl', '-n', NS]);
    expect(links.split('\n')[0]?.trim().split(/\s+/)).toEqual(['NAME', 'CLUSTER', 'REMOTE', 'ENABLED', 'CONNECTED', 'READY', 'AGE']);
    expect(links).toMatch(/to-us-west\s+us-east\s+us-west\s+true\s+Unknown\s+Unknown/);

    const reasons = await eventReasons('us-east');
    expect(reasons).toEqual(expect.arrayContaining(['ClusterSecretCreated', 'Applied']));
  });

  it('rolls the pods on a spec change, but only updates the links ConfigMap on a link change', async () => {
    const stsBefore = (await statefulSet('us-east-core')) as K8sObject;
    const hashBefore = stsBefore.spec?.template?.metadata?.annotations?.[CONFIG_HASH_ANNOTATION];
    const secretBefore = (await core(`/api/v1/namespaces/${NS}/secrets/us-east-cluster-secret`))?.data?.secret;
    const linksBefore = await linksYaml('us-east');

    await mergePatch(`${CL_PATH}/to-us-west`, { spec: { topics: ['sensors/#', 'alerts/#'] } });
    await eventually('links ConfigMap updated', async () => (await linksYaml('us-east')).includes('sensors/#'));
    await sleep(1500);
    const stsAfterLink = (await statefulSet('us-east-core')) as K8sObject;
    expect(stsAfterLink.metadata.resourceVersion).toBe(stsBefore.metadata.resourceVersion);
    expect(stsAfterLink.spec?.template?.metadata?.annotations?.[CONFIG_HASH_ANNOTATION]).toBe(hashBefore);
    expect(await linksYaml('us-east')).not.toBe(linksBefore);

    await mergePatch(`${RC_PATH}/us-east`, { spec: { config: { logLevel: 'debug' } } });
    const stsAfterSpec = await eventually('StatefulSet rolled', async () => {
      const s = await statefulSet('us-east-core');
      return s?.spec?.template?.metadata?.annotations?.[CONFIG_HASH_ANNOTATION] !== hashBefore ? s : undefined;
    });
    expect(stsAfterSpec.metadata.generation).toBe((stsBefore.metadata.generation ?? 0) + 1);
    expect((await configMap('us-east-config'))?.data?.['config.yaml']).toContain('level: debug');
    expect((await core(`/api/v1/namespaces/${NS}/secrets/us-east-cluster-secret`))?.data?.secret).toBe(secretBefore);
    const rc = await eventually('status follows the new generation', async () => {
      const c = await cluster('us-east');
      return c?.status?.observedGeneration === c?.metadata.generation ? c : undefined;
    });
    expect(rc.status?.configHash).toBe(stsAfterSpec.spec?.template?.metadata?.annotations?.[CONFIG_HASH_ANNOTATION]);
    await eventually('RollingUpdate event', async () => (await eventReasons('us-east')).includes('RollingUpdate'));
  });

  it('marks a link whose Secret is missing, and configures it once the Secret appears', async () => {
    const manifest = {
      apiVersion: 'meridian.dev/v1alpha1',
      kind: 'ClusterLink',
      metadata: { name: 'to-apac', namespace: NS },
      spec: { clusterRef: 'us-east', remote: { clusterName: 'apac', servers: ['apac.example.net:1883'] }, authentication: { username: 'u', passwordSecretRef: { name: 'apac-password' } }, topics: ['#'] },
    };
    await kubectl(['apply', '-f', '-'], JSON.stringify(manifest));
    const resolved = await conditionEventually('mcl', 'to-apac', 'SecretsResolved', { status: 'False', reason: 'SecretNotFound' });
    expect(resolved.message).toBe('Secret apac-password not found');
    await conditionEventually('mcl', 'to-apac', 'Configured', { status: 'False', reason: 'SecretNotFound' });
    expect(await linksYaml('us-east')).not.toContain('name: apac');
    await kubectl(['create', 'secret', 'generic', 'apac-password', '-n', NS, '--from-literal=password=pw']);
    await conditionEventually('mcl', 'to-apac', 'Configured', { status: 'True', reason: 'Applied' });
    await conditionEventually('mcl', 'to-apac', 'SecretsResolved', { status: 'True' });
    expect(await linksYaml('us-east')).toContain('name: apac');
  });

  it('marks invalid resources with a clear condition instead of acting on them (CEL is not enforced by 1.20)', async () => {
    const bad = {
      apiVersion: 'meridian.dev/v1alpha1',
      kind: 'RegionalCluster',
      metadata: { name: 'bad', namespace: NS },
      spec: {
        clusterName: 'bad',
        region: 'nowhere',
        image: 'meridian:dev',
        auth: { allowAnonymous: true },
        listeners: [
          { name: 'a', protocol: 'MQTT', port: 1883 },
          { name: 'b', protocol: 'MQTT', port: 1883 },
        ],
      },
    };
    await kubectl(['apply', '-f', '-'], JSON.stringify(bad));
    const applied = await conditionEventually('mrc', 'bad', 'ConfigApplied', { status: 'False', reason: 'InvalidSpec' });
    expect(applied.message).toBe('spec.listeners: listener ports must be unique');
    await conditionEventually('mrc', 'bad', 'Ready', { status: 'False', reason: 'InvalidSpec' });
    expect(await statefulSet('bad-core')).toBeUndefined();
    await eventually('InvalidSpec event', async () => (await eventReasons('bad')).includes('InvalidSpec'));

    await mergePatch(`${CL_PATH}/to-apac`, { spec: { topics: ['a/#', 'a/b'] } });
    const topics = await conditionEventually('mcl', 'to-apac', 'Configured', { status: 'False', reason: 'InvalidTopics' });
    expect(topics.message).toContain("'a/b' is redundant");
    await eventually('apac left out of the links file', async () => !(await linksYaml('us-east')).includes('name: apac'));
    expect(leader.logs().filter((l) => l.level >= 50)).toEqual([]);
  });

  it('reads link state from the link agents\' /api/v1/links and lists the nodes', async () => {
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'us-east-core-0',
        namespace: NS,
        labels: { 'app.kubernetes.io/name': 'meridian', 'app.kubernetes.io/instance': 'us-east', 'app.kubernetes.io/component': 'core', 'app.kubernetes.io/managed-by': 'meridian-operator' },
        annotations: { [CONFIG_HASH_ANNOTATION]: 'abc' },
      },
      spec: { containers: [{ name: 'broker', image: 'meridian:dev' }] },
    };
    await kubectl(['apply', '-f', '-'], JSON.stringify(pod));
    const status = { status: { podIP: '127.0.0.1', podIPs: [{ ip: '127.0.0.1' }], phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } };
    const res = await api.request('PATCH', `/api/v1/namespaces/${NS}/pods/us-east-core-0/status`, status, 'admin', MERGE);
    expect(res.status).toBe(200);

    const connected = await conditionEventually('mcl', 'to-us-west', 'Ready', { status: 'True', reason: 'Connected' });
    expect(connected.message).toBe('connected to us-west (agent of pod us-east-core-0)');
    const linkStatus = (await link('to-us-west'))?.status;
    expect(linkStatus).toMatchObject({ state: 'connected', activeAgent: 'us-east-core-0', routesSent: 3, routesReceived: 5, queueDepth: 0, lagSeconds: 0 });
    expect(Date.parse(linkStatus?.lastConnectedTime ?? '')).not.toBeNaN();
    const emea = await conditionEventually('mcl', 'to-emea', 'Connected', { status: 'False', reason: 'AuthFailed' });
    expect(emea.message).toContain('Bad username or password');
    expect((await cluster('us-east'))?.status?.nodes).toEqual([{ name: 'us-east-core-0', role: 'core', ready: true, configHash: 'abc' }]);
  });

  it('runs the ClusterLink finalizer on delete: out of the links ConfigMap and the credentials, gone once no agent lists it', async () => {
    expect(await linksYaml('us-east')).toContain('name: emea');
    await kubectl(['delete', 'clusterlink', 'to-emea', '-n', NS, '--wait=false']);
    await eventually('emea out of the links ConfigMap', async () => !(await linksYaml('us-east')).includes('name: emea'));
    await sleep(3000);
    expect((await link('to-emea'))?.metadata.deletionTimestamp).toBeDefined();
    fakeAgentLinks.delete('emea');
    await eventually('to-emea gone', async () => (await link('to-emea')) === undefined);
    expect(await linksYaml('us-east')).not.toContain('name: emea');
    const credentials = await core(`/api/v1/namespaces/${NS}/secrets/us-east-link-credentials`);
    expect(Object.keys(credentials?.data ?? {})).not.toContain('emea.password');
    expect(Object.keys(credentials?.data ?? {})).toContain('us-west.password');
    await eventually('AwaitingAgents and LinkRemoved events', async () => {
      const reasons = await eventReasons('to-emea');
      return reasons.includes('AwaitingAgents') && reasons.includes('LinkRemoved');
    });
  });

  it('runs the finalizer while the RegionalCluster is invalid, by cutting the link out of the live ConfigMap', async () => {
    await kubectl(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'meridian.dev/v1alpha1',
      kind: 'ClusterLink',
      metadata: { name: 'to-apj', namespace: NS },
      spec: { clusterRef: 'us-east', remote: { clusterName: 'apj', servers: ['apj.example.net:1883'] }, topics: ['#'] },
    }));
    await eventually('apj in the links file', async () => (await linksYaml('us-east')).includes('name: apj'));
    const listeners = [{ name: 'mqtt', protocol: 'MQTT', port: 1883 }];
    await mergePatch(`${RC_PATH}/us-east`, { spec: { listeners: [...listeners, { name: 'dup', protocol: 'MQTT', port: 1883 }] } });
    await conditionEventually('mrc', 'us-east', 'ConfigApplied', { status: 'False', reason: 'InvalidSpec' });
    // The agents keep the last applied file: links in it stay Configured.
    expect(conditionOf(await link('to-us-west'), 'Configured')).toMatchObject({ status: 'True', reason: 'Applied' });
    await kubectl(['delete', 'clusterlink', 'to-apj', '-n', NS, '--wait=false']);
    await eventually('to-apj gone', async () => (await link('to-apj')) === undefined);
    const links = await linksYaml('us-east');
    expect(links).not.toContain('name: apj');
    expect(links).toContain('name: us-west');
    await mergePatch(`${RC_PATH}/us-east`, { spec: { listeners } });
    await conditionEventually('mrc', 'us-east', 'ConfigApplied', { status: 'True' });
  });

  it('hands over to the standby within the lease duration when the leader is killed', async () => {
    const before = (await lease())?.spec?.leaseTransitions ?? 0;
    leader.kill('SIGKILL');
    const killedAt = Date.now();
    await leader.exited;
    await eventually('standby holds the lease', async () => (await lease())?.spec?.holderIdentity === 'operator-b', (LEASE.durationS + 5) * 1000);
    const handover = Date.now() - killedAt;
    expect(handover).toBeLessThan((LEASE.durationS + 2 * LEASE.retryS) * 1000 + 1000);
    expect((await lease())?.spec?.leaseTransitions).toBe(before + 1);
    await standby.waitForLog('caches synced', (l) => l.msg === 'caches synced; starting workers', 10_000);
    await mergePatch(`${CL_PATH}/to-us-west`, { spec: { topics: ['handover/#'] } });
    await eventually('the new leader updates the links ConfigMap', async () => (await linksYaml('us-east')).includes('handover/#'));
    [leader, standby] = [standby, leader];
  });

  it('survives an API server restart: dropped watches restart with back-off and relist after 410 Gone', async () => {
    const relistsBefore = leader.logs().filter((l) => l.msg === 'relisted').length;
    await api.restartApiServer(1000);
    await leader.waitForLog('a watch restart', (l) => l.msg === 'watch failed; restarting', 20_000);
    await eventually('relists after the restart', async () => leader.logs().filter((l) => l.msg === 'relisted').length > relistsBefore, 30_000);
    await mergePatch(`${CL_PATH}/to-us-west`, { spec: { topics: ['after-restart/#'] } });
    await eventually('a change after the restart is applied', async () => (await linksYaml('us-east')).includes('after-restart/#'), 30_000);
    await kubectl(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'meridian.dev/v1alpha1',
      kind: 'RegionalCluster',
      metadata: { name: 'later', namespace: NS },
      spec: { clusterName: 'later', region: 'later', image: 'meridian:dev', auth: { allowAnonymous: true } },
    }));
    await eventually('a cluster created after the restart gets its StatefulSet', async () => (await statefulSet('later-core')) !== undefined, 30_000);
    expect(leader.logs().some((l) => l.msg === 'lost leadership; campaigning again')).toBe(false);
    expect((await lease())?.spec?.holderIdentity).toBe(leader.identity);
  });

  it('stops cleanly on SIGTERM and releases the lease', async () => {
    expect(await leader.stop()).toBe(0);
    expect((await lease())?.spec?.holderIdentity).toBeUndefined();
  });
});
