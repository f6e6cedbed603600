import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BrokerProcess } from '../../harness/broker-process.js';
import { createTestPki, type TestPki } from '../../harness/certs.js';
import { hashPassword } from '../../../src/mqtt/auth/password.js';
import { ClientPool, eventually, recorder, subscribe } from './mqtt-clients.js';

/**
 * tls.useCertCommonNameAsUsername: the CN of a verified client certificate is the username, no password needed.
 * Relies on the node passing `listeners: config.listeners` to createSecurity (SecurityDeps.listeners).
 */
describe('client certificate CN as username (mqtts with requireClientCert)', () => {
  let pki: TestPki;
  let dir: string;
  let broker: BrokerProcess;
  let pool: ClientPool;

  beforeAll(async () => {
    pki = createTestPki();
    dir = mkdtempSync(path.join(tmpdir(), 'meridian-cn-'));
    const usersFile = path.join(dir, 'users.yaml');
    writeFileSync(usersFile, [
      'users:',
      '  - { username: sensor-1, tenant: fleet }',
      `  - { username: ops, tenant: fleet, passwordHash: "${await hashPassword('ops-pw', { N: 1024, r: 8, p: 1 })}" }`,
      '',
    ].join('\n'));
    const tls = `{ certFile: ${pki.serverCert}, keyFile: ${pki.serverKey}, caFile: ${pki.caCert}, requireClientCert: true, useCertCommonNameAsUsername: true }`;
    broker = await BrokerProcess.start({
      configYaml: [
        'listeners:',
        '  - { name: mqtt, protocol: mqtt, port: 0 }',
        `  - { name: mtls, protocol: mqtts, host: 127.0.0.1, port: 0, tls: ${tls} }`,
        'auth:',
        '  allowAnonymous: false',
        `  usersFile: ${usersFile}`,
        '  acl: [{ effect: allow, action: publish, topic: "devices/%u/#" }, { effect: deny, action: publish, topic: "devices/#" }]',
      ].join('\n'),
    });
    pool = new ClientPool('127.0.0.1', () => broker.mqttPort);
  });
  afterAll(async () => {
    pool?.closeAll();
    await broker?.dispose();
    rmSync(dir, { recursive: true, force: true });
    rmSync(pki.dir, { recursive: true, force: true });
  });

  const tlsOptions = (cn: string): Record<string, unknown> => {
    const cert = pki.clientCert(cn);
    return { protocol: 'mqtts', ca: readFileSync(pki.caCert), cert: readFileSync(cert.cert), key: readFileSync(cert.key), servername: 'localhost' };
  };

  test('a certificate for a user in the users file logs in as that user, without a password, in its tenant', async () => {
    const ops = await pool.connect({ username: 'ops', password: 'ops-pw' });
    const seen = recorder(ops);
    await subscribe(ops, 'devices/#');
    const device = await pool.connect({ ...tlsOptions('sensor-1'), clientId: 'sensor-1-conn' }, broker.port('mqtts'));
    await device.publishAsync('devices/sensor-1/temp', '21.5', { qos: 1 });
    await eventually(() => seen.length === 1, 5000, 'message from the certificate user');
    expect(seen[0]).toMatchObject({ topic: 'devices/sensor-1/temp', payload: '21.5' });
    const clients = await broker.getJson<{ items: { clientId: string; username?: string; tenant?: string }[] }>('/api/v1/clients');
    expect(clients.body.items.find((c) => c.clientId === 'sensor-1-conn')).toMatchObject({ username: 'sensor-1', tenant: 'fleet' });
  });

  test('the CN wins over the username in CONNECT: a device cannot claim to be another user', async () => {
    const device = await pool.connect({ ...tlsOptions('sensor-1'), username: 'ops', password: 'wrong', clientId: 'claims-ops' }, broker.port('mqtts'));
    const clients = await broker.getJson<{ items: { clientId: string; username?: string }[] }>('/api/v1/clients');
    expect(clients.body.items.find((c) => c.clientId === 'claims-ops')?.username).toBe('sensor-1');
    device.end(true);
  });

  test('a verified CN that is not in the users file is refused with CONNACK 5 when anonymous access is off', async () => {
    expect(await pool.connackCode(tlsOptions('stranger'), broker.port('mqtts'))).toBe(5);
  });
});
