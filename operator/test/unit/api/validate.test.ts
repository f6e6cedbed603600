import { withClusterLinkDefaults } from '../../../src/api/defaults.js';
import { filterCovers, isValidFilter } from '../../../src/api/mqtt-filter.js';
import { summarizeIssues, validateClusterLink, validateRegionalCluster } from '../../../src/api/validate.js';
import { exampleLink, minimalRegionalCluster } from '../../fixtures/resources.js';

describe('MQTT filters', () => {
  it.each([
    ['#', true], ['a/#', true], ['+/b/+', true], ['a//b', true], ['/', true],
    ['', false], ['a/#/b', false], ['a#', false], ['a/b+', false], ['#/a', false],
  ])('isValidFilter(%j) = %s', (filter, valid) => {
    expect(isValidFilter(filter)).toBe(valid);
  });

  it.each([
    ['#', 'a/b', true], ['a/#', 'a', true], ['a/#', 'a/b/c', true], ['a/+', 'a/b', true], ['+/+', 'a/+', true],
    ['a/+', 'a/#', false], ['a/b', 'a/+', false], ['a/+', 'a/b/c', false], ['a/b', 'a/b/c', false],
    ['#', '$SYS/x', false], ['+/x', '$SYS/x', false], ['$SYS/#', '$SYS/x', true],
  ])('filterCovers(%j, %j) = %s', (wide, narrow, covers) => {
    expect(filterCovers(wide, narrow)).toBe(covers);
  });
});

describe('ClusterLink semantic checks', () => {
  const withTopics = (topics: string[]) => withClusterLinkDefaults(exampleLink('l', 'us-east', 'emea', { topics }));

  it('accepts disjoint filters and an empty list (one-way link)', () => {
    expect(validateClusterLink(withTopics(['acme/+/denied', 'globex/#']))).toEqual([]);
    expect(validateClusterLink(withTopics([]))).toEqual([]);
  });

  it('rejects duplicates, redundant filters and bad syntax with reason InvalidTopics', () => {
    const issues = validateClusterLink(withTopics(['acme/#', 'acme/+/denied', 'acme/#', 'a/#/b']));
    expect(issues.map((i) => `${i.reason} ${i.path}: ${i.message}`)).toEqual([
      "InvalidTopics spec.topics[3]: 'a/#/b' is not a valid MQTT topic filter",
      "InvalidTopics spec.topics[1]: 'acme/+/denied' is redundant: spec.topics[0] 'acme/#' already covers it",
      "InvalidTopics spec.topics[2]: 'acme/#' duplicates spec.topics[0]",
    ]);
  });

  it('rejects a link to the local cluster itself', () => {
    const link = withClusterLinkDefaults(exampleLink('l', 'us-east', 'us-east'));
    expect(validateClusterLink(link, minimalRegionalCluster('us-east')).map((i) => i.path)).toEqual(['spec.remote.clusterName']);
  });

  it('reports immutable fields against the accepted values only when they are known', () => {
    const link = withClusterLinkDefaults(exampleLink('l', 'us-east', 'emea'));
    expect(validateClusterLink(link)).toEqual([]);
    expect(validateClusterLink(link, undefined, { clusterRef: 'us-west' }).map((i) => i.message)).toEqual(['clusterRef is immutable']);
  });
});

describe('RegionalCluster checks', () => {
  it('accept the minimal example', () => {
    expect(validateRegionalCluster(minimalRegionalCluster())).toEqual([]);
  });

  it('summarise issues for a condition message', () => {
    const rc = minimalRegionalCluster();
    rc.spec.auth = { allowAnonymous: false };
    rc.metadata.name = 'n'.repeat(50);
    const issues = validateRegionalCluster(rc, { region: 'old' });
    expect(summarizeIssues(issues, 2)).toBe(
      'metadata.name must be at most 40 characters (the names of its objects derive from it); spec.region: region is immutable; and 1 more',
    );
  });
});
