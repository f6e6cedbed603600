import { clusterLinkSchema } from '../../../src/api/cluster-link-schema.js';
import { withClusterLinkDefaults, withRegionalClusterDefaults } from '../../../src/api/defaults.js';
import { regionalClusterSchema } from '../../../src/api/regional-cluster-schema.js';
import type { ClusterLink, RegionalCluster } from '../../../src/api/types.js';
import { validateClusterLink, validateRegionalCluster, type ValidationIssue } from '../../../src/api/validate.js';
import { exampleLink, fullClusterLink, fullRegionalCluster, minimalRegionalCluster } from '../../fixtures/resources.js';
import { allRules, celFailures, type CelFailure } from './cel-runner.js';

type Edit<T> = (o: T) => void;

function edited<T>(base: T, edit: Edit<T>): T {
  const copy = JSON.parse(JSON.stringify(base)) as T;
  edit(copy);
  return copy;
}

const rcCases: [string, Edit<RegionalCluster>][] = [
  ['valid full object', () => {}],
  ['changed clusterName', (rc) => { rc.spec.clusterName = 'renamed'; }],
  ['changed region', (rc) => { rc.spec.region = 'elsewhere'; }],
  ['duplicate listener name', (rc) => { rc.spec.listeners![1]!.name = 'mqtt'; }],
  ['duplicate listener port', (rc) => { rc.spec.listeners![2]!.port = 1883; }],
  ['MQTTS without tls', (rc) => { delete rc.spec.listeners![1]!.tls; }],
  ['MQTT with tls', (rc) => { rc.spec.listeners![0]!.tls = { secretName: 'x' }; }],
  ['path on MQTT', (rc) => { rc.spec.listeners![0]!.path = '/x'; }],
  ['budget with both fields', (rc) => { rc.spec.core!.disruptionBudget = { minAvailable: 1, maxUnavailable: 1 }; }],
  ['replicant budget with both fields', (rc) => { rc.spec.replicant!.disruptionBudget = { minAvailable: '10%', maxUnavailable: 1 }; }],
  ['nodePort on ClusterIP', (rc) => { rc.spec.linkService!.type = 'ClusterIP'; }],
  ['linkService listener unknown', (rc) => { rc.spec.linkService!.listener = 'nope'; }],
  ['no users and no anonymous', (rc) => { delete rc.spec.auth!.usersSecret; }],
  ['duplicate tenant', (rc) => { rc.spec.auth!.tenants = [{ name: 'a' }, { name: 'a' }]; }],
  ['name too long', (rc) => { rc.metadata.name = 'x'.repeat(41); }],
  ['several at once', (rc) => { rc.spec.region = 'r'; rc.spec.listeners![3]!.port = 8883; delete rc.spec.auth!.usersSecret; }],
];

const linkCases: [string, Edit<ClusterLink>][] = [
  ['valid full object', () => {}],
  ['changed clusterRef', (l) => { l.spec.clusterRef = 'other'; }],
  ['changed remote name', (l) => { l.spec.remote.clusterName = 'apac'; }],
  ['password without username', (l) => { delete l.spec.authentication!.username; }],
  ['client certificate without tls', (l) => { delete l.spec.tls; }],
  ['$LINK topic', (l) => { l.spec.topics = ['$LINK/#']; }],
];

const key = (f: CelFailure | ValidationIssue): string => `${f.path} | ${f.message}`;

describe('the TypeScript validator agrees with the CRD CEL rules', () => {
  const rcMessages = new Set(allRules(regionalClusterSchema));
  const linkMessages = new Set(allRules(clusterLinkSchema));
  const seen = new Set<string>();

  it.each(rcCases)('RegionalCluster: %s', (_name, edit) => {
    const old = withRegionalClusterDefaults(fullRegionalCluster());
    const rc = withRegionalClusterDefaults(edited(fullRegionalCluster(), edit));
    const cel = celFailures(regionalClusterSchema, rc, old).map(key).sort();
    const ts = validateRegionalCluster(rc, { clusterName: old.spec.clusterName, region: old.spec.region })
      .filter((i) => rcMessages.has(i.message))
      .map(key)
      .sort();
    expect(ts).toEqual(cel);
    cel.forEach((k) => seen.add(k.split(' | ')[1]!));
  });

  it.each(linkCases)('ClusterLink: %s', (_name, edit) => {
    const old = withClusterLinkDefaults(fullClusterLink());
    const link = withClusterLinkDefaults(edited(fullClusterLink(), edit));
    const cel = celFailures(clusterLinkSchema, link, old).map(key).sort();
    const ts = validateClusterLink(link, undefined, { clusterRef: old.spec.clusterRef, remoteClusterName: old.spec.remote.clusterName })
      .filter((i) => linkMessages.has(i.message))
      .map(key)
      .sort();
    expect(ts).toEqual(cel);
    cel.forEach((k) => seen.add(k.split(' | ')[1]!));
  });

  it('the cases above break every CEL rule at least once', () => {
    expect([...rcMessages, ...linkMessages].filter((m) => !seen.has(m))).toEqual([]);
  });

  it('rules hold on minimal objects with defaults (the API server defaults before it validates)', () => {
    expect(celFailures(regionalClusterSchema, withRegionalClusterDefaults(minimalRegionalCluster()))).toEqual([]);
    expect(celFailures(clusterLinkSchema, withClusterLinkDefaults(exampleLink('l', 'us-east', 'emea')))).toEqual([]);
  });
});
