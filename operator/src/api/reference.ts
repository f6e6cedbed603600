/** Markdown field reference of the CRDs, generated from the same schemas (operator/CRD_REFERENCE.md). */
import { allCrds, type CustomResourceDefinition } from './crds.js';
import type { JSONSchemaProps } from './openapi.js';

interface Row {
  path: string;
  type: string;
  rules: string;
  description: string;
}

function typeOf(schema: JSONSchemaProps): string {
  if (schema['x-kubernetes-int-or-string']) return 'int or string';
  if (schema.type === 'array') return `[]${schema.items ? typeOf(schema.items) : 'any'}`;
  if (schema.type === 'object' && schema.additionalProperties && !schema.properties) return `map[string]${typeOf(schema.additionalProperties)}`;
  return schema.type ?? 'any';
}

function rulesOf(schema: JSONSchemaProps, required: boolean): string {
  const parts: string[] = [];
  if (required) parts.push('required');
  if (schema.default !== undefined && JSON.stringify(schema.default) !== '{}') parts.push(`default \`${JSON.stringify(schema.default)}\``);
  if (schema.enum) parts.push(`one of ${schema.enum.map((e) => `\`${e}\``).join(', ')}`);
  if (schema.minimum !== undefined) parts.push(`≥ ${schema.minimum}`);
  if (schema.maximum !== undefined) parts.push(`≤ ${schema.maximum}`);
  if (schema.minItems !== undefined) parts.push(`≥ ${schema.minItems} items`);
  if (schema.maxItems !== undefined) parts.push(`≤ ${schema.maxItems} items`);
  if (schema.maxLength !== undefined) parts.push(`≤ ${schema.maxLength} chars`);
  if (schema.pattern) parts.push(`pattern \`${schema.pattern.replace(/\|/g, '\\|')}\``);
  if (schema['x-kubernetes-list-type'] === 'set' || schema['x-kubernetes-list-type'] === 'map') parts.push('unique');
  for (const rule of schema['x-kubernetes-validations'] ?? []) parts.push(`rule: ${rule.message}`);
  return parts.join('; ');
}

function rows(schema: JSONSchemaProps, prefix: string, required: boolean): Row[] {
  const own: Row[] = prefix ? [{ path: prefix, type: typeOf(schema), rules: rulesOf(schema, required), description: schema.description ?? '' }] : [];
  if (schema['x-kubernetes-preserve-unknown-fields']) return own;
  const child = schema.type === 'array' ? schema.items : schema;
  const nested = Object.entries(child?.properties ?? {}).flatMap(([key, sub]) =>
    rows(sub, `${prefix}${schema.type === 'array' ? '[]' : ''}${prefix ? '.' : ''}${key}`, child?.required?.includes(key) ?? false),
  );
  return [...own, ...nested];
}

function section(crd: CustomResourceDefinition): string {
  const version = crd.spec.versions[0]!;
  const schema = version.schema.openAPIV3Schema;
  const top = schema.properties ?? {};
  const table = (root: 'spec' | 'status'): string =>
    [
      '| Field | Type | Constraints | Description |',
      '| --- | --- | --- | --- |',
      ...rows(top[root] ?? {}, root, false)
        .slice(1)
        .map((r) => `| \`${r.path}\` | ${r.type} | ${r.rules} | ${r.description.replace(/\|/g, '\\|')} |`),
    ].join('\n');
  const names = crd.spec.names;
  const objectRules = (schema['x-kubernetes-validations'] ?? []).map((r) => `- ${r.message}`).join('\n');
  return [
    `## ${names.kind}`,
    '',
    `${schema.description ?? ''}`,
    '',
    `\`${crd.spec.group}/${version.name}\`, namespaced; short names ${names.shortNames.map((s) => `\`${s}\``).join(', ')}; ` +
      `category \`${names.categories.join(', ')}\`; subresources: ${Object.keys(version.subresources).join(', ')}.` +
      (version.subresources.scale ? ` The scale subresource drives \`${version.subresources.scale.specReplicasPath}\`.` : ''),
    ...(objectRules ? ['', objectRules] : []),
    '',
    '### spec',
    '',
    table('spec'),
    '',
    '### status',
    '',
    table('status'),
    '',
  ].join('\n');
}

export function crdReference(): string {
  return [
    '# CRD field reference',
    '',
    '<!-- Generated from operator/src/api by generate-crds.ts: do not edit by hand. -->',
    '',
    '"rule:" entries are CEL rules (`x-kubernetes-validations`): API servers 1.25 and later enforce them on write;',
    'the operator checks the same rules on every reconcile and reports violations as a condition (older servers',
    'ignore CEL). Fields typed `object` without sub-fields are Kubernetes types passed through as given.',
    '',
    ...allCrds().map(section),
  ].join('\n');
}
