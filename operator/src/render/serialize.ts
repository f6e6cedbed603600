/** Deterministic serialisation: canonical JSON (sorted keys) for hashing, YAML for ConfigMap files and goldens. */
import { createHash } from 'node:crypto';
import { dump } from 'js-yaml';

/** JSON with object keys sorted at every level, so equal values always give equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** YAML in the order the object was built (the renderers build in a fixed order), no anchors, no folding. */
export function toYaml(value: unknown): string {
  return dump(value, { noRefs: true, lineWidth: -1, sortKeys: false });
}

export function toBase64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}
