/**
 * A trie of MQTT topic filters, one value per filter, matched against topic names.
 *
 * Memory matters (a cluster table holds every route of every node): a node keeps its first literal child inline
 * and only grows a Map when a second literal child appears; `+` and `#` children have their own slots so that
 * matching never looks them up by string.
 */
/** A removed inline child is replaced from `more` only while `more` holds at most this many (see removeChild). */
const PROMOTE_MAX = 8;

class TrieNode<T> {
  firstKey: string | undefined = undefined;
  firstChild: TrieNode<T> | undefined = undefined;
  more: Map<string, TrieNode<T>> | undefined = undefined;
  plus: TrieNode<T> | undefined = undefined;
  /** Value of the filter that ends at this node. */
  value: T | undefined = undefined;
  /** Value of the filter that ends with `#` right below this node. */
  hashValue: T | undefined = undefined;

  child(level: string): TrieNode<T> | undefined {
    if (this.firstKey === level) return this.firstChild;
    return this.more?.get(level);
  }

  addChild(level: string): TrieNode<T> {
    const node = new TrieNode<T>();
    if (this.firstChild === undefined) {
      this.firstKey = level;
      this.firstChild = node;
    } else {
      (this.more ??= new Map()).set(level, node);
    }
    return node;
  }

  removeChild(level: string): void {
    if (this.firstKey === level) {
      this.firstKey = undefined;
      this.firstChild = undefined;
      // Promote only from a small Map: taking the first entry of a big one that has seen many deletions walks its
      // deleted slots, and removing the children in insertion order (a lane of 100 k routes expiring) was quadratic.
      if (this.more !== undefined && this.more.size <= PROMOTE_MAX) this.promoteFromMore();
      return;
    }
    this.more?.delete(level);
    if (this.more?.size === 0) this.more = undefined;
  }

  private promoteFromMore(): void {
    if (this.more === undefined) return;
    const first = this.more.entries().next();
    if (first.done === true) return;
    const [key, node] = first.value;
    this.more.delete(key);
    this.firstKey = key;
    this.firstChild = node;
    if (this.more.size === 0) this.more = undefined;
  }

  isEmpty(): boolean {
    return (
      this.value === undefined &&
      this.hashValue === undefined &&
      this.firstChild === undefined &&
      this.more === undefined &&
      this.plus === undefined
    );
  }

  *children(): Generator<[string, TrieNode<T>]> {
    if (this.firstChild !== undefined) yield [this.firstKey as string, this.firstChild];
    if (this.more !== undefined) yield* this.more;
    if (this.plus !== undefined) yield ['+', this.plus];
  }
}

export class FilterTrie<T> {
  private readonly root = new TrieNode<T>();
  private count = 0;

  /** Number of filters holding a value. */
  get size(): number {
    return this.count;
  }

  get(filter: string): T | undefined {
    const levels = filter.split('/');
    let node: TrieNode<T> | undefined = this.root;
    const last = levels.length - 1;
    for (let i = 0; i < last && node !== undefined; i++) node = step(node, levels[i]);
    if (node === undefined) return undefined;
    return levels[last] === '#' ? node.hashValue : step(node, levels[last])?.value;
  }

  /** The value of `filter`, created with `create()` when the filter has none yet. */
  getOrCreate(filter: string, create: () => T): T {
    const levels = filter.split('/');
    let node = this.root;
    const last = levels.length - 1;
    for (let i = 0; i < last; i++) node = stepOrCreate(node, levels[i]);
    if (levels[last] === '#') {
      if (node.hashValue === undefined) {
        node.hashValue = create();
        this.count++;
      }
      return node.hashValue;
    }
    node = stepOrCreate(node, levels[last]);
    if (node.value === undefined) {
      node.value = create();
      this.count++;
    }
    return node.value;
  }

  /** Removes the value of `filter` and prunes the nodes left empty. Returns whether there was a value. */
  delete(filter: string): boolean {
    const levels = filter.split('/');
    const path: TrieNode<T>[] = [this.root];
    const last = levels.length - 1;
    let node: TrieNode<T> | undefined = this.root;
    for (let i = 0; i < last; i++) {
      node = step(node, levels[i]);
      if (node === undefined) return false;
      path.push(node);
    }
    if (levels[last] === '#') {
      if (node.hashValue === undefined) return false;
      node.hashValue = undefined;
    } else {
      const leaf = step(node, levels[last]);
      if (leaf === undefined || leaf.value === undefined) return false;
      leaf.value = undefined;
      path.push(leaf);
    }
    this.count--;
    prune(path, levels);
    return true;
  }

  /** Calls `visit` with the value of every filter that matches the topic name `topic`. */
  match(topic: string, visit: (value: T) => void): void {
    const levels = topic.split('/');
    matchFrom(this.root, levels, 0, levels[0].charCodeAt(0) === 0x24 /* $ */, visit);
  }

  /** Every (filter, value) pair, in no particular order. */
  *entries(): Generator<[string, T]> {
    yield* walk(this.root, []);
  }
}

function step<T>(node: TrieNode<T>, level: string): TrieNode<T> | undefined {
  return level === '+' ? node.plus : node.child(level);
}

function stepOrCreate<T>(node: TrieNode<T>, level: string): TrieNode<T> {
  if (level === '+') return (node.plus ??= new TrieNode<T>());
  return node.child(level) ?? node.addChild(level);
}

/** `path[i]` is the node reached after `levels[0..i-1]`; removes trailing nodes that hold nothing. */
function prune<T>(path: TrieNode<T>[], levels: string[]): void {
  for (let i = path.length - 1; i > 0; i--) {
    if (!path[i].isEmpty()) return;
    const parent = path[i - 1];
    const level = levels[i - 1];
    if (level === '+') parent.plus = undefined;
    else parent.removeChild(level);
  }
}

function matchFrom<T>(node: TrieNode<T>, levels: string[], i: number, dollar: boolean, visit: (value: T) => void): void {
  const wildcardsAllowed = i > 0 || !dollar;
  if (node.hashValue !== undefined && wildcardsAllowed) visit(node.hashValue);
  if (i === levels.length) {
    if (node.value !== undefined) visit(node.value);
    return;
  }
  const literal = node.child(levels[i]);
  if (literal !== undefined) matchFrom(literal, levels, i + 1, dollar, visit);
  if (node.plus !== undefined && wildcardsAllowed) matchFrom(node.plus, levels, i + 1, dollar, visit);
}

function* walk<T>(node: TrieNode<T>, prefix: string[]): Generator<[string, T]> {
  if (node.hashValue !== undefined) yield [[...prefix, '#'].join('/'), node.hashValue];
  if (node.value !== undefined && prefix.length > 0) yield [prefix.join('/'), node.value];
  for (const [level, child] of node.children()) yield* walk(child, [...prefix, level]);
}
