import { withClusterLinkDefaults } from '../../../src/api/defaults.js';
import type { ClusterLink } from '../../../src/api/types.js';
import { clusterLinkStatus, linkSecretProblems, type LinkObservation } from '../../../src/controller/link-status.js';
import { exampleLink, fullClusterLink } from '../../fixtures/resources.js';

const NOW = '2025-06-01T00:00:00.000Z';
const link = (extra: Partial<ClusterLink['spec']> = {}): ClusterLink => withClusterLinkDefaults(exampleLink('to-emea', 'us-east', 'emea', extra));
const observe = (extra: Partial<LinkObservation>): LinkObservation => ({
  link: link(),
  placement: { kind: 'included', configMap: 'us-east-links' },
  secretProblems: [],
  runtime: undefined,
  brokersAnswered: false,
  now: NOW,
  ...extra,
});
const summary = (obs: LinkObservation) => clusterLinkStatus(obs).conditions?.map((c) => `${c.type}=${c.status}/${c.reason}`);

describe('ClusterLink status', () => {
  it('is Unknown (LinkStatusUnavailable) while no broker answers, configured and resolved otherwise', () => {
    expect(summary(observe({}))).toEqual(['Ready=Unknown/LinkStatusUnavailable', 'Connected=Unknown/LinkStatusUnavailable', 'Configured=True/Applied', 'SecretsResolved=True/Resolved']);
    expect(clusterLinkStatus(observe({}))).toMatchObject({ clusterRef: 'us-east', remoteClusterName: 'emea', observedGeneration: 1 });
  });

  it('follows the brokers: connected, or failing with their reason', () => {
    const connected = observe({ brokersAnswered: true, runtime: { name: 'emea', state: 'Connected', routesSent: 4, lastConnectedTime: NOW } });
    expect(summary(connected)?.slice(0, 2)).toEqual(['Ready=True/Connected', 'Connected=True/Connected']);
    expect(clusterLinkStatus(connected)).toMatchObject({ state: 'Connected', routesSent: 4, lastConnectedTime: NOW });
    const refused = observe({ brokersAnswered: true, runtime: { name: 'emea', state: 'Disconnected', reason: 'AuthFailed', message: 'bad password' } });
    expect(summary(refused)?.slice(0, 2)).toEqual(['Ready=False/AuthFailed', 'Connected=False/AuthFailed']);
    expect(clusterLinkStatus(refused).lastError).toBe('bad password');
    const noReason = observe({ brokersAnswered: true, runtime: { name: 'emea', state: 'Connecting' } });
    expect(summary(noReason)?.[1]).toBe('Connected=False/RemoteUnreachable');
    expect(summary(observe({ brokersAnswered: true }))?.[1]).toBe('Connected=Unknown/LinkStatusUnavailable');
  });

  it('is not ready when disabled', () => {
    expect(summary(observe({ link: link({ enabled: false }), brokersAnswered: true }))?.slice(0, 2)).toEqual(['Ready=False/Disabled', 'Connected=False/Disabled']);
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
