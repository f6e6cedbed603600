/**
 * Schema defaulting as the API server does it (apiextensions structural defaulting): a missing property with a
 * `default` gets it, recursively inside objects and arrays that are present; absent parents are not created.
 * The operator applies it too, so objects it did not read from an API server (tests, the e2e harness) and objects
 * stored before a default was added render the same way.
 */
import { clusterLinkSchema } from './cluster-link-schema.js';
import type { JSONSchemaProps } from './openapi.js';
import { regionalClusterSchema } from './regional-cluster-schema.js';
import type { ClusterLink, RegionalCluster } from './types.js';

export function applySchemaDefaults(schema: JSONSchemaProps, value: unknown): unknown {
  if (Array.isArray(value)) return schema.items ? value.map((item) => applySchemaDefaults(schema.items as JSONSchemaProps, item)) : value;
  if (!isRecord(value)) return value;
  const result: Record<string, unknown> = { ...value };
  for (const [key, propSchema] of Object.entries(schema.properties ?? {})) {
    if (result[key] === undefined && propSchema.default !== undefined) result[key] = JSON.parse(JSON.stringify(propSchema.default)) as unknown;
    if (result[key] !== undefined) result[key] = applySchemaDefaults(propSchema, result[key]);
  }
  if (schema.additionalProperties) {
    for (const key of Object.keys(result)) {
      if (!schema.properties?.[key]) result[key] = applySchemaDefaults(schema.additionalProperties, result[key]);
    }
  }
  return result;
}

export function withRegionalClusterDefaults(cluster: RegionalCluster): RegionalCluster {
  return applySchemaDefaults(regionalClusterSchema, cluster) as RegionalCluster;
}

export function withClusterLinkDefaults(link: ClusterLink): ClusterLink {
  return applySchemaDefaults(clusterLinkSchema, link) as ClusterLink;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
