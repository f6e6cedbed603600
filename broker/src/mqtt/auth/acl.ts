import type { AclEffect, AclRule } from '../../config/types.js';
import { filterCovers, topicMatches } from './topics.js';

/**
 * ACL evaluation. Rules are tried in order and the first one that applies decides; when none applies,
 * `auth.aclDefault` decides. Topics and filters are the client's view (inside its tenant's mountpoint).
 *
 * - publish: a rule applies when its topic pattern matches the topic name.
 * - subscribe: a rule applies when its pattern covers the whole requested filter (every topic the filter can
 *   match also matches the pattern). A subscription allowed this way may still be wider than an allow rule's
 *   intent or cross a deny rule, so every delivered message is checked too (`mayReceive`, like mosquitto's read
 *   check): a `deny subscribe secret/#` keeps `secret/...` messages away from a client subscribed to `#`.
 */
export interface AclSubject {
  username?: string;
  clientId: string;
  tenant: string;
}

export interface ClientAcl {
  mayPublish(topic: string): boolean;
  maySubscribe(filter: string): boolean;
  mayReceive(topic: string): boolean;
}

interface CompiledRule {
  allow: boolean;
  pattern: string;
}

/** Binds the rules to one client: drops rules for other users/tenants, substitutes `%u` and `%c`. */
export function compileAcl(rules: readonly AclRule[], defaultEffect: AclEffect, subject: AclSubject): ClientAcl {
  const publish: CompiledRule[] = [];
  const subscribe: CompiledRule[] = [];
  for (const rule of rules) {
    const compiled = compileRule(rule, subject);
    if (!compiled) continue;
    if (rule.action !== 'subscribe') publish.push(compiled);
    if (rule.action !== 'publish') subscribe.push(compiled);
  }
  const fallback = defaultEffect === 'allow';
  const decide = (list: CompiledRule[], applies: (pattern: string) => boolean): boolean => {
    for (const rule of list) if (applies(rule.pattern)) return rule.allow;
    return fallback;
  };
  return {
    mayPublish: (topic) => decide(publish, (pattern) => topicMatches(pattern, topic)),
    maySubscribe: (filter) => decide(subscribe, (pattern) => filterCovers(pattern, filter)),
    mayReceive: subscribe.length === 0
      ? () => fallback
      : (topic) => decide(subscribe, (pattern) => topicMatches(pattern, topic)),
  };
}

function compileRule(rule: AclRule, subject: AclSubject): CompiledRule | undefined {
  if (rule.users && (subject.username === undefined || !rule.users.includes(subject.username))) return undefined;
  if (rule.tenants && !rule.tenants.includes(subject.tenant)) return undefined;
  const allow = rule.effect === 'allow';
  const pattern = substitute(rule.topic, subject, allow);
  return pattern === undefined ? undefined : { allow, pattern };
}

/**
 * Replaces `%u` and `%c`. A value containing `/`, `+` or `#` would widen the pattern beyond the client's own
 * space (client id `+` turning `clients/%c/#` into `clients/+/#`), so an allow rule is skipped for such a client;
 * a deny rule is substituted literally, which can only make it deny more. Rules with `%u` never apply to clients
 * without a username.
 */
function substitute(topic: string, subject: AclSubject, allow: boolean): string | undefined {
  let unsafe = false;
  const value = (v: string | undefined): string | undefined => {
    if (v === undefined) return undefined;
    if (v.length === 0 || /[/+#\u0000]/.test(v)) unsafe = true;
    return v;
  };
  let missing = false;
  const result = topic.replace(/%[uc]/g, (token) => {
    const v = value(token === '%u' ? subject.username : subject.clientId);
    if (v === undefined) missing = true;
    return v ?? '';
  });
  if (missing || (unsafe && allow)) return undefined;
  return result;
}
