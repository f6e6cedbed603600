import { expandTemplate, topicFilterProblem, topicMatches, topicNameProblem } from '../../../src/bench/template.js';

describe('expandTemplate', () => {
  const context = { index: 7, clientId: 'mb1_sub_7' };

  it('replaces %i with the client index everywhere', () => {
    expect(expandTemplate('bench/%i/x/%i', context)).toBe('bench/7/x/7');
  });

  it('keeps wildcards around the index so each client gets its own filter', () => {
    expect(expandTemplate('t/bench/+/%i/sub/+/#', context)).toBe('t/bench/+/7/sub/+/#');
  });

  it('replaces %c with the client id and %% with a literal percent', () => {
    expect(expandTemplate('c/%c/100%%', context)).toBe('c/mb1_sub_7/100%');
  });

  it('leaves unknown % sequences alone', () => {
    expect(expandTemplate('a/%x/%', context)).toBe('a/%x/%');
  });
});

describe('topic validation', () => {
  it('accepts well-formed filters', () => {
    for (const filter of ['a', 'a/b', '#', '+', 'a/+/b', 't/bench/+/1/sub/+/#', '/a', 'a//b']) {
      expect(topicFilterProblem(filter)).toBeUndefined();
    }
  });

  it('rejects misplaced wildcards and empty filters', () => {
    expect(topicFilterProblem('')).toMatch(/empty/);
    expect(topicFilterProblem('a/#/b')).toMatch(/last/);
    expect(topicFilterProblem('a/b#')).toMatch(/whole level/);
    expect(topicFilterProblem('a/b+/c')).toMatch(/whole level/);
  });

  it('refuses to publish to wildcard topics', () => {
    expect(topicNameProblem('a/+/b')).toMatch(/wildcard/);
    expect(topicNameProblem('a/#')).toMatch(/wildcard/);
    expect(topicNameProblem('')).toMatch(/empty/);
    expect(topicNameProblem('bench/1')).toBeUndefined();
  });
});

describe('topicMatches', () => {
  it.each([
    ['a/b', 'a/b', true],
    ['a/b', 'a/c', false],
    ['a/+', 'a/b', true],
    ['a/+', 'a/b/c', false],
    ['a/+', 'a', false],
    ['a/#', 'a', true],
    ['a/#', 'a/b/c', true],
    ['#', 'a/b', true],
    ['+/+', '/x', true],
    ['t/bench/+/7/sub/+/#', 't/bench/eu/7/sub/dev/x/y', true],
    ['t/bench/+/7/sub/+/#', 't/bench/eu/8/sub/dev/x', false],
    ['t/bench/+/7/sub/+/#', 't/bench/eu/7/sub/dev', true],
    ['t/bench/+/7/sub/+/#', 't/bench/eu/7/sub', false],
    ['#', '$SYS/broker', false],
    ['+/broker', '$SYS/broker', false],
    ['$SYS/#', '$SYS/broker', true],
  ])('%s against %s is %s', (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected);
  });
});
