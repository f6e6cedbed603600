import { operatorConfigFromFlags, parseDurationMs, UsageError } from '../../../src/cli.js';

describe('meridian operator flags', () => {
  it('accepts the flags the Helm chart passes', () => {
    const config = operatorConfigFromFlags(
      {
        'log-level': 'info',
        'health-port': '8090',
        'watch-namespaces': 'team-a,team-b',
        'leader-election': 'true',
        'leader-election-namespace': 'meridian-system',
        'leader-election-lease': 'meridian-operator',
        'leader-election-lease-duration': '15',
        'leader-election-renew-deadline': '10',
        'leader-election-retry-period': '2',
        'link-agent-admin-port': '8082',
        'link-status-interval': '30s',
        'link-removal-timeout': '60s',
      },
      { POD_NAME: 'meridian-operator-abc' },
    );
    expect(config).toMatchObject({
      logLevel: 'info',
      namespaces: ['team-a', 'team-b'],
      health: { host: '0.0.0.0', port: 8090 },
      leaderElection: { namespace: 'meridian-system', name: 'meridian-operator', leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2000 },
      linkAgentAdminPort: 8082,
      linkStatusIntervalMs: 30_000,
      linkRemovalTimeoutMs: 60_000,
    });
    expect(config.leaderElection?.identity).toMatch(/^meridian-operator-abc_[0-9a-f]{8}$/);
  });

  it('runs without leader election when told, and defaults the rest', () => {
    const config = operatorConfigFromFlags({ 'leader-election': 'false' }, {});
    expect(config.leaderElection).toBeUndefined();
    expect(config).toMatchObject({ namespaces: [], workers: 2, resyncPeriodMs: 600_000, clusterDomain: 'cluster.local', linkAgentAdminPort: 8082, linkStatusIntervalMs: 30_000, linkRemovalTimeoutMs: 60_000 });
  });

  it.each([
    [{ 'leader-election': 'yes' }, "--leader-election: 'yes' is not true or false"],
    [{ 'log-level': 'loud' }, "--log-level: 'loud' is not one of"],
    [{ 'watch-namespaces': 'Team_A' }, "--watch-namespaces: 'Team_A' is not a namespace name"],
    [{ 'health-port': '70000' }, "--health-port: '70000' is not an integer in [0, 65535]"],
    [{ 'leader-election-renew-deadline': '20' }, 'retry period < renew deadline < lease duration'],
    [{ 'link-agent-admin-port': '0' }, "--link-agent-admin-port: '0' is not an integer in [1, 65535]"],
    [{ 'link-removal-timeout': 'soon' }, "--link-removal-timeout: 'soon' is not a duration"],
  ])('refuses %j', (flags, message) => {
    expect(() => operatorConfigFromFlags(flags, {})).toThrow(UsageError);
    expect(() => operatorConfigFromFlags(flags, {})).toThrow(message);
  });

  it('reads durations in seconds by default, or with a unit', () => {
    expect(['15', '0.5', '500ms', '15s', '10m'].map((d) => parseDurationMs('x', d))).toEqual([15_000, 500, 500, 15_000, 600_000]);
    expect(() => parseDurationMs('x', '1h')).toThrow("--x: '1h' is not a duration");
    expect(() => parseDurationMs('x', '0')).toThrow('--x must be positive');
  });
});
