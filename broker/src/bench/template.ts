/**
 * Topic templates for `meridian bench`: `%i` is the 1-based client index, `%c` the client id.
 * Both may appear anywhere, so `t/bench/+/%i/sub/+/#` gives each subscriber its own wildcard filter.
 */
export interface TemplateContext {
  index: number;
  clientId: string;
}

export function expandTemplate(template: string, context: TemplateContext): string {
  return template.replace(/%([ic%])/g, (_match, key: string) => {
    if (key === 'i') return String(context.index);
    if (key === 'c') return context.clientId;
    return '%';
  });
}

/** Returns a reason the filter is invalid, or undefined when it is a valid MQTT topic filter. */
export function topicFilterProblem(filter: string): string | undefined {
  if (filter.length === 0) return 'topic filter is empty';
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i] ?? '';
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) {
      return `"#" must be a whole level and the last one in "${filter}"`;
    }
    if (level.includes('+') && level !== '+') {
      return `"+" must be a whole level in "${filter}"`;
    }
  }
  return undefined;
}

/** Returns a reason the name cannot be published to, or undefined when it is a valid topic name. */
export function topicNameProblem(topic: string): string | undefined {
  if (topic.length === 0) return 'topic is empty';
  if (topic.includes('+') || topic.includes('#')) return `cannot publish to a wildcard topic "${topic}"`;
  return undefined;
}

/** MQTT 3.1.1 §4.7 matching, including the rule that wildcards at the first level do not match `$` topics. */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  const filterLevels = filter.split('/');
  const topicLevels = topic.split('/');
  for (let i = 0; i < filterLevels.length; i++) {
    const level = filterLevels[i];
    if (level === '#') return true;
    if (i >= topicLevels.length) return false;
    if (level !== '+' && level !== topicLevels[i]) return false;
  }
  return filterLevels.length === topicLevels.length;
}
