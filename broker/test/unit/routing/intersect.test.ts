import { covers, intersect, intersectAll, overlaps } from '../../../src/routing/intersect.js';
import { TopicError, filterMatches } from '../../../src/routing/topic.js';
import { forEachSeed, randomFilter, topicNear } from '../routesync/prng.js';

describe('intersect', () => {
  it.each([
    ['a/b', 'a/b', 'a/b'],
    ['a/b', 'a/c', null],
    ['#', 'a/b', 'a/b'],
    ['a/b', '#', 'a/b'],
    ['#', '#', '#'],
    ['+', '#', '+'],
    ['a/#', 'a', 'a'], // `#` matches the parent level
    ['a', 'a/#', 'a'],
    ['a/#', 'a/b/#', 'a/b/#'],
    ['a/+', 'a/#', 'a/+'],
    ['a/+/#', 'a', null],
    ['+/b', 'a/+', 'a/b'],
    ['a/#', '+/b', 'a/b'],
    ['+/+', '+/+/+', null],
    ['+/#', '+/+/+', '+/+/+'],
    ['a/+/c/#', '+/b/+', 'a/b/c'],
    ['a/+', 'a/', 'a/'], // `+` matches the empty level
    ['/+', '+/x', '/x'],
    ['#', '$SYS/x', null], // wildcards at the first level never match `$` topics
    ['+/x', '$SYS/x', null],
    ['$SYS/#', '#', null],
    ['$SYS/#', '$SYS/+', '$SYS/+'],
    ['$SYS/#', '$SYS', '$SYS'],
    ['x/#', 'x/$y', 'x/$y'],
    ['+/#', '+/+', '+/+'],
  ])('%j ∩ %j = %j', (a, b, expected) => {
    expect(intersect(a, b)).toBe(expected);
    expect(intersect(b, a)).toBe(expected);
  });

  it('refuses invalid filters', () => {
    expect(() => intersect('a/#/b', 'a')).toThrow(TopicError);
    expect(() => intersect('a', '')).toThrow(TopicError);
  });

  it('gives every intersection of a subscription with several link topics', () => {
    expect(intersectAll('+/temp/#', ['eu/#', 'us/+/x', 'asia/humidity', '$SYS/#']).sort()).toEqual(['eu/temp/#', 'us/temp/x']);
    expect(intersectAll('#', ['a/#', 'a/b'])).toEqual(['a/#', 'a/b']);
    expect(intersectAll('a/b', ['a/#', 'a/+'])).toEqual(['a/b']);
  });

  it('answers covers and overlaps', () => {
    expect(covers('a/#', 'a/b/+')).toBe(true);
    expect(covers('a/+', 'a/#')).toBe(false);
    expect(covers('#', '$SYS/x')).toBe(false);
    expect(overlaps('a/+', '+/b')).toBe(true);
    expect(overlaps('a/+', 'b/+')).toBe(false);
  });

  it('matches a topic iff both filters do (property)', () => {
    forEachSeed(300, (rng) => {
      const a = randomFilter(rng);
      const b = rng.chance(0.3) ? topicNear(rng, a) : randomFilter(rng);
      const both = intersect(a, b);
      expect(intersect(b, a)).toBe(both);
      for (let i = 0; i < 30; i++) {
        const topic = topicNear(rng, rng.pick([a, b, both ?? a]));
        const expected = filterMatches(a, topic) && filterMatches(b, topic);
        const actual = both !== null && filterMatches(both, topic);
        expect({ a, b, both, topic, matches: actual }).toEqual({ a, b, both, topic, matches: expected });
      }
    });
  });
});
