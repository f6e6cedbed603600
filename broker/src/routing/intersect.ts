import { assertTopicFilter } from './topic.js';

/**
 * The filter that matches exactly the topics matched by both `a` and `b`, or null when no topic matches both.
 *
 * A filter constrains each level (a literal, or `+` for anything) and the number of levels (exactly n, or at
 * least n when it ends with `#`, which also matches the parent level). Intersecting those constraints level by
 * level always gives one filter of the same shape, so the result is a single filter, never a union.
 * The `$` rule: a wildcard first level never matches `$...` topics, so a `$` literal meeting a first-level
 * wildcard has an empty intersection.
 *
 * Both arguments must be plain filters (strip `$share/<group>/` first); an invalid filter throws TopicError.
 */
export function intersect(a: string, b: string): string | null {
  assertTopicFilter(a);
  assertTopicFilter(b);
  if (a === b) return a;
  const levels = intersectLevels(a.split('/'), b.split('/'));
  return levels === null ? null : levels.join('/');
}

function intersectLevels(a: string[], b: string[]): string[] | null {
  const result: string[] = [];
  for (let i = 0; ; i++) {
    const x = a[i];
    const y = b[i];
    if (x === '#') return withDollarRule(result.concat(b.slice(i)), a, b);
    if (y === '#') return withDollarRule(result.concat(a.slice(i)), a, b);
    if (x === undefined || y === undefined) {
      return x === undefined && y === undefined ? withDollarRule(result, a, b) : null;
    }
    if (x === '+') result.push(y);
    else if (y === '+' || x === y) result.push(x);
    else return null;
  }
}

function withDollarRule(result: string[], a: string[], b: string[]): string[] | null {
  const first = result[0];
  if (first === '+' || first === '#' || !first.startsWith('$')) return result;
  return isWildcard(a[0]) || isWildcard(b[0]) ? null : result;
}

function isWildcard(level: string): boolean {
  return level === '+' || level === '#';
}

/** The distinct non-empty intersections of one filter with each of `filters` (a subscription vs link topics). */
export function intersectAll(filter: string, filters: readonly string[]): string[] {
  const found = new Set<string>();
  for (const other of filters) {
    const both = intersect(filter, other);
    if (both !== null) found.add(both);
  }
  return [...found];
}

/** Does `general` match every topic that `specific` matches? */
export function covers(general: string, specific: string): boolean {
  return intersect(general, specific) === specific;
}

/** Is there a topic matched by both filters? */
export function overlaps(a: string, b: string): boolean {
  return intersect(a, b) !== null;
}
