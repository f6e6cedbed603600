/** Render inputs shared by the render tests and their golden files. */
import type { RenderInput } from '../../../src/render/index.js';
import { exampleLink, fullClusterLink, fullRegionalCluster, minimalRegionalCluster } from '../../fixtures/resources.js';

const b64 = (text: string): string => Buffer.from(text).toString('base64');

export function minimalInput(): RenderInput {
  return { cluster: minimalRegionalCluster('us-east'), links: [], clusterSecret: 'c2VjcmV0LXVzLWVhc3Q', secrets: {} };
}

/** A cluster with every feature, two working links, and one link whose Secret is missing. */
export function fullInput(): RenderInput {
  const emea = fullClusterLink();
  delete emea.status;
  const useast = exampleLink('to-us-east', 'us-west', 'us-east', {
    remote: { clusterName: 'us-east', region: 'us-east-1', servers: ['us-east-links.example.net:1883'] },
    authentication: { username: 'us-west', passwordSecretRef: { name: 'us-east-link' } },
    topics: [],
    enabled: false,
  });
  const broken = exampleLink('to-apac', 'us-west', 'apac', { authentication: { username: 'u', passwordSecretRef: { name: 'missing' } } });
  const otherCluster = exampleLink('elsewhere', 'us-east', 'emea');
  return {
    cluster: fullRegionalCluster(),
    links: [useast, broken, emea, otherCluster],
    clusterSecret: 'dXMtd2VzdC1jbHVzdGVyLXNlY3JldA',
    secrets: {
      'broker-users': { 'users.yaml': b64('users:\n  - username: door-1\n') },
      'broker-tls': { 'tls.crt': b64('CERT'), 'tls.key': b64('KEY'), 'ca.crt': b64('CA') },
      'emea-link': { password: b64('emea-password') },
      'emea-link-cert': { 'tls.crt': b64('CLIENT CERT'), 'tls.key': b64('CLIENT KEY') },
      'emea-ca': { 'ca.crt': b64('EMEA CA') },
      'us-east-link': { password: b64('us-east-password') },
    },
  };
}
