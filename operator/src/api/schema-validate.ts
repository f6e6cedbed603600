/**
 * Structural-schema validation outside an API server (tests, the e2e harness rendering example manifests):
 * the CRD schema compiled with Ajv. Unknown fields are reported, as `kubectl apply --validate=strict` would;
 * an API server would prune them silently. CEL rules are not evaluated here (see validate.ts).
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { clusterLinkSchema } from './cluster-link-schema.js';
import type { JSONSchemaProps } from './openapi.js';
import { regionalClusterSchema } from './regional-cluster-schema.js';
import type { ValidationIssue } from './validate.js';

type AjvSchema = Record<string, unknown>;

/** The schema as plain JSON Schema: Kubernetes extensions dropped, closed objects where the CRD would prune. */
export function toJsonSchema(schema: JSONSchemaProps): AjvSchema {
  const result: AjvSchema = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key.startsWith('x-kubernetes-') || key === 'description') continue;
    if (key === 'properties') {
      result.properties = Object.fromEntries(Object.entries(value as Record<string, JSONSchemaProps>).map(([k, v]) => [k, toJsonSchema(v)]));
    } else if (key === 'items' || key === 'additionalProperties') result[key] = toJsonSchema(value as JSONSchemaProps);
    else if (key === 'anyOf') result.anyOf = (value as JSONSchemaProps[]).map(toJsonSchema);
    else result[key] = value;
  }
  const open = schema['x-kubernetes-preserve-unknown-fields'] === true || schema.additionalProperties !== undefined;
  if (schema.type === 'object' && schema.properties && !open) result.additionalProperties = false;
  return result;
}

function compile(schema: JSONSchemaProps): ValidateFunction {
  const ajv = new Ajv({ allErrors: true, strict: false });
  addFormats.default(ajv, ['date-time']);
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && Math.abs(n) <= 2 ** 31 });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
  return ajv.compile(toJsonSchema(schema));
}

let regionalClusterValidator: ValidateFunction | undefined;
let clusterLinkValidator: ValidateFunction | undefined;

function toIssue(error: ErrorObject): ValidationIssue {
  const path = error.instancePath
    .split('/')
    .filter(Boolean)
    .map((seg) => (/^\d+$/.test(seg) ? `[${seg}]` : `.${seg}`))
    .join('')
    .replace(/^\./, '');
  if (error.keyword === 'additionalProperties') {
    const field = String(error.params.additionalProperty);
    return { path: path ? `${path}.${field}` : field, message: 'unknown field', reason: 'InvalidSpec' };
  }
  return { path, message: error.message ?? error.keyword, reason: 'InvalidSpec' };
}

function run(validate: ValidateFunction, value: unknown): ValidationIssue[] {
  return validate(value) ? [] : (validate.errors ?? []).filter((e) => e.keyword !== 'anyOf' && e.keyword !== 'if').map(toIssue);
}

export function regionalClusterSchemaIssues(value: unknown): ValidationIssue[] {
  regionalClusterValidator ??= compile(regionalClusterSchema);
  return run(regionalClusterValidator, value);
}

export function clusterLinkSchemaIssues(value: unknown): ValidationIssue[] {
  clusterLinkValidator ??= compile(clusterLinkSchema);
  return run(clusterLinkValidator, value);
}
