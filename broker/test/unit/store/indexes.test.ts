import { createRequire } from 'node:module';
import { OutgoingQueue } from '../../../src/store/outgoing-queue.js';
import type { QueuedPacket, StoredPacket } from '../../../src/store/persistence.js';
import { RetainedTrie } from '../../../src/store/retained-trie.js';

interface QlobberTrue {
  add(topic: string): void;
  test(topic: string): boolean;
}
const require = createRequire(import.meta.url);
const { QlobberTrue: QlobberTrueCtor } = require('qlobber') as {
  QlobberTrue: new (opts: { wildcard_one: string; wildcard_some: string; separator: string; match_empty_levels: boolean }) => QlobberTrue;
};

const retainedPacket = (topic: string): StoredPacket => ({ cmd: 'publish', topic, payload: Buffer.from(topic), qos: 1, retain: true });
const topicsOf = (packets: StoredPacket[]): string[] => packets.map((p) => p.topic as string);

/** Deterministic PRNG (mulberry32), so a failing case can be replayed. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('RetainedTrie', () => {
  test('matches exact topics, + (one level, empty ones too) and # (the parent level and everything below)', () => {
    const trie = new RetainedTrie();
    for (const topic of ['a', 'a/b', 'a/b/c', 'a//c', 'x/b', '/lead', 'a/b/c/d/e']) trie.set(topic, retainedPacket(topic));
    expect(topicsOf(trie.match('a/b'))).toEqual(['a/b']);
    expect(topicsOf(trie.match('a/+/c')).sort()).toEqual(['a//c', 'a/b/c']);
    expect(topicsOf(trie.match('+/b')).sort()).toEqual(['a/b', 'x/b']);
    expect(topicsOf(trie.match('a/#')).sort()).toEqual(['a', 'a//c', 'a/b', 'a/b/c', 'a/b/c/d/e']);
    expect(topicsOf(trie.match('+/lead'))).toEqual(['/lead']);
    expect(topicsOf(trie.match('a/b/c/#')).sort()).toEqual(['a/b/c', 'a/b/c/d/e']);
    expect(trie.match('a/b/c/d')).toEqual([]);
    expect(trie.match('nothing/#')).toEqual([]);
  });

  test('[MQTT-4.7.2-1] a filter starting with a wildcard does not match topics starting with $; an explicit $ level does', () => {
    const trie = new RetainedTrie();
    for (const topic of ['$SYS/uptime', 'plain/x', 'a/$b']) trie.set(topic, retainedPacket(topic));
    expect(topicsOf(trie.match('#')).sort()).toEqual(['a/$b', 'plain/x']);
    expect(topicsOf(trie.match('+/uptime'))).toEqual([]);
    expect(topicsOf(trie.match('$SYS/#'))).toEqual(['$SYS/uptime']);
    expect(topicsOf(trie.match('a/+'))).toEqual(['a/$b']);
  });

  test('replacing keeps one message per topic; deleting removes it and prunes the branch without touching siblings', () => {
    const trie = new RetainedTrie();
    trie.set('a/b/c', retainedPacket('a/b/c'));
    trie.set('a/b/c', { ...retainedPacket('a/b/c'), payload: Buffer.from('second') });
    trie.set('a/b', retainedPacket('a/b'));
    expect(trie.match('#').map((p) => p.payload?.toString())).toEqual(['a/b', 'second']);
    trie.delete('a/b/c');
    trie.delete('a/b/c/not-there');
    trie.delete('never/stored');
    expect(topicsOf(trie.match('#'))).toEqual(['a/b']);
    trie.delete('a/b');
    expect(trie.match('#')).toEqual([]);
    trie.set('a/b/c', retainedPacket('a/b/c'));
    expect(topicsOf(trie.match('a/+/c'))).toEqual(['a/b/c']);
  });

  test('agrees with a Qlobber matcher (empty levels matched by +, plus the $ rule) on random topics and filters', () => {
    const next = random(20260101);
    const words = ['a', 'b', 'c', '', '$x'];
    const pick = (): string => words[Math.floor(next() * words.length)];
    const topicOf = (): string => Array.from({ length: 1 + Math.floor(next() * 4) }, pick).join('/');
    const trie = new RetainedTrie();
    const topics = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const topic = topicOf();
      topics.add(topic);
      trie.set(topic, retainedPacket(topic));
    }
    for (let i = 0; i < 400; i++) {
      const levels = topicOf().split('/').map((level) => (next() < 0.3 ? '+' : level));
      if (next() < 0.3) levels.push('#');
      const filter = levels.join('/');
      const qlobber = new QlobberTrueCtor({ wildcard_one: '+', wildcard_some: '#', separator: '/', match_empty_levels: true });
      qlobber.add(filter);
      const wildcardFirst = filter.startsWith('+') || filter.startsWith('#');
      const expected = [...topics].filter((topic) => qlobber.test(topic) && !(wildcardFirst && topic.startsWith('$'))).sort();
      expect({ filter, matched: topicsOf(trie.match(filter)).sort() }).toEqual({ filter, matched: expected });
    }
  });

  test('a topic of 20 000 levels is stored, matched by # and deleted without deep recursion', () => {
    const trie = new RetainedTrie();
    const topic = Array.from({ length: 20_000 }, (_, i) => `l${i % 7}`).join('/');
    trie.set(topic, retainedPacket(topic));
    expect(trie.match('#')).toHaveLength(1);
    trie.delete(topic);
    expect(trie.match('#')).toHaveLength(0);
  });
});

describe('OutgoingQueue', () => {
  const publish = (counter: number, messageId?: number, brokerId = 'node-a.1'): StoredPacket => ({
    cmd: 'publish', topic: 't', payload: Buffer.from('p'), qos: 1, brokerId, brokerCounter: counter, messageId,
  });
  const filled = (...packets: StoredPacket[]): { queue: OutgoingQueue; entries: QueuedPacket[] } => {
    const queue = new OutgoingQueue();
    const entries = packets.map((packet, i) => ({ seq: i + 1, packet }));
    for (const entry of entries) queue.append(entry);
    return { queue, entries };
  };

  test('finds a publish by broker and counter, and keeps the messageId index in step with updates', () => {
    const { queue, entries } = filled(publish(1), publish(2), publish(1, undefined, 'node-b.1'));
    expect(queue.samePublish(publish(2, 40))).toBe(entries[1]);
    expect(queue.samePublish(publish(1, 40, 'node-b.1'))).toBe(entries[2]);
    expect(queue.samePublish(publish(3))).toBeUndefined();
    queue.setMessageId(entries[1], 40);
    expect(queue.withMessageId(40)).toBe(entries[1]);
    queue.setMessageId(entries[1], 41);
    expect(queue.withMessageId(40)).toBeUndefined();
    expect(queue.withMessageId(41)).toBe(entries[1]);
  });

  test('a PUBREL replaces the earliest entry with its messageId; a same-broker publish reusing the id does not', () => {
    const { queue, entries } = filled(publish(1, 7), publish(2, 8), publish(3, 8));
    expect(queue.replacedBy({ cmd: 'pubrel', messageId: 8 })).toBe(entries[1]);
    expect(queue.replacedBy(publish(4, 8))).toBeUndefined();
    expect(queue.replacedBy({ cmd: 'pubrel', messageId: 8, brokerId: 'node-a.2', brokerCounter: 1 })).toBe(entries[1]);
    queue.replacePacket(entries[1], { cmd: 'pubrel', messageId: 8 });
    expect(queue.samePublish(publish(2))).toBeUndefined();
    expect(queue.withMessageId(8)).toBe(entries[1]);
  });

  test('two PUBRELs in flight stay distinct (a PUBREL without broker identity never matches another by counter)', () => {
    const { queue, entries } = filled({ cmd: 'pubrel', messageId: 5 }, publish(2, 6));
    expect(queue.samePublish({ cmd: 'pubrel', messageId: 6 })).toBeUndefined();
    expect(queue.replacedBy({ cmd: 'pubrel', messageId: 6 })).toBe(entries[1]);
  });

  test('removal keeps queue order and size', () => {
    const { queue, entries } = filled(publish(1, 1), publish(2, 2), publish(3, 3));
    queue.remove(entries[1]);
    expect(queue.size).toBe(2);
    expect(queue.packets().map((p) => p.brokerCounter)).toEqual([1, 3]);
    expect(queue.withMessageId(2)).toBeUndefined();
    queue.append({ seq: 4, packet: publish(4) });
    expect(queue.packets().map((p) => p.brokerCounter)).toEqual([1, 3, 4]);
  });

  test('updates and acknowledgements at the tail of a 100 000-entry queue are indexed lookups, not scans', () => {
    const size = 100_000;
    const { queue, entries } = filled(...Array.from({ length: size }, (_, i) => publish(i + 1)));
    const started = performance.now();
    for (let i = size - 10_000; i < size; i++) {
      const entry = queue.samePublish(publish(i + 1)) as QueuedPacket;
      queue.setMessageId(entry, (i % 65535) + 1);
      queue.remove(queue.withMessageId((i % 65535) + 1) as QueuedPacket);
    }
    // A scan from the head would visit ~10^9 entries here; indexed lookups take a few milliseconds.
    expect(performance.now() - started).toBeLessThan(1000);
    expect(queue.size).toBe(size - 10_000);
    expect(queue.samePublish(publish(1))).toBe(entries[0]);
  });
});
