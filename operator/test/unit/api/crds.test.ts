import { readFileSync } from 'node:fs';
import path from 'node:path';
import { load } from 'js-yaml';
import { allCrds, crdFiles, crdForServer, parseServerVersion, serverSupportsCel, type CustomResourceDefinition } from '../../../src/api/crds.js';
import type { JSONSchemaProps } from '../../../src/api/openapi.js';
import { crdReference } from '../../../src/api/reference.js';

const repoRoot = path.resolve(import.meta.dirname, '../../../..');

/** Short names of the built-in resources of Kubernetes 1.35 (`kubectl api-resources`). */
const BUILT_IN_SHORT_NAMES = [
  'cs', 'cm', 'ep', 'ev', 'limits', 'ns', 'no', 'pvc', 'pv', 'po', 'rc', 'quota', 'sa', 'svc', 'crd', 'crds', 'ds',
  'deploy', 'rs', 'sts', 'hpa', 'cj', 'csr', 'ing', 'netpol', 'pdb', 'psp', 'pc', 'sc', 'eps', 'vac', 'ipa', 'sva',
];

function schemaAt(schema: JSONSchemaProps, jsonPath: string): JSONSchemaProps | undefined {
  const fields = jsonPath.replace(/\[\?\(.*?\)\]/g, '[]').split('.').filter(Boolean);
  let node: JSONSchemaProps | undefined = schema;
  for (const field of fields) {
    const name = field.replace('[]', '');
    node = node?.properties?.[name];
    if (field.endsWith('[]')) node = node?.items;
  }
  return node;
}

function collectKeys(schema: JSONSchemaProps, key: keyof JSONSchemaProps): unknown[] {
  const own = schema[key] === undefined ? [] : [schema[key]];
  const children = [
    ...Object.values(schema.properties ?? {}),
    ...(schema.items ? [schema.items] : []),
    ...(schema.additionalProperties ? [schema.additionalProperties] : []),
    ...(schema.anyOf ?? []),
  ];
  return [...own, ...children.flatMap((c) => collectKeys(c, key))];
}

const schemaOf = (crd: CustomResourceDefinition): JSONSchemaProps => crd.spec.versions[0]!.schema.openAPIV3Schema;

describe('generated CRDs', () => {
  it.each(['crds', 'charts/meridian-operator/crds'])('match the files committed under %s/', (dir) => {
    for (const [name, content] of crdFiles()) {
      const committed = readFileSync(path.join(repoRoot, dir, name), 'utf8');
      expect({ name, content: committed }).toEqual({ name, content });
    }
  });

  it('match the committed field reference operator/CRD_REFERENCE.md', () => {
    expect(readFileSync(path.join(repoRoot, 'operator/CRD_REFERENCE.md'), 'utf8')).toBe(crdReference());
  });

  it('round-trip through YAML unchanged', () => {
    for (const [name, content] of crdFiles()) {
      const crd = allCrds().find((c) => `${c.metadata.name}.yaml` === name);
      expect(load(content)).toEqual(JSON.parse(JSON.stringify(crd)));
    }
  });

  it('use short names that no built-in resource has', () => {
    const names = allCrds().flatMap((c) => c.spec.names.shortNames);
    expect(names.filter((n) => BUILT_IN_SHORT_NAMES.includes(n))).toEqual([]);
    expect(new Set(names).size).toBe(names.length);
  });

  it('point printer columns and the scale subresource at fields of the schema', () => {
    for (const crd of allCrds()) {
      const version = crd.spec.versions[0]!;
      const paths = version.additionalPrinterColumns.map((c) => c.jsonPath).filter((p) => !p.startsWith('.metadata'));
      const scale = version.subresources.scale;
      if (scale) paths.push(scale.specReplicasPath, scale.statusReplicasPath, scale.labelSelectorPath);
      for (const p of paths) expect({ path: p, found: schemaAt(schemaOf(crd), p) !== undefined }).toEqual({ path: p, found: true });
    }
  });

  it('give RegionalCluster a scale subresource on the replicant count and both a status subresource', () => {
    const [rc, link] = allCrds();
    expect(rc!.spec.versions[0]!.subresources.scale?.specReplicasPath).toBe('.spec.replicant.replicas');
    expect(rc!.spec.versions[0]!.subresources.status).toEqual({});
    expect(link!.spec.versions[0]!.subresources.status).toEqual({});
    expect(rc!.spec.versions[0]!.additionalPrinterColumns.filter((c) => !c.priority).map((c) => c.name)).toEqual([
      'Region', 'Cores', 'Replicants', 'Ready', 'Age',
    ]);
  });

  it('carry CEL rules, with immutable clusterName and region', () => {
    const [rc] = allCrds();
    const spec = schemaOf(rc!).properties!.spec!;
    expect(spec.properties!.clusterName!['x-kubernetes-validations']).toEqual([{ rule: 'self == oldSelf', message: 'clusterName is immutable' }]);
    expect(spec.properties!.region!['x-kubernetes-validations']).toEqual([{ rule: 'self == oldSelf', message: 'region is immutable' }]);
  });

  it('bound every list and map a CEL rule iterates, so the API server\'s cost estimate accepts it', () => {
    for (const crd of allCrds()) {
      const walk = (s: JSONSchemaProps, where: string): void => {
        const rules = s['x-kubernetes-validations'] ?? [];
        if (s.type === 'array' && rules.length) expect({ where, maxItems: s.maxItems !== undefined }).toEqual({ where, maxItems: true });
        for (const [k, v] of Object.entries(s.properties ?? {})) walk(v, `${where}.${k}`);
        if (s.items) walk(s.items, `${where}[]`);
      };
      walk(schemaOf(crd), crd.metadata.name);
    }
  });
});

describe('CRDs for older API servers', () => {
  it('keep CEL from 1.25 on and drop it before', () => {
    expect(serverSupportsCel({ major: 1, minor: 25 })).toBe(true);
    expect(serverSupportsCel({ major: 1, minor: 20 })).toBe(false);
    for (const crd of allCrds()) {
      expect(crdForServer(crd, { major: 1, minor: 30 })).toBe(crd);
      const old = crdForServer(crd, { major: 1, minor: 20 });
      expect(collectKeys(schemaOf(old), 'x-kubernetes-validations')).toEqual([]);
      expect(collectKeys(schemaOf(crd), 'x-kubernetes-validations').length).toBeGreaterThan(0);
      expect(collectKeys(schemaOf(old), 'pattern')).toEqual(collectKeys(schemaOf(crd), 'pattern'));
    }
  });

  it('parse /version fields, including the "20+" of managed clusters', () => {
    expect(parseServerVersion('1', '20+')).toEqual({ major: 1, minor: 20 });
    expect(() => parseServerVersion('', 'x')).toThrow(/cannot parse server version/);
  });
});
