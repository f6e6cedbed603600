import { FilterTrie } from '../../../src/routing/trie.js';

function matches(trie: FilterTrie<string>, topic: string): string[] {
  const found: string[] = [];
  trie.match(topic, (v) => found.push(v));
  return found.sort();
}

describe('FilterTrie with many siblings', () => {
  it('finds the right filters while siblings are deleted in insertion order, in reverse, and re-added', () => {
    const trie = new FilterTrie<string>();
    const n = 2000;
    for (let i = 0; i < n; i++) trie.getOrCreate(`boot/${i}/+/state`, () => `f${i}`);
    trie.getOrCreate('boot/#', () => 'all');
    for (let i = 0; i < n / 2; i++) {
      expect(trie.delete(`boot/${i}/+/state`)).toBe(true);
      expect(trie.get(`boot/${i}/+/state`)).toBeUndefined();
      expect(matches(trie, `boot/${i + 1}/x/state`)).toEqual(['all', `f${i + 1}`]);
    }
    for (let i = n - 1; i >= n / 2; i -= 2) expect(trie.delete(`boot/${i}/+/state`)).toBe(true);
    expect(trie.size).toBe(n / 4 + 1);
    for (let i = 0; i < n / 2; i += 3) trie.getOrCreate(`boot/${i}/+/state`, () => `g${i}`);
    expect(matches(trie, 'boot/3/y/state')).toEqual(['all', 'g3']);
    expect(matches(trie, 'boot/1000/y/state')).toEqual(['all', 'f1000']);
    expect(matches(trie, 'boot/1001/y/state')).toEqual(['all']);
    const remaining = [...Array(n).keys()].filter((i) => (i < n / 2 ? i % 3 === 0 : i % 2 === 0));
    for (const i of remaining) expect(trie.delete(`boot/${i}/+/state`)).toBe(true);
    expect(trie.delete('boot/#')).toBe(true);
    expect(trie.size).toBe(0);
    expect(matches(trie, 'boot/0/x/state')).toEqual([]);
  });
});
