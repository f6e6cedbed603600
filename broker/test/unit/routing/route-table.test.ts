import { RouteTable } from '../../../src/routing/route-table.js';
import { FilterTrie } from '../../../src/routing/trie.js';
import { filterMatches } from '../../../src/routing/topic.js';
import { forEachSeed, randomFilter, topicNear } from '../routesync/prng.js';

function owners(table: RouteTable, topic: string): string[] {
  return [...table.match(topic)].sort();
}

describe('RouteTable matching', () => {
  const table = new RouteTable();
  table.add('#', 'all');
  table.add('+', 'one-level');
  table.add('a/#', 'a-tree');
  table.add('a/+', 'a-child');
  table.add('a/+/c', 'a-x-c');
  table.add('$SYS/#', 'sys');
  table.add('$SYS/+/load', 'sys-load');
  table.add('+/b', 'any-b');
  table.add('/+', 'root-child');

  it.each([
    ['a', ['a-tree', 'all', 'one-level']], // `#` matches the parent level: a/# gets "a"
    ['a/', ['a-child', 'a-tree', 'all']], // `+` matches an empty level
    ['a/b', ['a-child', 'a-tree', 'all', 'any-b']],
    ['a/x/c', ['a-tree', 'a-x-c', 'all']],
    ['/x', ['all', 'root-child']],
    ['/b', ['all', 'any-b', 'root-child']],
    ['$SYS/broker/load', ['sys', 'sys-load']], // wildcards at the first level never match `$` topics
    ['$SYS', ['sys']],
    ['$other/b', []],
    ['b/a', ['all']],
  ])('%j goes to %j', (topic, expected) => {
    expect(owners(table, topic)).toEqual(expected);
  });

  it('matches a `$` level below the first with wildcards', () => {
    const t = new RouteTable();
    t.add('x/+', 'n1');
    t.add('x/#', 'n2');
    expect(owners(t, 'x/$y')).toEqual(['n1', 'n2']);
  });
});

describe('RouteTable ownership', () => {
  it('keeps one route per (filter, owner, route id), idempotently', () => {
    const t = new RouteTable();
    expect(t.add('a/+', 'n1')).toBe(true);
    expect(t.add('a/+', 'n1')).toBe(false);
    expect(t.add('a/+', 'n2')).toBe(true);
    expect(t.add('a/+', 'n1', 'g1')).toBe(true);
    expect(t.size).toBe(3);
    expect(t.countOf('n1')).toBe(2);
    expect(t.stats()).toEqual({ routes: 3, filters: 1, owners: 2 });
    expect(owners(t, 'a/b')).toEqual(['n1', 'n2']);
  });

  it("deleting one owner's route never removes another's", () => {
    const t = new RouteTable();
    t.add('a/b', 'n1');
    t.add('a/b', 'n2');
    expect(t.delete('a/b', 'n1')).toBe(true);
    expect(t.delete('a/b', 'n1')).toBe(false);
    expect(owners(t, 'a/b')).toEqual(['n2']);
    expect(t.has('a/b', 'n2')).toBe(true);
    expect(t.countOf('n1')).toBe(0);
  });

  it('returns route ids with matchRoutes', () => {
    const t = new RouteTable();
    t.add('s/+', 'n1', 'g1');
    t.add('s/+', 'n1', 'g2');
    t.add('s/#', 'n2');
    const found = t.matchRoutes('s/x').map((r) => `${r.filter}|${r.owner}|${r.routeId}`).sort();
    expect(found).toEqual(['s/#|n2|', 's/+|n1|g1', 's/+|n1|g2']);
    expect(t.delete('s/+', 'n1', 'g1')).toBe(true);
    expect(t.matchRoutes('s/x').map((r) => r.routeId).sort()).toEqual(['', 'g2']);
  });

  it('deletes every route of an owner', () => {
    const t = new RouteTable();
    t.add('a', 'n1');
    t.add('a/#', 'n1', 'g');
    t.add('a', 'n2');
    const removed = t.deleteOwner('n1').map((r) => `${r.filter}|${r.routeId}`).sort();
    expect(removed).toEqual(['a/#|g', 'a|']);
    expect(t.size).toBe(1);
    expect(owners(t, 'a')).toEqual(['n2']);
    expect(t.deleteOwner('nobody')).toEqual([]);
  });

  it('prunes the trie when routes go', () => {
    const t = new RouteTable();
    const filters = ['a/b/c', 'a/b/#', 'a/+/c', '+/+', '#', 'x//y', 'a/b', 'a/c', 'a/d'];
    for (const f of filters) t.add(f, 'n1');
    for (const f of filters) expect(t.delete(f, 'n1')).toBe(true);
    expect(t.stats()).toEqual({ routes: 0, filters: 0, owners: 0 });
    expect([...t.routes()]).toEqual([]);
  });

  it('lists its routes', () => {
    const t = new RouteTable();
    t.add('a/#', 'n1');
    t.add('+', 'n2', 'g');
    t.add('#', 'n3');
    const all = [...t.routes()].map((r) => `${r.filter}|${r.owner}|${r.routeId}`).sort();
    expect(all).toEqual(['#|n3|', '+|n2|g', 'a/#|n1|']);
  });
});

describe('FilterTrie against the reference matcher (property)', () => {
  it('matches exactly the filters the reference matcher accepts, through adds and deletes', () => {
    forEachSeed(200, (rng) => {
      const trie = new FilterTrie<string>();
      const present = new Set<string>();
      for (let step = 0; step < 40; step++) {
        const f = randomFilter(rng);
        if (present.has(f) && rng.chance(0.5)) {
          expect(trie.delete(f)).toBe(true);
          present.delete(f);
        } else {
          trie.getOrCreate(f, () => f);
          present.add(f);
        }
      }
      expect(trie.size).toBe(present.size);
      for (let probe = 0; probe < 40; probe++) {
        const topic = topicNear(rng, rng.pick([...present, randomFilter(rng)]));
        const found: string[] = [];
        trie.match(topic, (f) => found.push(f));
        const expected = [...present].filter((f) => filterMatches(f, topic));
        expect({ topic, found: found.sort() }).toEqual({ topic, found: expected.sort() });
      }
    });
  });
});

describe('RouteTable against a plain set of routes (property)', () => {
  it('agrees on routes, counts and matches through random adds and deletes of several owners', () => {
    forEachSeed(150, (rng) => {
      const table = new RouteTable();
      const model = new Set<string>();
      const ownerPool = ['n1', 'n2', 'n3'];
      const idPool = ['', '', 'g1', 'g2'];
      for (let step = 0; step < 60; step++) {
        const filter = randomFilter(rng, 3);
        const owner = rng.pick(ownerPool);
        const routeId = rng.pick(idPool);
        const key = `${filter}|${owner}|${routeId}`;
        if (rng.chance(0.1)) {
          table.deleteOwner(owner);
          for (const k of [...model]) if (k.split('|')[1] === owner) model.delete(k);
        } else if (rng.chance(0.45)) {
          expect(table.delete(filter, owner, routeId)).toBe(model.delete(key));
        } else {
          expect(table.add(filter, owner, routeId)).toBe(!model.has(key));
          model.add(key);
        }
      }
      expect([...table.routes()].map((r) => `${r.filter}|${r.owner}|${r.routeId}`).sort()).toEqual([...model].sort());
      for (const owner of ownerPool) expect(table.countOf(owner)).toBe([...model].filter((k) => k.split('|')[1] === owner).length);
      for (let probe = 0; probe < 20; probe++) {
        const topic = topicNear(rng, randomFilter(rng, 3));
        const expected = new Set([...model].filter((k) => filterMatches(k.split('|')[0], topic)).map((k) => k.split('|')[1]));
        expect([...table.match(topic)].sort()).toEqual([...expected].sort());
        expect(table.matchRoutes(topic).length).toBe([...model].filter((k) => filterMatches(k.split('|')[0], topic)).length);
      }
    });
  });
});
