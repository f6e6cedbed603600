import {
  TopicError,
  filterMatches,
  isValidTopicFilter,
  isValidTopicName,
  parseSharedFilter,
  topicFilterProblem,
  topicNameProblem,
} from '../../../src/routing/topic.js';

describe('topic names and filters', () => {
  it.each(['a', 'a/b', '/', '/a', 'a/', 'a//b', '$SYS/broker', 'caf\u00e9/\u{1F600}'])('accepts the topic name %j', (t) => {
    expect(topicNameProblem(t)).toBeNull();
  });

  it.each([
    ['', 'is empty'],
    ['a/+', "wildcard '+'"],
    ['a/#', "wildcard '#'"],
    ['a\u0000b', 'U+0000'],
    ['a\ud800', 'unpaired'],
  ])('refuses the topic name %j (%s)', (t, reason) => {
    expect(topicNameProblem(t)).toContain(reason);
  });

  it.each(['#', '+', 'a/#', '+/+', '/+', '+/', 'a/+/b/#', '$SYS/#', 'a//b'])('accepts the filter %j', (f) => {
    expect(isValidTopicFilter(f)).toBe(true);
  });

  it.each([
    ['', 'is empty'],
    ['a#', 'does not fill'],
    ['a/b+', 'does not fill'],
    ['#/a', 'not the last level'],
    ['a/#/b', 'not the last level'],
    ['++', 'does not fill'],
  ])('refuses the filter %j (%s)', (f, reason) => {
    expect(topicFilterProblem(f)).toContain(reason);
  });

  it('refuses topics longer than 65535 bytes', () => {
    expect(isValidTopicName('a'.repeat(65535))).toBe(true);
    expect(topicNameProblem('a'.repeat(65536))).toContain('longer than');
    expect(topicFilterProblem('\u00e9'.repeat(40000))).toContain('longer than');
  });
});

describe('shared subscriptions', () => {
  it('splits $share/<group>/<filter>', () => {
    expect(parseSharedFilter('$share/g1/a/+/#')).toEqual({ group: 'g1', filter: 'a/+/#' });
    expect(parseSharedFilter('$share/g/#')).toEqual({ group: 'g', filter: '#' });
  });

  it('leaves other filters alone', () => {
    expect(parseSharedFilter('a/b')).toBeNull();
    expect(parseSharedFilter('$SYS/#')).toBeNull();
    expect(parseSharedFilter('$sharex/g/a')).toBeNull();
  });

  it.each([
    ['$share/', 'no filter'],
    ['$share/g', 'no filter'],
    ['$share//a', 'empty group'],
    ['$share/g+/a', 'wildcard'],
    ['$share/#/a', 'wildcard'],
    ['$share/g/', 'is empty'],
    ['$share/g/a#', 'does not fill'],
  ])('refuses %j (%s)', (input, reason) => {
    expect(() => parseSharedFilter(input)).toThrow(TopicError);
    expect(() => parseSharedFilter(input)).toThrow(reason);
  });
});

describe('reference matcher', () => {
  it.each([
    ['#', 'a', true],
    ['#', 'a/b/c', true],
    ['#', '/', true],
    ['#', '$SYS/x', false],
    ['+/x', '$SYS/x', false],
    ['+', '$SYS', false],
    ['$SYS/#', '$SYS', true],
    ['$SYS/#', '$SYS/a/b', true],
    ['$SYS/+', '$SYS/a', true],
    ['a/#', 'a', true],
    ['a/#', 'a/', true],
    ['a/+', 'a', false],
    ['a/+', 'a/', true],
    ['+/+', '/', true],
    ['+', '', true],
    ['/+', '/a', true],
    ['a/+/#', 'a', false],
    ['a/+/#', 'a/b', true],
    ['a/b', 'a/b/c', false],
    ['a/b/c', 'a/b', false],
    ['a/+/c', 'a/x/c', true],
    ['a/+/c', 'a/x/d', false],
    ['x/$a', 'x/$a', true],
    ['x/+', 'x/$a', true],
  ])('%j matches %j: %s', (filter, topic, expected) => {
    expect(filterMatches(filter, topic)).toBe(expected);
  });
});
