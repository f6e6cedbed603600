import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadBrokerConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/config/errors.js';

const dir = mkdtempSync(path.join(tmpdir(), 'meridian-config-'));
function file(yamlText: string): string {
  const f = path.join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(f, yamlText);
  return f;
}

function issuesOf(fn: () => unknown): { path: string; message: string }[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('broker configuration', () => {
  test('no file, no flags: safe local-only defaults', () => {
    const config = loadBrokerConfig({ env: {} });
    expect(config.listeners).toEqual([{ name: 'mqtt', protocol: 'mqtt', host: '127.0.0.1', port: 1883, path: '/mqtt' }]);
    expect(config.admin).toEqual({ host: '127.0.0.1', port: 8081 });
    expect(config.auth.allowAnonymous).toBeUndefined();
    expect(config.node.dataDir).toBe(path.join('data', config.node.name));
    expect(config.store.durability).toBe('durable');
  });

  test('precedence: defaults < file < env < flags', () => {
    const f = file('node: { name: from-file }\nadmin: { port: 9000 }\nlisteners: [{ name: mqtt, protocol: mqtt, port: 1000 }]\n');
    const config = loadBrokerConfig({
      file: f,
      env: { MERIDIAN_ADMIN_PORT: '9001', MERIDIAN_MQTT_PORT: '2000' },
      flags: { 'mqtt-port': '3000', 'node-name': 'from-flag' },
    });
    expect(config.node.name).toBe('from-flag');
    expect(config.admin.port).toBe(9001);
    expect(config.listeners[0]?.port).toBe(3000);
    expect(config.node.dataDir).toBe(path.join('data', 'from-flag'));
  });

  test('an unknown key is rejected with its path', () => {
    expect(issuesOf(() => loadBrokerConfig({ file: file('limits: { maxPacketSiz: 10 }\n') }))).toEqual([
      { path: 'limits.maxPacketSiz', message: 'unknown key' },
    ]);
  });

  test('a wrong type is rejected with its path', () => {
    const issues = issuesOf(() => loadBrokerConfig({ file: file('listeners: [{ name: mqtt, protocol: mqtt, port: "x" }]\n') }));
    expect(issues).toContainEqual({ path: 'listeners[0].port', message: 'must be integer' });
  });

  test('a TLS listener without tls settings is rejected', () => {
    const issues = issuesOf(() => loadBrokerConfig({ file: file('listeners: [{ name: secure, protocol: mqtts, port: 8883 }]\n') }));
    expect(issues).toContainEqual({ path: 'listeners[1]', message: "missing required key 'tls'" });
  });

  test('a bad flag value names the flag', () => {
    expect(issuesOf(() => loadBrokerConfig({ flags: { 'admin-port': 'eighty' } }))).toEqual([
      { path: '--admin-port', message: "expected an integer, got 'eighty'" },
    ]);
  });

  test('a bad env value names the variable', () => {
    expect(issuesOf(() => loadBrokerConfig({ env: { MERIDIAN_ALLOW_ANONYMOUS: 'maybe' } }))).toEqual([
      { path: 'MERIDIAN_ALLOW_ANONYMOUS', message: "expected boolean, got 'maybe'" },
    ]);
  });

  test('overlapping tenant mountpoints are rejected', () => {
    const issues = issuesOf(() => loadBrokerConfig({ file: file('auth: { tenants: [{ name: a, mountpoint: "t/" }, { name: b, mountpoint: "t/b/" }] }\n') }));
    expect(issues[0]?.path).toBe('auth.tenants[1].mountpoint');
    expect(issues[0]?.message).toMatch(/overlaps/);
  });

  test('tenant mountpoints default to <name>/', () => {
    const config = loadBrokerConfig({ file: file('auth: { tenants: [{ name: acme }] }\n') });
    expect(config.auth.tenants[0]?.mountpoint).toBe('acme/');
  });

  test('duplicate listener ports are rejected', () => {
    const issues = issuesOf(() => loadBrokerConfig({ file: file('listeners: [{ name: a, protocol: mqtt, port: 1883 }, { name: b, protocol: ws, port: 1883 }]\n') }));
    expect(issues).toContainEqual({ path: 'listeners[1].port', message: 'port 1883 on 127.0.0.1 is already used by another listener' });
  });

  test('unreadable file and bad YAML give clear errors', () => {
    expect(issuesOf(() => loadBrokerConfig({ file: path.join(dir, 'missing.yaml') }))[0]?.message).toMatch(/cannot read/);
    expect(issuesOf(() => loadBrokerConfig({ file: file('node: [unclosed\n') }))[0]?.path).toBe('(yaml)');
  });
});

describe('cluster settings', () => {
  test('seeds and discovery come from flags', () => {
    const config = loadBrokerConfig({ flags: { role: 'replicant', seeds: '127.0.0.1:4370, 127.0.0.2:4370', 'cluster-secret-file': '/s', discovery: 'dns:meridian-headless' } });
    expect(config.cluster.seeds).toEqual(['127.0.0.1:4370', '127.0.0.2:4370']);
    expect(config.cluster.discoveryDns).toBe('meridian-headless');
    expect(config.cluster.role).toBe('replicant');
    expect(config.cluster.routeTtlSeconds).toBe(15);
  });

  test('a replicant without seeds or discovery is rejected', () => {
    expect(issuesOf(() => loadBrokerConfig({ flags: { role: 'replicant', 'cluster-secret-file': '/s' } })))
      .toContainEqual({ path: 'cluster.seeds', message: 'a replicant needs seeds or DNS discovery to find the cores' });
  });

  test('clustering without a secret file is rejected', () => {
    expect(issuesOf(() => loadBrokerConfig({ flags: { 'cluster-port': '4370' } })))
      .toEqual([{ path: 'cluster.secretFile', message: 'required when clustering is enabled (nodes authenticate each other with it)' }]);
  });

  test('a discovery flag must name a DNS record', () => {
    expect(issuesOf(() => loadBrokerConfig({ flags: { discovery: 'k8s:foo' } })))
      .toEqual([{ path: '--discovery', message: "expected dns:<name>, got 'k8s:foo'" }]);
  });

  test('a malformed seed is rejected with its index', () => {
    const issues = issuesOf(() => loadBrokerConfig({ flags: { seeds: 'host-without-port', 'cluster-secret-file': '/s' } }));
    expect(issues[0]?.path).toBe('cluster.seeds[0]');
  });
});
