import { topicFilterProblem } from '../routing/topic.js';

/** Longest actor id, cluster name or role accepted on the wire, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 255;
export const MAX_ROUTE_ID_BYTES = 1024;

/** Why `routeId` cannot be a route id, or null. */
export function routeIdProblem(routeId: string): string | null {
  if (routeId.includes('\u0000')) return 'contains U+0000';
  if (Buffer.byteLength(routeId, 'utf8') > MAX_ROUTE_ID_BYTES) return `is longer than ${MAX_ROUTE_ID_BYTES} bytes`;
  return null;
}

/** Why `filter` cannot be a route filter, or null. Shared subscriptions route on their inner filter. */
export function routeFilterProblem(filter: string): string | null {
  if (filter.startsWith('$share/')) return 'is a $share filter: route the inner filter, with the group as route id';
  return topicFilterProblem(filter);
}

/** Why `name` cannot be an actor id, cluster name or role, or null. */
export function nameProblem(name: string, allowEmpty = false): string | null {
  if (name.length === 0) return allowEmpty ? null : 'is empty';
  if (name.includes('\u0000')) return 'contains U+0000';
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) return `is longer than ${MAX_NAME_BYTES} bytes`;
  return null;
}
