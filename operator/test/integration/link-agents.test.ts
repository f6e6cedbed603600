/**
 * ClusterLink status and finalizer against REAL link agents: kube-apiserver 1.20 + etcd, the operator as a process
 * under the chart's RBAC, and two regions as local processes — us-east (a core `meridian broker` plus a
 * `meridian link-agent` sidecar, the rendered core pod's pair) and us-west (a broker with the embedded agent,
 * linked back), the us-east → us-west link through a TCP proxy the test cuts. There is no kubelet: the test creates
 * the core Pod object (Ready, podIP 127.0.0.1) and syncs the links ConfigMap and credentials Secret into the files
 * the sidecar reads, as the kubelet would (and can pause that sync).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { TcpProxy } from '../../../broker/test/harness/tcp-proxy.js';
import type { ClusterLink } from '../../src/api/types.js';
import { freePort, startApiServer, type ApiServer } from '../harness/apiserver.js';
import { eventually, KubeFixture, readLinkMounts, RELEASE_NS, SA_GROUPS, SA_USER, sleep } from '../harness/kube-fixture.js';
import { AgentRegion, LINK_PASSWORD, LINK_USER, MountSync, RemoteRegion, type AgentLinkInfo } from '../harness/link-regions.js';
import { startOperatorProcess, type OperatorProcess } from '../harness/operator.js';

const NS = 'meridian';
const POD = 'us-east-core-0';
const REMOVAL_TIMEOUT_S = 20;

let api: ApiServer;
let kube: KubeFixture;
let workDir: string;
let operator: OperatorProcess | undefined;
let east: AgentRegion | undefined;
let west: RemoteRegion | undefined;
let kubelet: MountSync | undefined;
let toWest: TcpProxy | undefined;
const clients: MqttClient[] = [];
let westSub: MqttClient;

const b64 = (s: string): string => Buffer.from(s).toString('base64');

async function agentLink(name: string): Promise<AgentLinkInfo | undefined> {
  return (await east?.agentLinks())?.find((l) => l.name === name);
}

function clusterLinkManifest(name: string, remoteClusterName: string, servers: string[]): ClusterLink {
  return {
    apiVersion: 'meridian.dev/v1alpha1',
    kind: 'ClusterLink',
    metadata: { name, namespace: NS },
    spec: {
      clusterRef: 'us-east',
      remote: { clusterName: remoteClusterName, servers },
      authentication: { username: LINK_USER, passwordSecretRef: { name: 'us-west-link' } },
      topics: ['sensors/#'],
    },
  };
}

beforeAll(async () => {
  workDir = mkdtempSync(path.join(os.tmpdir(), 'meridian-operator-links-'));
  api = await startApiServer({ users: [{ name: SA_USER, groups: SA_GROUPS }] });
  kube = new KubeFixture(api, NS);
  await kube.kubectl(['create', 'namespace', RELEASE_NS]);
  await kube.kubectl(['create', 'namespace', NS]);
  await kube.kubectl(['apply', '--validate=false', '-f', path.join(import.meta.dirname, '../../../charts/meridian-operator/crds')]);
  const chartArgs = await kube.installChartRbac([`watchNamespaces={${NS}}`, 'logLevel=debug']);

  const adminPort = await freePort();
  east = await AgentRegion.start('us-east', [{ name: POD, ip: '127.0.0.1' }], adminPort);
  toWest = await TcpProxy.start(1);
  west = await RemoteRegion.start('us-west', 'us-east', `127.0.0.1:${east.core.mqttPort}`);
  toWest.setTarget(west.broker.mqttPort);
  kubelet = new MountSync(east, () => readLinkMounts(kube, 'us-east'));

  operator = startOperatorProcess({
    kubeconfig: api.kubeconfigFor(SA_USER),
    identity: 'operator-links',
    logFile: path.join(workDir, 'operator.log'),
    args: [...chartArgs, `--link-agent-admin-port=${adminPort}`, '--link-status-interval=1s', `--link-removal-timeout=${REMOVAL_TIMEOUT_S}s`],
  });
  await operator.waitForLog('caches synced', (l) => l.msg === 'caches synced; starting workers', 60_000);
}, 600_000);

afterAll(async () => {
  await kubelet?.stop();
  await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
  await operator?.stop();
  await east?.dispose();
  await west?.dispose();
  await toWest?.close();
  await api?.stop();
  if (workDir && !process.env.MERIDIAN_KEEP_APISERVER_DIR) rmSync(workDir, { recursive: true, force: true });
});

describe('ClusterLink status and finalizer with real link agents', () => {
  it('reports Connected/Ready with the route and queue figures of the real agent', async () => {
    await kube.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'us-west-link', namespace: NS }, data: { password: b64(LINK_PASSWORD) } });
    await kube.apply({
      apiVersion: 'meridian.dev/v1alpha1',
      kind: 'RegionalCluster',
      metadata: { name: 'us-east', namespace: NS },
      spec: { clusterName: 'us-east', region: 'us-east', image: 'meridian:dev', auth: { allowAnonymous: true } },
    });
    await kube.apply(clusterLinkManifest('to-us-west', 'us-west', [toWest!.address]));
    await kube.readyCorePod('us-east', POD, '127.0.0.1');
    // A subscriber in each region: us-east wants sensors/# from us-west (routesSent), us-west wants alerts/# (routesReceived).
    const eastSub = await east!.client({ clientId: 'east-sub' });
    westSub = await west!.client({ clientId: 'west-sub' });
    clients.push(eastSub, westSub);
    await eastSub.subscribeAsync('sensors/#', { qos: 1 });
    await westSub.subscribeAsync('alerts/#', { qos: 1 });

    const ready = await kube.linkCondition('to-us-west', 'Ready', { status: 'True', reason: 'Connected' }, 60_000);
    expect(ready.message).toBe(`connected to us-west (agent of pod ${POD})`);
    const status = await eventually('routes both ways in the status', async () => {
      const s = (await kube.link('to-us-west'))?.status;
      if (s?.routesSent === 1 && s.routesReceived === 1) return s;
      throw new Error(`status ${JSON.stringify(s)}; agent ${JSON.stringify(await east!.agentLinks())}`);
    }, 30_000);
    const agent = await agentLink('us-west');
    expect(agent).toMatchObject({ state: 'connected', routesSent: status.routesSent, routesReceived: status.routesReceived });
    expect(status).toMatchObject({ state: 'connected', activeAgent: POD, queueDepth: 0, queueBytes: 0, lagSeconds: 0 });
    expect(status.conditions?.find((c) => c.type === 'Connected')).toMatchObject({ status: 'True', reason: 'Connected' });
    expect(Date.parse(status.lastConnectedTime ?? '')).not.toBeNaN();
    // The agent's own connect time, not when the operator noticed.
    expect(status.lastConnectedTime).toBe(agent?.connectedSince);
    expect(status.lastError).toBeUndefined();

    // The link the operator reports carries traffic.
    const westPub = await west!.client({ clientId: 'west-pub' });
    clients.push(westPub);
    let delivered = false;
    eastSub.once('message', () => (delivered = true));
    await eventually('a message from us-west in us-east', async () => {
      await westPub.publishAsync('sensors/t1', 'x', { qos: 1 });
      await sleep(300);
      return delivered;
    });
  });

  it('turns Connected=False/RemoteUnreachable when the remote is cut off, with the queue depth and lag of the agent', async () => {
    const before = (await kube.link('to-us-west'))?.status?.lastConnectedTime;
    const cutAt = Date.now();
    toWest!.refuse();
    toWest!.cut();
    const down = await kube.linkCondition('to-us-west', 'Connected', { status: 'False', reason: 'RemoteUnreachable' }, 30_000);
    const detectMs = Date.now() - cutAt;
    console.log(`[figure] link cut → ClusterLink Connected=False/RemoteUnreachable in ${detectMs} ms (status interval 1 s)`);
    expect(detectMs).toBeLessThan(15_000);
    expect(down.message).toContain(`agent of pod ${POD}`);
    expect((await kube.linkCondition('to-us-west', 'Ready', { status: 'False' })).reason).toBe('RemoteUnreachable');

    const publisher = await east!.client({ clientId: 'east-pub' });
    clients.push(publisher);
    for (let i = 0; i < 5; i++) await publisher.publishAsync('alerts/a', `m${i}`, { qos: 1 });
    await sleep(2200);
    const queued = await eventually('the queue in the status', async () => {
      const s = (await kube.link('to-us-west'))?.status;
      return s?.queueDepth === 5 && (s.lagSeconds ?? 0) >= 2 ? s : undefined;
    }, 15_000);
    expect(queued.queueBytes).toBeGreaterThan(0);
    expect(queued.lastError).toBeDefined();
    expect((await agentLink('us-west'))?.queue?.depth).toBe(5);

    const received: string[] = [];
    westSub.on('message', (_t, payload) => received.push(payload.toString()));
    toWest!.restore();
    await kube.linkCondition('to-us-west', 'Connected', { status: 'True' }, 30_000);
    const drained = await eventually('the queue drained in the status', async () => {
      const s = (await kube.link('to-us-west'))?.status;
      return s?.queueDepth === 0 ? s : undefined;
    }, 15_000);
    expect(drained.lagSeconds).toBe(0);
    expect(Date.parse(drained.lastConnectedTime ?? '')).toBeGreaterThan(Date.parse(before ?? ''));
    await eventually('the 5 queued messages in us-west', async () => received.length >= 5);
    expect(received.slice(0, 5)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
  });

  it('turns Connected=False/AuthFailed when the link password is wrong, and back when it is right', async () => {
    await kube.mergePatch(kube.corePath('secrets', 'us-west-link'), { data: { password: b64('wrong-password') } });
    await eventually('the wrong password mounted', async () => readFileSync(path.join(east!.credentialsDir, 'us-west.password'), 'utf8') === 'wrong-password');
    toWest!.cut(); // the agent reads the password file on each connect
    const refused = await kube.linkCondition('to-us-west', 'Connected', { status: 'False', reason: 'AuthFailed' }, 30_000);
    expect(refused.message).toMatch(/Bad username or password|Not authorized/);
    expect((await kube.link('to-us-west'))?.status?.lastError).toMatch(/Connection refused/);

    await kube.mergePatch(kube.corePath('secrets', 'us-west-link'), { data: { password: b64(LINK_PASSWORD) } });
    await kube.linkCondition('to-us-west', 'Connected', { status: 'True', reason: 'Connected' }, 30_000);
  });

  it('reports a link the agent refuses as Misconfigured (remote servers of another cluster)', async () => {
    await kube.apply(clusterLinkManifest('to-emea', 'emea', [toWest!.address]));
    const misconfigured = await kube.linkCondition('to-emea', 'Connected', { status: 'False', reason: 'Misconfigured' }, 30_000);
    expect(misconfigured.message).toContain('belong to another cluster');
    // The agent keeps redialling a misconfigured link; it stays `misconfigured` until a handshake succeeds.
    await eventually('the agent reports emea misconfigured', async () => (await agentLink('emea'))?.state === 'misconfigured');
  });

  it('reports an agent that cannot apply its links file as Configured=False/LinksFileError while its running links go on', async () => {
    kubelet!.paused = true;
    const good = east!.mountedLinksFile();
    try {
      writeFileSync(east!.linksFile, 'links:\n  - name: [unclosed\n');
      const failed = await kube.linkCondition('to-us-west', 'Configured', { status: 'False', reason: 'LinksFileError' }, 30_000);
      expect(failed.message).toContain(`agent of pod ${POD} cannot apply the links file ${east!.linksFile}`);
      expect(failed.message).toContain('not valid YAML');
      expect((await kube.linkCondition('to-us-west', 'Ready', { status: 'False' })).reason).toBe('LinksFileError');
      expect((await kube.link('to-us-west'))?.status?.conditions?.find((c) => c.type === 'Connected')).toMatchObject({ status: 'True' });
      // The running link goes on (a loaded machine can make it redial once: connected again, not torn down).
      await eventually('the us-west link still runs', async () => (await agentLink('us-west'))?.state === 'connected');
    } finally {
      writeFileSync(east!.linksFile, good);
      kubelet!.paused = false;
    }
    await kube.linkCondition('to-us-west', 'Configured', { status: 'True', reason: 'Applied' }, 30_000);
    await kube.linkCondition('to-us-west', 'Ready', { status: 'True' }, 30_000);
  });

  it('removes the finalizer of a deleted ClusterLink only once the agent dropped the link', async () => {
    kubelet!.paused = true;
    await kube.kubectl(['delete', 'clusterlink', 'to-emea', '-n', NS, '--wait=false']);
    await eventually('emea out of the links ConfigMap', async () => {
      const cm = await kube.get<{ data?: Record<string, string> }>(kube.corePath('configmaps', 'us-east-links'));
      return !cm?.data?.['links.yaml']?.includes('name: emea');
    });
    await sleep(4000);
    // The kubelet has not updated the file: the agent still runs the link, so the object stays.
    expect(await agentLink('emea')).toBeDefined();
    const waiting = await kube.link('to-emea');
    expect(waiting?.metadata.deletionTimestamp).toBeDefined();
    expect(waiting?.metadata.finalizers).toEqual(['meridian.dev/link-cleanup']);
    const awaiting = (await kube.events('to-emea')).find((e) => e.reason === 'AwaitingAgents');
    expect(awaiting?.message).toContain(`still listed by the agents of ${POD}`);

    const resumedAt = Date.now();
    kubelet!.paused = false;
    let droppedAt = 0;
    await eventually('the agent drops emea', async () => (await agentLink('emea')) === undefined && (droppedAt = Date.now()) > 0);
    await eventually('to-emea gone', async () => (await kube.link('to-emea')) === undefined, 15_000);
    const goneAt = Date.now();
    console.log(`[figure] kubelet resumed → agent dropped the link in ${droppedAt - resumedAt} ms → ClusterLink gone ${goneAt - droppedAt} ms later`);
    expect((await kube.events('to-emea')).map((e) => e.reason)).toContain('LinkRemoved');
    expect(east!.mountedLinksFile()).not.toContain('name: emea');
    expect((await agentLink('us-west'))?.state).toBe('connected');
  });

  it('removes the finalizer after --link-removal-timeout with a Warning Event when the agent does not answer', async () => {
    await east!.stopSidecar();
    const deletedAt = Date.now();
    await kube.kubectl(['delete', 'clusterlink', 'to-us-west', '-n', NS, '--wait=false']);
    await sleep(5000);
    expect((await kube.link('to-us-west'))?.metadata.deletionTimestamp).toBeDefined();
    await eventually('to-us-west gone', async () => (await kube.link('to-us-west')) === undefined, (REMOVAL_TIMEOUT_S + 15) * 1000);
    const waitedMs = Date.now() - deletedAt;
    console.log(`[figure] agent down: finalizer removed ${waitedMs} ms after the delete (timeout ${REMOVAL_TIMEOUT_S} s)`);
    // deletionTimestamp has whole seconds: the timeout may end up to 1 s before 20 s after the request.
    expect(waitedMs).toBeGreaterThanOrEqual((REMOVAL_TIMEOUT_S - 2) * 1000);
    const warning = (await kube.events('to-us-west')).find((e) => e.reason === 'LinkRemovalUnconfirmed');
    expect(warning).toMatchObject({ type: 'Warning' });
    expect(warning?.message).toContain(`link agent of pod ${POD}`);
    expect(operator!.logs().filter((l) => l.level >= 50)).toEqual([]);
  });
});
