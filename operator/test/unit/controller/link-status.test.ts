import { withClusterLinkDefaults } from '../../../src/api/defaults.js';
import type { ClusterLink } from '../../../src/api/types.js';
import type { MergedLinkStatus } from '../../../src/controller/link-agents.js';
import { clusterLinkStatus, linkSecretProblems, type LinkObservation } from '../../../src/controller/link-status.js';
import { exampleLink, fullClusterLink } from '../../fixtures/resources.js';

const NOW = '2025-06-01T00:00:00.000Z';
const link = (extra: Partial<ClusterLink['spec']> = {}): ClusterLink => withClusterLinkDefaults(exampleLink('to-emea', 'us-east', 'emea', extra));
const observe = (extra: Partial<LinkObservation>): LinkObservation => ({
  link: link(),
  placement: { kind: 'included', configMap: 'us-east-links' },
  secretProblems: [],
  runtime: undefined,
  agentsAnswered: false,
  now: NOW,
  ...extra,
});
const summary = (obs: LinkObservation) => clusterLinkStatus(obs).conditions?.map((c) => `${c.type}=${c.status}/${c.reason}`);

describe('ClusterLink status', () => {
  it('is Unknown (LinkStatusUnavailable) while no broker answers, configured and resolved otherwise', () => {
    expect(summary(observe({}))).toEqual(['Ready=Unknown/LinkStatusUnavailable', 'Connected=Unknown/LinkStatusUnavailable', 'Configured=True/Applied', 'SecretsResolved=True/Resolved']);
    expect(clusterLinkStatus(observe({}))).toMatchObject({ clusterRef: 'us-east', remoteClusterName: 'emea', observedGeneration: 1 });
  });

  it('follows the link agents: connected, or failing with a reason derived from their lastError', () => {
    const agent = (state: MergedLinkStatus['state'], extra: Partial<MergedLinkStatus> = {}): MergedLinkStatus => ({
      name: 'emea', state, lastError: null, agentPod: 'core-0', activeAgents: 1, standbyAgents: 0, ...extra,
    });
    const connected = observe({ agentsAnswered: true, runtime: agent('connected', { routesSent: 4, routesReceived: 2, queueDepth: 3, queueBytes: 30, oldestAgeMs: 2900 }) });
    expect(summary(connected)?.slice(0, 2)).toEqual(['Ready=True/Connected', 'Connected=True/Connected']);
    expect(clusterLinkStatus(connected)).toMatchObject({ state: 'connected', activeAgent: 'core-0', routesSent: 4, routesReceived: 2, queueDepth: 3, queueBytes: 30, lagSeconds: 2, lastConnectedTime: NOW });
    const refused = observe({ agentsAnswered: true, runtime: agent('connecting', { lastError: '10.0.0.9:1883: Connection refused: Bad username or password' }) });
    expect(summary(refused)?.slice(0, 2)).toEqual(['Ready=False/AuthFailed', 'Connected=False/AuthFailed']);
    expect(clusterLinkStatus(refused).lastError).toBe('10.0.0.9:1883: Connection refused: Bad username or password');
    const notAuthorized = observe({ agentsAnswered: true, runtime: agent('disconnected', { lastError: 'x: Connection refused: Not authorized' }) });
    expect(summary(notAuthorized)?.[1]).toBe('Connected=False/AuthFailed');
    const unreachable = observe({ agentsAnswered: true, runtime: agent('disconnected', { lastError: '10.0.0.9:1883: connect ECONNREFUSED 10.0.0.9:1883' }) });
    expect(summary(unreachable)?.[1]).toBe('Connected=False/RemoteUnreachable');
    expect(summary(observe({ agentsAnswered: true, runtime: agent('disconnected') }))?.[1]).toBe('Connected=False/RemoteUnreachable');
    expect(summary(observe({ agentsAnswered: true, runtime: agent('connecting') }))?.[1]).toBe('Connected=False/Connecting');
    expect(summary(observe({ agentsAnswered: true, runtime: agent('misconfigured', { lastError: 'servers: empty' }) }))?.[1]).toBe('Connected=False/Misconfigured');
    const redialling = agent('connecting', { lastError: 'the servers of link "emea" belong to another cluster: the link name must be the remote\'s cluster name' });
    expect(summary(observe({ agentsAnswered: true, runtime: redialling }))?.[1]).toBe('Connected=False/Misconfigured');
    expect(summary(observe({ agentsAnswered: true, runtime: agent('disabled') }))?.[1]).toBe('Connected=False/Disabled');
    expect(summary(observe({ agentsAnswered: true, runtime: agent('connected', { activeAgents: 0, standbyAgents: 2 }) }))?.[1]).toBe('Connected=False/NoActiveAgent');
    expect(summary(observe({ agentsAnswered: true }))?.[1]).toBe('Connected=Unknown/LinkStatusUnavailable');
  });

  it('keeps lastConnectedTime as the time the operator saw the link become connected', () => {
    const agent = (state: MergedLinkStatus['state']): MergedLinkStatus => ({ name: 'emea', state, lastError: state === 'connected' ? null : 'e', agentPod: 'c0', activeAgents: 1, standbyAgents: 0 });
    const at = (state: MergedLinkStatus['state'], previous: ClusterLink['status'], now: string) =>
      clusterLinkStatus(observe({ link: { ...link(), status: previous }, agentsAnswered: true, runtime: agent(state), now })).lastConnectedTime;
    const t1 = '2025-06-01T00:01:00.000Z';
    expect(at('connected', { state: 'connected', lastConnectedTime: NOW }, t1)).toBe(NOW);
    expect(at('connected', { state: 'disconnected', lastConnectedTime: NOW }, t1)).toBe(t1);
    expect(at('disconnected', { state: 'connected', lastConnectedTime: NOW }, t1)).toBe(NOW);
    expect(at('disconnected', {}, t1)).toBeUndefined();
  });

  it('takes lastConnectedTime from the agent\'s connectedSince when it reports one', () => {
    const since = '2025-05-31T23:59:00.000Z';
    const runtime = (state: MergedLinkStatus['state'], connectedSince: string | null): MergedLinkStatus =>
      ({ name: 'emea', state, lastError: state === 'connected' ? null : 'e', agentPod: 'c0', activeAgents: 1, standbyAgents: 0, connectedSince });
    const at = (r: MergedLinkStatus, previous: ClusterLink['status']) =>
      clusterLinkStatus(observe({ link: { ...link(), status: previous }, agentsAnswered: true, runtime: r, now: NOW })).lastConnectedTime;
    expect(at(runtime('connected', since), {})).toBe(since);
    // A reconnect the operator did not see between two status passes still moves it.
    expect(at(runtime('connected', since), { state: 'connected', lastConnectedTime: '2025-05-01T00:00:00.000Z' })).toBe(since);
    expect(at(runtime('disconnected', null), { state: 'connected', lastConnectedTime: since })).toBe(since);
    expect(at(runtime('disconnected', null), {})).toBeUndefined();
  });

  it('reports an agent that cannot apply its links file as Configured=False/LinksFileError, with pod, path and reason', () => {
    const fileErrors = new Map([['core-1', { path: '/etc/meridian/links/links.yaml', reason: 'not valid YAML: bad indentation', since: '2025-05-31T23:00:00.000Z' }],
      ['core-0', { path: null, reason: 'cannot read the file: EACCES', since: null }]]);
    const running: MergedLinkStatus = { name: 'emea', state: 'connected', lastError: null, agentPod: 'core-0', activeAgents: 1, standbyAgents: 0, connectedSince: NOW };
    const listed = clusterLinkStatus(observe({ agentsAnswered: true, runtime: running, agentFileErrors: fileErrors }));
    expect(listed.conditions?.map((c) => `${c.type}=${c.status}/${c.reason}`)).toEqual(['Ready=False/LinksFileError', 'Connected=True/Connected', 'Configured=False/LinksFileError', 'SecretsResolved=True/Resolved']);
    expect(listed.conditions?.[2]?.message).toBe('agent of pod core-0 cannot apply the links file: cannot read the file: EACCES; '
      + 'agent of pod core-1 cannot apply the links file /etc/meridian/links/links.yaml (since 2025-05-31T23:00:00.000Z): not valid YAML: bad indentation; '
      + 'the agents keep running the previous links file');
    expect(listed).toMatchObject({ state: 'connected', lastConnectedTime: NOW });
    // A new link the broken file was meant to add: not listed, and the reason says why.
    expect(summary(observe({ agentsAnswered: true, agentFileErrors: fileErrors }))?.slice(0, 3)).toEqual(['Ready=False/LinksFileError', 'Connected=Unknown/LinksFileError', 'Configured=False/LinksFileError']);
    // A link the operator left out keeps its own reason.
    const skipped = observe({ placement: { kind: 'skipped', skipped: { link: 'to-emea', reason: 'SecretNotFound', message: 'Secret x not found' } }, agentFileErrors: fileErrors });
    expect(summary(skipped)?.[2]).toBe('Configured=False/SecretNotFound');
    expect(summary(observe({ agentsAnswered: true, runtime: running, agentFileErrors: new Map() }))?.[2]).toBe('Configured=True/Applied');
  });

  it('is not ready when disabled', () => {
    expect(summary(observe({ link: link({ enabled: false }), agentsAnswered: true }))?.slice(0, 2)).toEqual(['Ready=False/Disabled', 'Connected=False/Disabled']);
  });

  it('carries the reason a link was left out, and does not accept an invalid spec as the immutable baseline', () => {
    const skipped = observe({ placement: { kind: 'skipped', skipped: { link: 'to-emea', reason: 'SecretNotFound', message: 'Secret x not found' } }, secretProblems: ['Secret x not found'] });
    expect(summary(skipped)).toEqual(['Ready=False/SecretNotFound', 'Connected=False/NotConfigured', 'Configured=False/SecretNotFound', 'SecretsResolved=False/SecretNotFound']);
    const invalid = clusterLinkStatus(observe({ placement: { kind: 'invalid', issues: [{ path: 'spec.topics[0]', message: 'bad', reason: 'InvalidTopics' }] } }));
    expect(invalid.conditions?.[2]).toMatchObject({ type: 'Configured', status: 'False', reason: 'InvalidTopics', message: 'spec.topics[0]: bad' });
    expect(invalid.clusterRef).toBeUndefined();
    expect(summary(observe({ placement: { kind: 'clusterMissing', cluster: 'us-east' } }))?.[2]).toBe('Configured=False/ClusterNotFound');
  });

  it('finds missing Secrets and keys', () => {
    const full = withClusterLinkDefaults(fullClusterLink());
    expect(linkSecretProblems(full, { 'emea-link': { password: 'cA==' }, 'emea-link-cert': { 'tls.crt': 'Yw==' } })).toEqual([
      'Secret emea-link-cert has no key tls.key',
      'Secret emea-ca not found',
    ]);
    expect(linkSecretProblems(link(), {})).toEqual([]);
  });
});
