import { decodeBatch, encodeBatch, encodeEnvelope, EnvelopeError, type EnvelopeBatch } from '../../../src/link/envelope.js';
import type { LinkMessage } from '../../../src/link/queue.js';

const EPOCH = '0123456789abcdef';
const message = (i: number, over: Partial<LinkMessage> = {}): LinkMessage => ({
  topic: `bench/region/t${String(i).padStart(4, '0')}`, payload: Buffer.alloc(256, i), qos: 1, retain: false,
  publisherClientId: 'publisher-1', timestamp: 1_790_000_000_000 + i * 3, ...over,
});

describe('link envelope batch (version 2)', () => {
  test('round-trips every field of several messages: sequences with gaps, client id dictionary, timestamps going back', () => {
    const batch: EnvelopeBatch = {
      originCluster: 'us-east', epoch: EPOCH,
      entries: [
        { seq: 2 ** 40 + 7, message: message(1, { qos: 2, retain: true, topic: 'sensors/é/1' }) },
        { seq: 2 ** 40 + 8, message: message(2, { qos: 0, publisherClientId: 'other' }) },
        { seq: 2 ** 40 + 20, message: message(3, { timestamp: 1_789_999_999_000, publisherClientId: '' }) },
        { seq: 2 ** 40 + 21, message: message(4, { payload: Buffer.alloc(0) }) },
      ],
    };
    expect(decodeBatch(encodeBatch(batch))).toEqual(batch);
  });

  test('deflate applies per payload (≥ 256 B, only when smaller) and round-trips', () => {
    const batch: EnvelopeBatch = {
      originCluster: 'eu', epoch: EPOCH,
      entries: [{ seq: 1, message: message(1, { payload: Buffer.from('x'.repeat(1000)) }) }, { seq: 2, message: message(2, { payload: Buffer.from('short') }) }],
    };
    const bytes = encodeBatch(batch, 'deflate');
    expect(bytes.length).toBeLessThan(200);
    expect(decodeBatch(bytes)).toEqual(batch);
  });

  test('per-message overhead is a few bytes: 6 B besides topic and payload for consecutive messages of one publisher', () => {
    const one = encodeBatch({ originCluster: 'a', epoch: EPOCH, entries: [{ seq: 1, message: message(1) }] });
    const entries = [...Array(100).keys()].map((i) => ({ seq: i + 1, message: message(i + 1) }));
    const hundred = encodeBatch({ originCluster: 'a', epoch: EPOCH, entries });
    const perMessage = (hundred.length - one.length) / 99;
    const topicAndPayload = message(2).topic.length + 256;
    expect(perMessage - topicAndPayload).toBeLessThanOrEqual(6);
    // Header: version, epoch, origin, first sequence, base timestamp, count.
    expect(one.length).toBeLessThan(1 + 8 + 2 + 1 + 6 + 1 + 6 + 'publisher-1'.length + topicAndPayload + 2);
  });

  test('the single-message format of version 1 is still accepted, as a batch of one without epoch', () => {
    const legacy = encodeEnvelope({ originCluster: 'us', seq: 42, message: message(7) });
    expect(decodeBatch(legacy)).toEqual({ originCluster: 'us', epoch: null, entries: [{ seq: 42, message: message(7) }] });
  });

  test('refuses malformed batches with a typed error naming what is wrong', () => {
    const good = encodeBatch({ originCluster: 'us', epoch: EPOCH, entries: [{ seq: 5, message: message(1) }, { seq: 6, message: message(2) }] });
    expect(() => decodeBatch(Buffer.alloc(0))).toThrow(EnvelopeError);
    expect(() => decodeBatch(Buffer.from([9, 1, 2]))).toThrow('unsupported envelope version 9');
    expect(() => decodeBatch(good.subarray(0, 5))).toThrow('truncated in epoch');
    expect(() => decodeBatch(good.subarray(0, good.length - 10))).toThrow('message 2 payload');
    expect(() => decodeBatch(Buffer.concat([good, Buffer.from([0])]))).toThrow('1 bytes after its 2 messages');
    const flagsAt = good.indexOf(Buffer.from('publisher-1')) - 3; // flags, timestamp delta, client id length
    const badFlags = Buffer.from(good); badFlags[flagsAt] = 0x43;
    expect(() => decodeBatch(badFlags)).toThrow('bad envelope flags 0x43 in message 1');
    const count = Buffer.from(good); count[1 + 8 + 3 + 1 + 6] = 0;
    expect(() => decodeBatch(count)).toThrow('without messages');
    expect(() => encodeBatch({ originCluster: 'us', epoch: EPOCH, entries: [] })).toThrow('at least one message');
    expect(() => encodeBatch({ originCluster: 'us', epoch: 'nope', entries: [{ seq: 1, message: message(1) }] })).toThrow('bad envelope epoch');
    expect(() => encodeBatch({ originCluster: 'us', epoch: EPOCH, entries: [{ seq: 3, message: message(1) }, { seq: 3, message: message(2) }] })).toThrow('must increase');
  });
});
