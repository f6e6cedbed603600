import type { V1Pod } from '@kubernetes/client-node';
import { mergeAgentPolls, parseAgentReport, podsListing, type AgentPoll } from '../../../src/controller/link-agents.js';
import { agentEndpoints } from '../../../src/controller/reconciler.js';

/** A running link as `meridian link-agent` reports it (broker/src/link/link.ts `status()`), with extra fields. */
const running = (name: string, state: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  name,
  state,
  lastError: null,
  server: '10.0.0.9:1883',
  actor: 'a1',
  incarnation: 3,
  routeSync: 'live',
  routesSent: 2,
  routesReceived: 5,
  routesRestored: 0,
  remoteAgents: 1,
  bootstraps: 1,
  lastBootstrapAt: null,
  queue: { depth: 0, bytes: 0, maxBytes: 1024, oldestAgeMs: 0, whenFull: 'block' },
  forwarded: 7,
  received: 9,
  deduplicated: 0,
  bytesOut: 1,
  bytesIn: 2,
  ...extra,
});
const body = (links: unknown[]): Record<string, unknown> => ({ cluster: 'us-east', node: 'us-east-core-0-link', file: '/etc/links.yaml', fileError: null, links });
const endpoint = (pod: string) => ({ pod, host: '127.0.0.1', port: 8082 });
const poll = (pod: string, links: unknown[]): AgentPoll => ({ endpoint: endpoint(pod), report: parseAgentReport(body(links)) });

describe('the link agents\' /api/v1/links', () => {
  it('parses what the agent serves: running, misconfigured and disabled entries; extra fields ignored', () => {
    const report = parseAgentReport(body([
      running('us-west', 'connected', { queue: { depth: 3, bytes: 300, maxBytes: 1024, oldestAgeMs: 2500, whenFull: 'block' } }),
      { name: 'emea', state: 'misconfigured', lastError: 'links[1].servers: must not be empty' },
      { name: 'apac', state: 'disabled', lastError: null },
    ]));
    expect(report).toEqual({
      node: 'us-east-core-0-link',
      fileError: null,
      links: [
        { name: 'us-west', state: 'connected', lastError: null, role: 'active', figures: { routesSent: 2, routesReceived: 5, queueDepth: 3, queueBytes: 300, oldestAgeMs: 2500 } },
        { name: 'emea', state: 'misconfigured', lastError: 'links[1].servers: must not be empty', role: 'active' },
        { name: 'apac', state: 'disabled', lastError: null, role: 'active' },
      ],
    });
    expect(parseAgentReport(body([running('a', 'connecting', { role: 'standby' })])).links[0]?.role).toBe('standby');
  });

  it.each([
    [null, 'response is not an object'],
    [{ links: 'x' }, 'response.links: expected an array, got "x"'],
    [body([1]), 'response.links[0] is not an object'],
    [body([{ state: 'connected' }]), 'response.links[0].name: expected a non-empty string, got undefined'],
    [body([running('a', 'Connected')]), 'response.links[0].state: "Connected" is not one of connecting, connected, disconnected, misconfigured, disabled'],
    [body([running('a', 'connected', { lastError: 5 })]), 'response.links[0].lastError: expected a string or null, got 5'],
    [body([running('a', 'connected', { role: 'leader' })]), 'response.links[0].role: "leader" is not active or standby'],
    [body([running('a', 'connected', { routesSent: -1 })]), 'response.links[0].routesSent: expected a non-negative number, got -1'],
    [body([running('a', 'disconnected', { queue: undefined })]), 'response.links[0].queue is not an object'],
    [body([running('a', 'connected', { queue: { depth: 1, bytes: 2 } })]), 'response.links[0].queue.oldestAgeMs: expected a non-negative number, got undefined'],
    [{ ...body([]), fileError: 3 }, 'response.fileError: expected an object, a string or null, got 3'],
    [{ ...body([]), fileError: { path: '/etc/links.yaml' } }, 'response.fileError.reason: expected a non-empty string, got undefined'],
    [{ ...body([]), fileError: { path: 7, reason: 'x' } }, 'response.fileError.path: expected a string or null, got 7'],
    [{ ...body([]), fileError: { path: '/l', reason: 'x', since: 'yesterday' } }, 'response.fileError.since: expected an ISO time or null, got "yesterday"'],
    [body([running('a', 'connected', { connectedSince: 12 })]), 'response.links[0].connectedSince: expected an ISO time or null, got 12'],
  ])('rejects %j naming the field', (input, message) => {
    expect(() => parseAgentReport(input)).toThrow(message);
  });

  it('reads the links-file error (object, or the string of older agents) and connectedSince (absent from older agents)', () => {
    const since = '2025-06-01T00:00:00.000Z';
    const report = parseAgentReport({ ...body([running('a', 'connected', { connectedSince: since }), running('b', 'disconnected', { connectedSince: null }), running('c', 'connected')]),
      fileError: { path: '/etc/links.yaml', reason: 'not valid YAML: bad indentation', since } });
    expect(report.fileError).toEqual({ path: '/etc/links.yaml', reason: 'not valid YAML: bad indentation', since });
    expect(report.links.map((l) => l.connectedSince)).toEqual([since, null, undefined]);
    expect(parseAgentReport({ ...body([]), fileError: '/etc/links.yaml: (file): not valid YAML' }).fileError).toEqual({ path: null, reason: '/etc/links.yaml: (file): not valid YAML', since: null });
    const withError = { endpoint: endpoint('core-1'), report: { ...parseAgentReport(body([running('a', 'connected', { connectedSince: since })])), fileError: { path: '/l', reason: 'r', since: null } } };
    const merged = mergeAgentPolls([poll('core-0', [running('a', 'disconnected', { role: 'standby' })]), withError]);
    expect([...merged.fileErrors]).toEqual([['core-1', { path: '/l', reason: 'r', since: null }]]);
    expect(merged.links.get('a')).toMatchObject({ agentPod: 'core-1', connectedSince: since });
    expect(mergeAgentPolls([poll('core-0', [running('a', 'connected')])]).links.get('a')).not.toHaveProperty('connectedSince');
  });

  it('merges the agents: the active agent\'s report counts, queues add up, no active agent is visible', () => {
    const merged = mergeAgentPolls([
      poll('core-0', [running('us-west', 'disconnected', { role: 'standby', lastError: 'old', queue: { depth: 4, bytes: 40, oldestAgeMs: 9000 } }), running('emea', 'connected', { role: 'active' })]),
      poll('core-1', [running('us-west', 'connecting', { role: 'active', lastError: 'x:1: connect ECONNREFUSED', routesSent: 7, queue: { depth: 1, bytes: 10, oldestAgeMs: 100 } }), running('emea', 'disconnected', { role: 'standby' })]),
      { endpoint: endpoint('core-2'), error: 'link agent of pod core-2 (127.0.0.1:8082): connect ECONNREFUSED' },
    ]);
    expect(merged.answered).toBe(2);
    expect([...merged.failed.keys()]).toEqual(['core-2']);
    expect(merged.links.get('us-west')).toEqual({
      name: 'us-west', state: 'connecting', lastError: 'x:1: connect ECONNREFUSED', agentPod: 'core-1', activeAgents: 1, standbyAgents: 1,
      routesSent: 7, routesReceived: 5, queueDepth: 5, queueBytes: 50, oldestAgeMs: 9000,
    });
    expect(merged.links.get('emea')).toMatchObject({ state: 'connected', agentPod: 'core-0', activeAgents: 1, standbyAgents: 1 });
    const standbyOnly = mergeAgentPolls([poll('core-0', [running('us-west', 'disconnected', { role: 'standby' })])]);
    expect(standbyOnly.links.get('us-west')).toMatchObject({ activeAgents: 0, standbyAgents: 1 });
  });

  it('of agents without roles (each active) keeps the best state', () => {
    const merged = mergeAgentPolls([poll('c0', [running('a', 'disconnected', { lastError: 'e' })]), poll('c1', [running('a', 'connected')])]);
    expect(merged.links.get('a')).toMatchObject({ state: 'connected', agentPod: 'c1', activeAgents: 2 });
  });

  it('tells which agents still list a link', () => {
    const polls = [poll('c0', [running('a', 'connected')]), poll('c1', []), { endpoint: endpoint('c2'), error: 'down' }];
    expect(podsListing(polls, 'a')).toEqual(['c0']);
    expect(podsListing(polls, 'b')).toEqual([]);
  });

  it('asks the agent port of running core pods with an IP', () => {
    const pod = (name: string, component: string, ready: boolean, ip?: string, phase = 'Pending'): V1Pod => ({
      metadata: { name, labels: { 'app.kubernetes.io/component': component } },
      status: { phase, podIP: ip, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
    }) as V1Pod;
    const pods = [pod('c0', 'core', true, '10.0.0.1'), pod('c1', 'core', false, '10.0.0.2', 'Running'), pod('c2', 'core', false, '10.0.0.4'), pod('c3', 'core', true), pod('r0', 'replicant', true, '10.0.0.3')];
    expect(agentEndpoints(pods, 8082)).toEqual([{ pod: 'c0', host: '10.0.0.1', port: 8082 }, { pod: 'c1', host: '10.0.0.2', port: 8082 }]);
  });
});
