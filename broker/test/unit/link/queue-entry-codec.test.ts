import { serialize } from 'node:v8';
import { describe, expect, it } from '@jest/globals';
import { decodeQueueEntry, encodeQueueEntry } from '../../../src/link/queue-entry-codec.js';
import type { QueueEntry } from '../../../src/link/queue.js';

const entry = (message: Record<string, unknown>): QueueEntry => ({
  seq: 123456789012, bytes: 321, enqueuedAt: 1_763_780_000_123,
  message: { topic: 'bench/ü/1', payload: Buffer.from([0, 1, 2, 255]), qos: 2, retain: false, publisherClientId: 'pub-1', timestamp: 1_763_780_000_100, ...message } as QueueEntry['message'],
});

describe('link queue entry codec', () => {
  it('round-trips the binary layout: flags, strings, publish identity, intake, payload', () => {
    for (const extra of [{}, { retain: true, qos: 1 }, { publishId: 'node-1.3:77' }, { intake: { node: 'b-2', incarnation: 4, seq: 99 } }, { payload: Buffer.alloc(0), publisherClientId: '' }]) {
      const original = entry(extra);
      const encoded = encodeQueueEntry(original);
      expect(encoded[0]).toBe(1);
      expect(decodeQueueEntry(encoded)).toEqual(original);
    }
  });

  it('falls back to v8 for a message with fields the layout does not know, and decodes entries stored as v8', () => {
    const unknown = entry({ properties: { userProperties: { a: 'b' } } });
    const encoded = encodeQueueEntry(unknown);
    expect(encoded[0]).toBe(0xff);
    expect(decodeQueueEntry(encoded)).toEqual(unknown);
    const old = entry({});
    expect(decodeQueueEntry(serialize(old))).toEqual(old);
  });

  it('names an unknown encoding', () => {
    expect(() => decodeQueueEntry(Buffer.from([7, 0, 0]))).toThrow(/link queue entry: unknown encoding \(first byte 7, 3 bytes\)/);
  });
});
