/** MQTT topic-filter checks used to validate ClusterLink topics (pure). */

/** Syntax of a topic filter (MQTT 3.1.1 §4.7): `#` only alone as the last level, `+` only as a whole level. */
export function isValidFilter(filter: string): boolean {
  if (filter.length === 0 || filter.includes('\u0000')) return false;
  const levels = filter.split('/');
  return levels.every((level, i) => {
    if (level === '#') return i === levels.length - 1;
    if (level === '+') return true;
    return !level.includes('#') && !level.includes('+');
  });
}

/** True when every topic that `narrow` matches is also matched by `wide` (so `narrow` is redundant beside it). */
export function filterCovers(wide: string, narrow: string): boolean {
  const w = wide.split('/');
  const n = narrow.split('/');
  // Wildcards in the first level never match topics starting with `$` (MQTT 3.1.1 §4.7.2).
  if (narrow.startsWith('$') && (w[0] === '#' || w[0] === '+')) return false;
  for (let i = 0; i < w.length; i++) {
    if (w[i] === '#') return true;
    if (i >= n.length || n[i] === '#') return false;
    if (w[i] === '+') continue;
    if (n[i] === '+' || w[i] !== n[i]) return false;
  }
  return w.length === n.length;
}
