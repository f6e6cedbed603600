import type { TenantConfig } from '../../config/types.js';

/**
 * Tenants and their mountpoints. Every non-superuser client lives inside its tenant's mountpoint: the broker
 * prefixes what the client sends (topics, filters, will topic) and strips the prefix from what it receives, so a
 * tenant can neither name nor see a topic outside its own space.
 */
export interface Tenant {
  name: string;
  /** Internal topic prefix, e.g. `acme/`; never empty for a tenant (superusers have no mountpoint instead). */
  mountpoint: string;
}

export const TENANT_NAME = /^[A-Za-z0-9_.-]+$/;
const SHARE_PREFIX = '$share/';

export class TenancyError extends Error {
  override name = 'TenancyError';
}

/**
 * The configured tenants plus implicit ones: a tenant named in the users file (or the anonymous tenant) that is not
 * configured gets the mountpoint `<name>/`, provided that it does not overlap a configured one.
 */
export class TenantDirectory {
  private readonly configured = new Map<string, Tenant>();

  /** Throws TenancyError when the anonymous tenant's implicit mountpoint overlaps a configured tenant's. */
  constructor(tenants: readonly TenantConfig[], readonly anonymousTenant: string) {
    for (const t of tenants) this.configured.set(t.name, { name: t.name, mountpoint: t.mountpoint ?? `${t.name}/` });
    const problem = this.problemWith(anonymousTenant);
    if (problem) throw new TenancyError(`auth.anonymousTenant: ${problem}`);
  }

  /** Why `name` cannot be used as a tenant, or undefined when it can. */
  problemWith(name: string): string | undefined {
    if (this.configured.has(name)) return undefined;
    if (!TENANT_NAME.test(name)) return `tenant name '${name}' must match ${TENANT_NAME.source}`;
    const mountpoint = `${name}/`;
    for (const other of this.configured.values()) {
      if (overlaps(mountpoint, other.mountpoint)) {
        return `tenant '${name}' is not configured and its implicit mountpoint '${mountpoint}' overlaps tenant '${other.name}' (mountpoint '${other.mountpoint}')`;
      }
    }
    return undefined;
  }

  /** The tenant called `name`; callers validate implicit names with problemWith first. */
  get(name: string): Tenant {
    return this.configured.get(name) ?? { name, mountpoint: `${name}/` };
  }
}

function overlaps(a: string, b: string): boolean {
  return a.startsWith(b) || b.startsWith(a);
}

export type ParsedFilter =
  | { kind: 'plain'; filter: string }
  | { kind: 'shared'; group: string; filter: string }
  | { kind: 'invalid'; reason: string };

/** Splits `$share/<group>/<filter>` (MQTT 5 shared subscriptions, also accepted from 3.1.1 clients). */
export function parseFilter(filter: string): ParsedFilter {
  if (!filter.startsWith(SHARE_PREFIX)) return { kind: 'plain', filter };
  const rest = filter.slice(SHARE_PREFIX.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return { kind: 'invalid', reason: 'a shared subscription needs $share/<group>/<filter>' };
  const group = rest.slice(0, slash);
  const inner = rest.slice(slash + 1);
  if (/[+#]/.test(group)) return { kind: 'invalid', reason: 'a share group name must not contain wildcards' };
  if (inner.length === 0) return { kind: 'invalid', reason: 'a shared subscription needs a filter after the group' };
  return { kind: 'shared', group, filter: inner };
}

export function mountTopic(mountpoint: string, topic: string): string {
  return mountpoint + topic;
}

/** The client's view of an internal topic, or undefined when the topic lies outside the mountpoint. */
export function unmountTopic(mountpoint: string, topic: string): string | undefined {
  return topic.startsWith(mountpoint) ? topic.slice(mountpoint.length) : undefined;
}

/** Mounts a subscription filter; for `$share/<group>/<filter>` only the filter part is mounted. */
export function mountFilter(mountpoint: string, filter: string): string {
  if (mountpoint === '') return filter;
  const parsed = parseFilter(filter);
  if (parsed.kind === 'shared') return `${SHARE_PREFIX}${parsed.group}/${mountpoint}${parsed.filter}`;
  return mountpoint + filter;
}

/** Inverse of mountFilter; undefined when the filter lies outside the mountpoint. */
export function unmountFilter(mountpoint: string, filter: string): string | undefined {
  if (mountpoint === '') return filter;
  const parsed = parseFilter(filter);
  if (parsed.kind === 'shared') {
    const inner = unmountTopic(mountpoint, parsed.filter);
    return inner === undefined ? undefined : `${SHARE_PREFIX}${parsed.group}/${inner}`;
  }
  return unmountTopic(mountpoint, filter);
}
