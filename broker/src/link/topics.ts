/**
 * Control topics of the link protocol, on the remote cluster's ordinary MQTT listener. `<actor>` is the sending
 * agent, `<cluster>/<node>`:
 * - `$LINK/cluster/route/<actor>`: route-sync messages from the agent (init, ops, snapshot, heartbeat);
 * - `$LINK/cluster/msg/<actor>`: forwarded messages (envelopes);
 * - `$LINK/cluster/resp/<actor>`: route-sync answers to the agent (init_ack, ack), which it subscribes to;
 * - `$LINK/cluster/caps/<actor>`: the remote's capabilities, sent to the agent (which subscribes to it too) before
 *   the answer to each route-sync init: one byte, the highest envelope version it accepts. A remote from before
 *   envelope batches sends nothing there.
 */
export const LINK_PREFIX = '$LINK/';
const ROUTE = '$LINK/cluster/route/';
const MSG = '$LINK/cluster/msg/';
const RESP = '$LINK/cluster/resp/';
const CAPS = '$LINK/cluster/caps/';

export type ControlKind = 'route' | 'msg' | 'resp';

export interface ControlTopic {
  kind: ControlKind;
  /** The agent's actor id, `<cluster>/<node>`. */
  actor: string;
  cluster: string;
}

export const routeTopic = (actor: string): string => ROUTE + actor;
export const messageTopic = (actor: string): string => MSG + actor;
export const responseTopic = (actor: string): string => RESP + actor;
export const capabilitiesTopic = (actor: string): string => CAPS + actor;

export function agentActor(cluster: string, node: string): string {
  return `${cluster}/${node}`;
}

export function isLinkTopic(topic: string): boolean {
  return topic.startsWith(LINK_PREFIX);
}

/** The kind and sender of a control topic, or null when it is not one (or names no valid actor). */
export function parseControlTopic(topic: string): ControlTopic | null {
  const kind: ControlKind | null = topic.startsWith(ROUTE) ? 'route' : topic.startsWith(MSG) ? 'msg' : topic.startsWith(RESP) ? 'resp' : null;
  if (kind === null) return null;
  const actor = topic.slice((kind === 'route' ? ROUTE : kind === 'msg' ? MSG : RESP).length);
  const parts = actor.split('/');
  if (parts.length !== 2 || parts.some((p) => !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(p))) return null;
  return { kind, actor, cluster: parts[0] };
}
