import type { V1ConfigMap, V1Secret } from '@kubernetes/client-node';
import { load } from 'js-yaml';
import { credentialsWithout, linkNamesIn, linksConfigMapWithout, removalStep, type RemovalInput } from '../../../src/controller/link-removal.js';
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

describe('the finalizer of a deleted ClusterLink', () => {
  const input = (extra: Partial<RemovalInput>): RemovalInput => ({
    remote: 'emea', configMap: 'us-east-links', listing: [], unanswered: [], asked: 2, waitedMs: 1000, timeoutMs: 60_000, attempt: 0, ...extra,
  });

  it('goes once no agent lists the link, or when there is no agent to ask', () => {
    expect(removalStep(input({}))).toEqual({ kind: 'remove', type: 'Normal', reason: 'LinkRemoved', message: 'removed the link to emea from ConfigMap us-east-links; none of the 2 link agent(s) lists it any more' });
    expect(removalStep(input({ asked: 0 }))).toMatchObject({ kind: 'remove', reason: 'LinkRemoved', message: expect.stringContaining('no link agent runs') });
  });

  it('waits with back-off while an agent lists it or does not answer, with one Event', () => {
    const first = removalStep(input({ listing: ['core-0'], unanswered: ['link agent of pod core-1 (10.0.0.2:8082): connect ECONNREFUSED'] }));
    expect(first).toEqual({
      kind: 'wait',
      retryInMs: 500,
      event: 'removed the link to emea from ConfigMap us-east-links; waiting until the link agents drop it: still listed by the agents of core-0; link agent of pod core-1 (10.0.0.2:8082): connect ECONNREFUSED',
    });
    expect([1, 2, 3, 4, 8].map((attempt) => removalStep(input({ listing: ['core-0'], attempt })))).toEqual([1000, 2000, 4000, 5000, 5000].map((retryInMs) => ({ kind: 'wait', retryInMs })));
    expect(removalStep(input({ listing: ['core-0'], attempt: 5, waitedMs: 59_000 }))).toEqual({ kind: 'wait', retryInMs: 1000 });
  });

  it('goes anyway after the timeout, with a Warning naming what was not confirmed', () => {
    expect(removalStep(input({ unanswered: ['link agent of pod core-1 (10.0.0.2:8082): timed out after 2000 ms'], waitedMs: 60_000, attempt: 9 }))).toEqual({
      kind: 'remove',
      type: 'Warning',
      reason: 'LinkRemovalUnconfirmed',
      message: 'removed the link to emea from ConfigMap us-east-links, but after 60s it is link agent of pod core-1 (10.0.0.2:8082): timed out after 2000 ms: finalizer removed anyway',
    });
    expect(removalStep(input({ listing: ['core-0'], waitedMs: Number.NaN }))).toMatchObject({ kind: 'remove', type: 'Warning' });
  });
});
