import type { StoredPacket } from './persistence.js';

interface TrieNode {
  children: Map<string, TrieNode>;
  packet?: StoredPacket;
}

const newNode = (): TrieNode => ({ children: new Map() });

/**
 * Retained messages by topic level, so a SUBSCRIBE looks up only the branches its filter can match instead of
 * testing every retained topic. (Qlobber indexes filters and matches a topic; here the topics are indexed and a
 * filter is matched, the other way round.)
 */
export class RetainedTrie {
  private readonly root = newNode();

  set(topic: string, packet: StoredPacket): void {
    let node = this.root;
    for (const level of topic.split('/')) {
      let child = node.children.get(level);
      if (!child) {
        child = newNode();
        node.children.set(level, child);
      }
      node = child;
    }
    node.packet = packet;
  }

  delete(topic: string): void {
    const path: [TrieNode, string][] = [];
    let node = this.root;
    for (const level of topic.split('/')) {
      const child = node.children.get(level);
      if (!child) return;
      path.push([node, level]);
      node = child;
    }
    node.packet = undefined;
    // Prune the branch back up to the first node still holding a message or other children.
    for (let i = path.length - 1; i >= 0; i--) {
      const [parent, level] = path[i];
      const child = parent.children.get(level) as TrieNode;
      if (child.packet !== undefined || child.children.size > 0) break;
      parent.children.delete(level);
    }
  }

  /**
   * The retained messages whose topic `filter` matches (MQTT 3.1.1 §4.7): `+` is one level, `#` this level and
   * every one below (so `a/#` matches `a`), and a wildcard first level skips topics starting with `$`
   * [MQTT-4.7.2-1]. Depth-first, children in insertion order.
   */
  match(filter: string): StoredPacket[] {
    const levels = filter.split('/');
    const found: StoredPacket[] = [];
    const pending: [TrieNode, number][] = [[this.root, 0]];
    while (pending.length > 0) {
      const [node, depth] = pending.pop() as [TrieNode, number];
      if (depth === levels.length) {
        if (node.packet !== undefined) found.push(node.packet);
        continue;
      }
      const level = levels[depth];
      if (level === '#') {
        collectSubtree(node, depth === 0, found);
      } else if (level === '+') {
        const children = [...wildcardChildren(node, depth === 0)];
        for (let i = children.length - 1; i >= 0; i--) pending.push([children[i], depth + 1]);
      } else {
        const child = node.children.get(level);
        if (child) pending.push([child, depth + 1]);
      }
    }
    return found;
  }
}

function* wildcardChildren(node: TrieNode, firstLevel: boolean): Generator<TrieNode> {
  for (const [level, child] of node.children) if (!(firstLevel && level.startsWith('$'))) yield child;
}

/** `node`'s own message and all below it, depth-first (iterative: topics may have thousands of levels). */
function collectSubtree(node: TrieNode, firstLevel: boolean, found: StoredPacket[]): void {
  if (node.packet !== undefined) found.push(node.packet);
  const pending = [...wildcardChildren(node, firstLevel)].reverse();
  while (pending.length > 0) {
    const next = pending.pop() as TrieNode;
    if (next.packet !== undefined) found.push(next.packet);
    const children = [...next.children.values()];
    for (let i = children.length - 1; i >= 0; i--) pending.push(children[i]);
  }
}
