import { randomBytes } from 'node:crypto';
import { decodeForwarded, encodeForwarded, ForwardDecodeError, type ForwardedMessage } from '../../../src/cluster/forward-codec.js';

const sample: ForwardedMessage = {
  topic: 'acme/site-1/access/door-7/denied', payload: Buffer.from('{"badge":4711}'), qos: 2, retain: true,
  publisherClientId: 'door-7', timestamp: 1763766000123.5,
};

describe('forwarded message codec', () => {
  test('round-trips every field, with and without a share group', () => {
    expect(decodeForwarded(encodeForwarded(sample))).toEqual({ ...sample, shareGroup: undefined });
    const shared = { ...sample, qos: 0 as const, retain: false, shareGroup: 'workers', payload: Buffer.alloc(0) };
    expect(decodeForwarded(encodeForwarded(shared))).toEqual(shared);
  });

  test('rejects truncations, bad versions and bad flags with a typed error', () => {
    const encoded = encodeForwarded(sample);
    for (let length = 0; length < 2 + 8 + 2 + sample.topic.length + 2 + sample.publisherClientId.length; length++) {
      expect(() => decodeForwarded(encoded.subarray(0, length))).toThrow(ForwardDecodeError);
    }
    const badVersion = Buffer.from(encoded);
    badVersion[0] = 9;
    expect(() => decodeForwarded(badVersion)).toThrow(/version 9/);
    const badQos = Buffer.from(encoded);
    badQos[1] = 3;
    expect(() => decodeForwarded(badQos)).toThrow(/flags/);
  });

  test('random buffers never escape as anything but ForwardDecodeError', () => {
    for (let i = 0; i < 5000; i++) {
      const buf = randomBytes(Math.floor(Math.random() * 64));
      try {
        decodeForwarded(buf);
      } catch (err) {
        expect(err).toBeInstanceOf(ForwardDecodeError);
      }
    }
  });
});
