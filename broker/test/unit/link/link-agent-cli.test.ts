import { UsageError } from '../../../src/cli/flags.js';
import { linkAgentSettings } from '../../../src/cli/link-agent.js';

const required = { links: '/etc/links.yaml', 'cluster-name': 'us-east', seeds: '10.0.0.1:4370, 10.0.0.2:4370', 'cluster-secret-file': '/s', 'cluster-advertise': '10.0.0.9:4371' };

describe('meridian link-agent flags', () => {
  test('defaults: node name from the host, data dir from the node name, admin 8082, cluster port 4371', () => {
    const s = linkAgentSettings({ ...required, 'node-name': 'agent-0' });
    expect(s).toMatchObject({
      links: '/etc/links.yaml', clusterName: 'us-east', seeds: ['10.0.0.1:4370', '10.0.0.2:4370'], secretFile: '/s', nodeName: 'agent-0',
      dataDir: 'data/agent-0', adminHost: '127.0.0.1', adminPort: 8082, clusterHost: '0.0.0.0', clusterPort: 4371,
      advertise: '10.0.0.9:4371', routeTtlSeconds: 15, durability: 'durable', logLevel: 'info',
    });
    expect(linkAgentSettings(required).nodeName).toMatch(/^link-agent-/);
  });

  test.each(['links', 'cluster-name', 'seeds', 'cluster-secret-file'])('--%s is required', (flag) => {
    const flags: Record<string, string> = { ...required };
    delete flags[flag];
    expect(() => linkAgentSettings(flags)).toThrow(new UsageError(`--${flag} is required`));
  });

  test('a wildcard cluster host needs an advertised address; bad numbers and modes name the flag', () => {
    const { 'cluster-advertise': _advertise, ...noAdvertise } = required;
    expect(() => linkAgentSettings(noAdvertise)).toThrow(/--cluster-advertise is required/);
    expect(linkAgentSettings({ ...noAdvertise, 'cluster-host': '127.0.0.1' }).advertise).toBeUndefined();
    expect(() => linkAgentSettings({ ...required, 'admin-port': '70000' })).toThrow(/--admin-port must be an integer in 0..65535/);
    expect(() => linkAgentSettings({ ...required, 'route-ttl': '0' })).toThrow(/--route-ttl/);
    expect(() => linkAgentSettings({ ...required, durability: 'maybe' })).toThrow(/--durability/);
    expect(() => linkAgentSettings({ ...required, 'log-level': 'loud' })).toThrow(/--log-level/);
  });
});
