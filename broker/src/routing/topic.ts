/**
 * MQTT topic names and topic filters (MQTT 3.1.1 §4.7, MQTT 5 §4.7-4.8).
 *
 * - Levels are separated by `/`; empty levels are legal (`a//b`, `/a`, `a/`).
 * - `+` matches exactly one level (also an empty one) and must fill its whole level.
 * - `#` matches the parent level and any number of child levels; it must be the last level and fill it.
 * - A wildcard in the first level never matches a topic whose first character is `$` (`$SYS/...`, `$LINK/...`).
 * - `$share/<group>/<filter>` is a shared subscription, parsed apart by {@link parseSharedFilter}.
 */

export const MAX_TOPIC_BYTES = 65535;
export const SHARE_PREFIX = '$share/';

export class TopicError extends Error {
  constructor(readonly input: string, readonly reason: string) {
    super(`invalid topic ${JSON.stringify(input.length > 200 ? `${input.slice(0, 200)}…` : input)}: ${reason}`);
    this.name = 'TopicError';
  }
}

/** Why `name` is not a valid topic name (for PUBLISH), or null when it is valid. */
export function topicNameProblem(name: string): string | null {
  if (name.length === 0) return 'is empty';
  if (mayExceedMaxBytes(name) && Buffer.byteLength(name, 'utf8') > MAX_TOPIC_BYTES) return `is longer than ${MAX_TOPIC_BYTES} bytes`;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 0x2b /* + */ || c === 0x23 /* # */) return `contains the wildcard '${name[i]}' at offset ${i}`;
    if (c === 0) return `contains U+0000 at offset ${i}`;
  }
  return unpairedSurrogateProblem(name);
}

/** Why `filter` is not a valid topic filter, or null when it is valid. `$share/...` is checked as a plain filter. */
export function topicFilterProblem(filter: string): string | null {
  if (filter.length === 0) return 'is empty';
  if (mayExceedMaxBytes(filter) && Buffer.byteLength(filter, 'utf8') > MAX_TOPIC_BYTES) return `is longer than ${MAX_TOPIC_BYTES} bytes`;
  let levelStart = 0;
  for (let i = 0; i <= filter.length; i++) {
    const c = i < filter.length ? filter.charCodeAt(i) : 0x2f;
    if (c === 0 && i < filter.length) return `contains U+0000 at offset ${i}`;
    if (c !== 0x2f /* / */) continue;
    const problem = levelProblem(filter, levelStart, i);
    if (problem !== null) return problem;
    levelStart = i + 1;
  }
  return unpairedSurrogateProblem(filter);
}

/** A UTF-16 unit takes at most 3 UTF-8 bytes: shorter strings need no byte count. */
function mayExceedMaxBytes(s: string): boolean {
  return s.length * 3 > MAX_TOPIC_BYTES;
}

function levelProblem(filter: string, start: number, end: number): string | null {
  for (let i = start; i < end; i++) {
    const c = filter.charCodeAt(i);
    if (c !== 0x2b && c !== 0x23) continue;
    const symbol = filter[i];
    if (end - start !== 1) return `'${symbol}' at offset ${i} does not fill its whole level`;
    if (c === 0x23 && end !== filter.length) return `'#' at offset ${i} is not the last level`;
  }
  return null;
}

/** UTF-8 cannot carry a lone surrogate: such a string would not survive the wire. */
function unpairedSurrogateProblem(s: string): string | null {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    const next = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
    if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
      i++;
      continue;
    }
    return `contains an unpaired UTF-16 surrogate at offset ${i}`;
  }
  return null;
}

export function isValidTopicName(name: string): boolean {
  return topicNameProblem(name) === null;
}

export function isValidTopicFilter(filter: string): boolean {
  return topicFilterProblem(filter) === null;
}

export function assertTopicFilter(filter: string): void {
  const problem = topicFilterProblem(filter);
  if (problem !== null) throw new TopicError(filter, problem);
}

export function assertTopicName(name: string): void {
  const problem = topicNameProblem(name);
  if (problem !== null) throw new TopicError(name, problem);
}

export function hasWildcard(filter: string): boolean {
  return filter.includes('+') || filter.includes('#');
}

export interface SharedFilter {
  group: string;
  /** The filter after `$share/<group>/`. */
  filter: string;
}

/**
 * `$share/<group>/<filter>` → its group and filter; null for any filter that does not start with `$share/`.
 * Throws {@link TopicError} for a malformed shared subscription (empty or wildcard group, missing or invalid filter).
 */
export function parseSharedFilter(input: string): SharedFilter | null {
  if (!input.startsWith(SHARE_PREFIX)) return null;
  const slash = input.indexOf('/', SHARE_PREFIX.length);
  if (slash < 0) throw new TopicError(input, 'shared subscription has no filter after the group');
  const group = input.slice(SHARE_PREFIX.length, slash);
  if (group.length === 0) throw new TopicError(input, 'shared subscription has an empty group name');
  if (/[+#]/.test(group)) throw new TopicError(input, `shared subscription group ${JSON.stringify(group)} contains a wildcard`);
  const filter = input.slice(slash + 1);
  const problem = topicFilterProblem(filter);
  if (problem !== null) throw new TopicError(input, `shared subscription filter ${problem}`);
  return { group, filter };
}

/** Reference matcher (no trie): does `filter` match the topic name `topic`? Both are assumed valid. */
export function filterMatches(filter: string, topic: string): boolean {
  return levelsMatch(filter.split('/'), topic.split('/'));
}

export function levelsMatch(filter: readonly string[], topic: readonly string[]): boolean {
  const dollar = topic[0].startsWith('$');
  for (let i = 0; i < filter.length; i++) {
    const level = filter[i];
    if (level === '#') return !(i === 0 && dollar);
    if (i >= topic.length) return false;
    if (level === '+') {
      if (i === 0 && dollar) return false;
      continue;
    }
    if (level !== topic[i]) return false;
  }
  return filter.length === topic.length;
}
