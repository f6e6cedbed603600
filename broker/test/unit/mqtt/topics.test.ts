import { filterCovers, isValidFilter, isValidTopicName, levelCount, topicMatches } from '../../../src/mqtt/auth/topics.js';

describe('topic matching', () => {
  test.each([
    ['a/b', 'a/b', true],
    ['a/+', 'a/b', true],
    ['a/+', 'a/b/c', false],
    ['a/#', 'a', true], // [MQTT-4.7.1-2]: the parent level matches too
    ['a/#', 'a/b/c', true],
    ['#', 'a/b', true],
    ['+/+', '/x', true], // [MQTT-4.7.1-3]: empty levels are levels
    ['+', '/x', false],
    ['a/b', 'a/b/c', false],
    ['a/b/c', 'a/b', false],
  ])('filter %s matches topic %s: %s', (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected);
  });

  test.each([
    ['#', '#', true],
    ['#', 'a/+/b', true],
    ['a/#', 'a/#', true],
    ['a/#', 'a', true],
    ['a/#', 'a/+/c', true],
    ['a/#', '#', false],
    ['a/+', 'a/b', true],
    ['a/+', 'a/+', true],
    ['a/+', 'a/#', false],
    ['a/b', 'a/+', false],
    ['a/b', 'a/b', true],
    ['a/+/#', 'a/x', true],
    ['a/b', 'a/b/c', false],
    ['a', 'a/#', false],
    ['+/+', '+/#', false],
  ])('pattern %s covers filter %s: %s', (pattern, filter, expected) => {
    expect(filterCovers(pattern, filter)).toBe(expected);
  });

  test('valid filters and topic names', () => {
    expect(['#', 'a/#', '+', 'a/+/b', '/', '$share/g/#'].every(isValidFilter)).toBe(true);
    expect(['', 'a#', 'a/#/b', 'a+/b', 'x\u0000'].some(isValidFilter)).toBe(false);
    expect(isValidTopicName('a/b')).toBe(true);
    expect(['', 'a/+', 'a/#', 'a\u0000'].some(isValidTopicName)).toBe(false);
  });

  test('levelCount counts separators plus one', () => {
    expect(levelCount('a')).toBe(1);
    expect(levelCount('a/b/')).toBe(3);
  });
});
