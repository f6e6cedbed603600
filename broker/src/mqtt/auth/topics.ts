/**
 * MQTT topic-name and topic-filter comparisons used by the ACL (MQTT 3.1.1 section 4.7).
 * Pure string functions: no `$` handling here — callers decide who may use `$` topics.
 */

/** True when `topic` (a topic name, no wildcards) matches `filter` ([MQTT-4.7.1-2], [MQTT-4.7.1-3]). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/**
 * True when every topic name that `filter` matches is also matched by `pattern`, i.e. a subscription to `filter`
 * can never receive a message outside `pattern`. Used to decide whether an ACL rule applies to a subscription.
 */
export function filterCovers(pattern: string, filter: string): boolean {
  const p = pattern.split('/');
  const f = filter.split('/');
  for (let i = 0; i < p.length; i++) {
    const level = p[i];
    if (level === '#') return true;
    if (i >= f.length) return false;
    const requested = f[i];
    if (requested === '#') return false;
    if (level === '+') continue;
    if (requested === '+' || requested !== level) return false;
  }
  return f.length === p.length;
}

/** True for a string usable as an MQTT topic filter: non-empty, `#` only as the whole last level, `+` only as a whole level. */
export function isValidFilter(filter: string): boolean {
  if (filter.length === 0 || filter.includes('\u0000')) return false;
  const levels = filter.split('/');
  return levels.every((level, i) => {
    if (level === '#') return i === levels.length - 1;
    if (level === '+') return true;
    return !level.includes('#') && !level.includes('+');
  });
}

/** True for a string usable as a topic name in PUBLISH: non-empty, no wildcards, no NUL ([MQTT-3.3.2-2]). */
export function isValidTopicName(topic: string): boolean {
  return topic.length > 0 && !/[+#\u0000]/.test(topic);
}

export function levelCount(topic: string): number {
  let levels = 1;
  for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === 47) levels++;
  return levels;
}
