import { loadRegionManifest, localizeArgs, renderedContainerArgs, renderLocalLinks, renderLocalNodeConfig } from '../harness/render.js';

describe('e2e harness: local processes from the operator rendering of e2e/manifests', () => {
  const manifest = loadRegionManifest('us-east');
  const rendered = renderedContainerArgs(manifest.cluster);
  const local = { podName: 'us-east-core-0', configFile: '/w/core-0.yaml', linksFile: '/w/links.yaml', secretFile: '/w/secret', dataDir: '/w/agent', clusterPort: 21000, adminPort: 21001, seeds: '127.0.0.1:21000,127.0.0.1:21002' };

  it('maps the rendered broker args to local paths, addresses and seeds, keeping the rest', () => {
    expect(localizeArgs(rendered.core, local, 'core-0')).toEqual([
      'broker', '--config=/w/core-0.yaml', '--role=core', '--node-name=us-east-core-0', '--cluster-name=us-east',
      '--cluster-host=127.0.0.1', '--cluster-port=21000', '--cluster-advertise=127.0.0.1:21000',
      '--seeds=127.0.0.1:21000,127.0.0.1:21002', '--cluster-secret-file=/w/secret',
    ]);
    expect(localizeArgs(rendered.replicant, local, 'replicant-0')).toContain('--role=replicant');
  });

  it('maps the rendered link-agent sidecar args (node name derived from the pod name)', () => {
    const args = localizeArgs(rendered.agent, { ...local, seeds: '127.0.0.1:21000' }, 'agent-0');
    expect(args[0]).toBe('link-agent');
    expect(args).toEqual(expect.arrayContaining(['--links=/w/links.yaml', '--node-name=us-east-core-0-link', '--seeds=127.0.0.1:21000',
      '--data-dir=/w/agent', '--admin-host=127.0.0.1', '--admin-port=21001', '--cluster-advertise=127.0.0.1:21000']));
    expect(args.join(' ')).not.toMatch(/\/etc\/meridian|\/var\/lib\/meridian|\$\(POD_/);
  });

  it('refuses a rendered flag with a pod path it cannot map, naming it', () => {
    expect(() => localizeArgs(['broker', '--tls-dir=/etc/meridian/tls'], local, 'core-0')).toThrow('core-0: rendered flag --tls-dir=/etc/meridian/tls holds a pod path');
  });

  it('renders the node config and links file with local ports, paths and proxy servers', () => {
    const config = renderLocalNodeConfig(manifest.cluster, { dataDir: '/w/d', usersFile: '/w/u.yaml', tlsDir: '/w/tls', mqttPort: 21883, adminPort: 21881 });
    expect(config.listeners).toEqual([expect.objectContaining({ name: 'mqtt', host: '127.0.0.1', port: 21883 })]);
    expect(config.admin).toEqual({ host: '127.0.0.1', port: 21881 });
    expect(config.auth).toEqual(expect.objectContaining({ usersFile: '/w/u.yaml', allowAnonymous: false }));
    const links = renderLocalLinks(manifest, {
      credentialsDir: '/w/cred', queueDir: '/w/q', linkPassword: 'pw',
      servers: new Map([['us-west', ['127.0.0.1:1', '127.0.0.1:2']], ['emea', ['127.0.0.1:3']]]),
    });
    expect(links.file.links.map((l) => [l.name, l.servers, l.username, l.queue.dir])).toEqual([
      ['emea', ['127.0.0.1:3'], 'link-us-east', '/w/q/emea'],
      ['us-west', ['127.0.0.1:1', '127.0.0.1:2'], 'link-us-east', '/w/q/us-west'],
    ]);
    expect([...links.credentials]).toEqual([['emea.password', 'pw'], ['us-west.password', 'pw']]);
  });

  it('keeps the manifest users (tenants, superusers) for the users file', () => {
    expect(manifest.users).toEqual(expect.arrayContaining([
      { username: 'acme-demo', tenant: 'acme', superuser: false },
      { username: 'link-emea', superuser: true },
    ]));
  });
});
