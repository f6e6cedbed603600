import { RESOURCES, resourceFor, resourcePath } from '../../../src/kube/resources.js';

describe('resource paths', () => {
  it('builds core, group, namespaced, cluster-wide and subresource paths', () => {
    expect(resourcePath(RESOURCES.secret, { namespace: 'ns' })).toBe('/api/v1/namespaces/ns/secrets');
    expect(resourcePath(RESOURCES.regionalCluster)).toBe('/apis/meridian.dev/v1alpha1/regionalclusters');
    expect(resourcePath(RESOURCES.regionalCluster, { namespace: 'ns', name: 'a', subresource: 'status' })).toBe('/apis/meridian.dev/v1alpha1/namespaces/ns/regionalclusters/a/status');
    expect(resourcePath(RESOURCES.pdbV1beta1, { namespace: 'ns', name: 'x' })).toBe('/apis/policy/v1beta1/namespaces/ns/poddisruptionbudgets/x');
  });

  it('finds a resource by apiVersion and kind, and refuses unknown kinds', () => {
    expect(resourceFor('apps/v1', 'StatefulSet')).toBe(RESOURCES.statefulSet);
    expect(() => resourceFor('v1', 'Node')).toThrow('the operator does not handle Node (v1)');
  });
});
