import { clusterLinkSchema } from '../../../src/api/cluster-link-schema.js';
import { withClusterLinkDefaults, withRegionalClusterDefaults } from '../../../src/api/defaults.js';
import type { JSONSchemaProps } from '../../../src/api/openapi.js';
import { regionalClusterSchema } from '../../../src/api/regional-cluster-schema.js';
import { clusterLinkSchemaIssues, regionalClusterSchemaIssues } from '../../../src/api/schema-validate.js';
import { exampleLink, fullClusterLink, fullRegionalCluster, minimalRegionalCluster } from '../../fixtures/resources.js';

/** Dotted paths of every property the schema declares, stopping where Kubernetes-native objects are passed through. */
function schemaPaths(schema: JSONSchemaProps, prefix = ''): string[] {
  if (schema['x-kubernetes-preserve-unknown-fields']) return [];
  const own = Object.entries(schema.properties ?? {}).flatMap(([key, child]) => [`${prefix}${key}`, ...schemaPaths(child, `${prefix}${key}.`)]);
  return schema.items ? [...own, ...schemaPaths(schema.items, prefix)] : own;
}

/** Dotted paths of every key present in a value (array items merged). */
function valuePaths(value: unknown, schema: JSONSchemaProps, prefix = ''): string[] {
  if (Array.isArray(value)) return value.flatMap((item) => valuePaths(item, schema.items ?? {}, prefix));
  if (typeof value !== 'object' || value === null || schema['x-kubernetes-preserve-unknown-fields'] || !schema.properties) return [];
  return Object.entries(value).flatMap(([key, child]) => [`${prefix}${key}`, ...valuePaths(child, schema.properties?.[key] ?? {}, `${prefix}${key}.`)]);
}

const metadataPaths = (paths: string[]): string[] => paths.filter((p) => !p.startsWith('metadata.'));

describe('schemas and TypeScript types describe the same objects', () => {
  it('a RegionalCluster with every field set is valid and uses every schema property', () => {
    const full = fullRegionalCluster();
    // minAvailable and maxUnavailable exclude each other: the fixture sets one per role, this variant the other.
    const swapped = fullRegionalCluster();
    swapped.spec.core!.disruptionBudget = { maxUnavailable: 1 };
    swapped.spec.replicant!.disruptionBudget = { minAvailable: 1 };
    expect(regionalClusterSchemaIssues(full)).toEqual([]);
    expect(regionalClusterSchemaIssues(swapped)).toEqual([]);
    const used = [full, swapped].flatMap((rc) => metadataPaths(valuePaths(rc, regionalClusterSchema)));
    expect(new Set(used)).toEqual(new Set(schemaPaths(regionalClusterSchema)));
  });

  it('a ClusterLink with every field set is valid and uses every schema property', () => {
    const full = fullClusterLink();
    expect(clusterLinkSchemaIssues(full)).toEqual([]);
    expect(new Set(metadataPaths(valuePaths(full, clusterLinkSchema)))).toEqual(new Set(schemaPaths(clusterLinkSchema)));
  });

  it('minimal objects are valid before and after defaulting', () => {
    const minimal = minimalRegionalCluster();
    expect(regionalClusterSchemaIssues(minimal)).toEqual([]);
    expect(regionalClusterSchemaIssues(withRegionalClusterDefaults(minimal))).toEqual([]);
    const link = exampleLink('to-emea', 'us-east', 'emea');
    expect(clusterLinkSchemaIssues(withClusterLinkDefaults(link))).toEqual([]);
  });

  it('reports unknown fields, bad patterns and bounds with their paths', () => {
    const rc = minimalRegionalCluster();
    const bad = {
      ...rc,
      spec: { ...rc.spec, clusterName: 'no spaces', colour: 'red', core: { replicas: 0 }, listeners: [{ name: 'mqtt', protocol: 'AMQP', port: 70000 }] },
    };
    const paths = regionalClusterSchemaIssues(bad).map((i) => `${i.path}: ${i.message}`);
    expect(paths).toEqual(
      expect.arrayContaining([
        'spec.colour: unknown field',
        expect.stringMatching(/^spec\.clusterName: must match pattern/),
        'spec.core.replicas: must be >= 1',
        expect.stringMatching(/^spec\.listeners\[0\]\.protocol: must be equal to one of the allowed values/),
        'spec.listeners[0].port: must be <= 65535',
      ]),
    );
    const link = exampleLink('l', 'us-east', 'emea', { topics: ['a/#/b'], remote: { clusterName: 'emea', servers: ['no-port'] } });
    expect(clusterLinkSchemaIssues(link).map((i) => i.path)).toEqual(expect.arrayContaining(['spec.topics[0]', 'spec.remote.servers[0]']));
  });
});

describe('schema defaulting', () => {
  it('fills defaults the way the API server does, nested defaults inside defaulted parents included', () => {
    const rc = withRegionalClusterDefaults(minimalRegionalCluster());
    expect(rc.spec.listeners).toEqual([{ name: 'mqtt', protocol: 'MQTT', port: 1883 }]);
    expect(rc.spec.imagePullPolicy).toBe('IfNotPresent');
    expect(rc.spec.auth).toEqual({ allowAnonymous: true, aclDefault: 'Allow' });
    expect(rc.spec.core).toEqual({ replicas: 3, persistence: { size: '10Gi' }, disruptionBudget: { enabled: true } });
    expect(rc.spec.replicant).toEqual({ replicas: 0, disruptionBudget: { enabled: true } });
    expect(rc.spec.config).toBeUndefined();
    const withCore = withRegionalClusterDefaults({ ...minimalRegionalCluster(), spec: { ...minimalRegionalCluster().spec, core: { replicas: 5 } } });
    expect(withCore.spec.core?.replicas).toBe(5);
  });

  it('defaults inside array items and keeps given values', () => {
    const rc = minimalRegionalCluster();
    rc.spec.listeners = [{ name: 'mqtts', protocol: 'MQTTS', port: 8883, tls: { secretName: 'x' } }];
    expect(withRegionalClusterDefaults(rc).spec.listeners?.[0]?.tls).toEqual({ secretName: 'x', clientAuth: 'None', useCertCommonNameAsUsername: false });
    const link = withClusterLinkDefaults(exampleLink('l', 'us-east', 'emea', { queue: { maxBytes: 2097152 } }));
    expect(link.spec.queue).toEqual({ maxBytes: 2097152, whenFull: 'Block' });
    expect(link.spec.enabled).toBe(true);
    expect(link.spec.compression).toBe('None');
  });
});
