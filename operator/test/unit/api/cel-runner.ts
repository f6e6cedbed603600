/**
 * Evaluates a CRD schema's CEL rules (x-kubernetes-validations) on an object the way the API server walks them:
 * each rule with `self` bound to the value at its node, transition rules (`oldSelf`) only where an old value exists.
 */
import { evaluate } from '@marcbachmann/cel-js';
import type { JSONSchemaProps } from '../../../src/api/openapi.js';

export interface CelFailure {
  path: string;
  message: string;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function celFailures(schema: JSONSchemaProps, value: unknown, oldValue?: unknown, path = ''): CelFailure[] {
  if (value === undefined) return [];
  const failures: CelFailure[] = [];
  for (const { rule, message } of schema['x-kubernetes-validations'] ?? []) {
    const transition = /\boldSelf\b/.test(rule);
    if (transition && oldValue === undefined) continue;
    const result = evaluate(rule, transition ? { self: value, oldSelf: oldValue } : { self: value });
    if (result !== true) failures.push({ path, message });
  }
  if (Array.isArray(value) && schema.items) {
    value.forEach((item, i) => failures.push(...celFailures(schema.items as JSONSchemaProps, item, undefined, `${path}[${i}]`)));
  }
  if (isRecord(value)) {
    for (const [key, child] of Object.entries(schema.properties ?? {})) {
      const old = isRecord(oldValue) ? oldValue[key] : undefined;
      failures.push(...celFailures(child, value[key], old, path ? `${path}.${key}` : key));
    }
  }
  return failures;
}

/** Every rule in a schema, for coverage checks. */
export function allRules(schema: JSONSchemaProps): string[] {
  const children = [...Object.values(schema.properties ?? {}), ...(schema.items ? [schema.items] : [])];
  return [...(schema['x-kubernetes-validations'] ?? []).map((r) => r.message), ...children.flatMap(allRules)];
}
