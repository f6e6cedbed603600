import { mergeLinkReports, parseLinksResponse } from '../../../src/controller/broker-links.js';
import { brokerEndpoints } from '../../../src/controller/reconciler.js';
import type { V1Pod } from '@kubernetes/client-node';

describe('the brokers\' /api/v1/links', () => {
  it('parses a report, dropping malformed optional fields', () => {
    expect(parseLinksResponse({ links: [{ name: 'emea', state: 'Disconnected', reason: 'AuthFailed', message: 'no', routesSent: 3.7, queueDepth: -1, lastConnectedTime: '2025-01-01T00:00:00Z', extra: 1 }] })).toEqual([
      { name: 'emea', state: 'Disconnected', reason: 'AuthFailed', message: 'no', routesSent: 3, lastConnectedTime: '2025-01-01T00:00:00.000Z' },
    ]);
    expect(parseLinksResponse({ links: [{ name: 'x', state: 'Connected', reason: 'not a reason!' }] })).toEqual([{ name: 'x', state: 'Connected' }]);
  });

  it.each([
    [{}, 'response has no "links" array'],
    [{ links: [1] }, 'links[0] is not an object'],
    [{ links: [{ state: 'Connected' }] }, 'links[0].name is missing'],
    [{ links: [{ name: 'a', state: 'Up' }] }, "links[0].state 'Up' is not one of"],
  ])('rejects %j', (body, message) => {
    expect(() => parseLinksResponse(body)).toThrow(message);
  });

  it('merges reports of several brokers, keeping the best state of each link', () => {
    const merged = mergeLinkReports([
      [{ name: 'a', state: 'Disconnected', reason: 'RemoteUnreachable' }, { name: 'b', state: 'Connected' }],
      [{ name: 'a', state: 'Connected', routesSent: 2 }, { name: 'b', state: 'Connecting' }],
    ]);
    expect(merged.get('a')).toEqual({ name: 'a', state: 'Connected', routesSent: 2 });
    expect(merged.get('b')?.state).toBe('Connected');
  });

  it('asks only ready core pods with an IP', () => {
    const pod = (name: string, component: string, ready: boolean, ip?: string): V1Pod => ({
      metadata: { name, labels: { 'app.kubernetes.io/component': component } },
      status: { podIP: ip, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
    }) as V1Pod;
    const pods = [pod('c0', 'core', true, '10.0.0.1'), pod('c1', 'core', false, '10.0.0.2'), pod('c2', 'core', true), pod('r0', 'replicant', true, '10.0.0.3')];
    expect(brokerEndpoints(pods, 8081)).toEqual([{ pod: 'c0', host: '10.0.0.1', port: 8081 }]);
  });
});
