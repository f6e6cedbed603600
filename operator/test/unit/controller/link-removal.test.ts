import type { V1ConfigMap, V1Secret } from '@kubernetes/client-node';
import { load } from 'js-yaml';
import { credentialsWithout, linkNamesIn, linksConfigMapWithout } from '../../../src/controller/link-removal.js';
import { toYaml } from '../../../src/render/index.js';

const metadata = {
  name: 'us-east-links',
  namespace: 'meridian',
  labels: { a: 'b' },
  ownerReferences: [{ apiVersion: 'meridian.dev/v1alpha1', kind: 'RegionalCluster', name: 'us-east', uid: 'u', controller: true }],
  resourceVersion: '7',
  managedFields: [],
};

describe('cutting a link out of the live objects', () => {
  it('removes one entry of links.yaml and keeps what server-side apply needs', () => {
    const cm: V1ConfigMap = { apiVersion: 'v1', kind: 'ConfigMap', metadata, data: { 'links.yaml': toYaml({ links: [{ name: 'emea' }, { name: 'us-west' }] }) } };
    const cut = linksConfigMapWithout(cm, 'emea');
    expect(load(cut?.data?.['links.yaml'] ?? '')).toEqual({ links: [{ name: 'us-west' }] });
    expect(cut?.metadata).toEqual({ name: 'us-east-links', namespace: 'meridian', labels: { a: 'b' }, ownerReferences: metadata.ownerReferences });
    expect(linksConfigMapWithout(cm, 'apac')).toBeUndefined();
    expect([...linkNamesIn(cm)]).toEqual(['emea', 'us-west']);
    expect(linkNamesIn(undefined).size).toBe(0);
  });

  it('removes the credential files of the remote only', () => {
    const secret: V1Secret = { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata, data: { 'emea.password': 'cA==', 'emea.ca.crt': 'Yw==', 'emea-2.password': 'cQ==' } };
    expect(credentialsWithout(secret, 'emea')?.data).toEqual({ 'emea-2.password': 'cQ==' });
    expect(credentialsWithout(secret, 'us-west')).toBeUndefined();
  });
});
