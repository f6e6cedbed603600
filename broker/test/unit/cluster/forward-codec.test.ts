import { randomBytes } from 'node:crypto';
import { decodeForwarded, encodeForwarded, ForwardDecodeError, type ForwardedMessage } from '../../../src/cluster/forward-codec.js';

const sample: ForwardedMessage = {
  topic: 'acme/site-1/access/door-7/denied', payload: Buffer.from('{"badge":4711}'), qos: 2, retain: true,
  publisherClientId: 'door-7', timestamp: 1763766000123.5,
};

describe('forwarded message codec', () => {
  test('round-trips every field, with and without a share group', () => {
    expect(decodeForwarded(encodeForwarded(sample))).toEqual(sample);
    const shared = { ...sample, qos: 0 as const, retain: false, shareGroup: 'workers', shareFilter: 'acme/jobs/+', payload: Buffer.alloc(0) };
    expect(decodeForwarded(encodeForwarded(shared))).toEqual(shared);
    const redirected = { ...shared, qos: 2 as const, redirects: 3, payload: Buffer.from('job') };
    expect(decodeForwarded(encodeForwarded(redirected))).toEqual(redirected);
  });

  test('version 3 carries the origin identity, with or without a publish id; older versions stay as they were', () => {
    const origin = { brokerId: 'core-2.7', counter: 2 ** 40 + 3 };
    const withOrigin = { ...sample, origin };
    const encoded = encodeForwarded(withOrigin);
    expect(encoded[0]).toBe(3);
    expect(decodeForwarded(encoded)).toEqual(withOrigin);
    const both = { ...withOrigin, publishId: 'core-2.7:41' };
    expect(decodeForwarded(encodeForwarded(both))).toEqual(both);
    expect(encodeForwarded(sample)[0]).toBe(1);
    expect(encodeForwarded({ ...sample, publishId: 'x:1' })[0]).toBe(2);
    expect(() => encodeForwarded({ ...sample, origin: { brokerId: '', counter: 1 } })).toThrow(RangeError);
    expect(() => encodeForwarded({ ...sample, origin: { brokerId: 'n.1', counter: 0 } })).toThrow(RangeError);
    // truncated inside the counter, and an empty origin broker id on the wire
    expect(() => decodeForwarded(Buffer.concat([encoded.subarray(0, encoded.length - sample.payload.length - 1)]))).toThrow(/origin counter/);
    const emptyOrigin = Buffer.from(encodeForwarded({ ...sample, payload: Buffer.alloc(0), origin: { brokerId: 'n', counter: 1 } }));
    emptyOrigin.writeUInt16BE(0, emptyOrigin.length - 8 - 1 - 2);
    expect(() => decodeForwarded(emptyOrigin)).toThrow(ForwardDecodeError);
  });

  test('a share group needs its filter, both ways', () => {
    expect(() => encodeForwarded({ ...sample, shareGroup: 'workers' })).toThrow(RangeError);
    expect(() => encodeForwarded({ ...sample, shareFilter: 'a/+' })).toThrow(RangeError);
    const encoded = encodeForwarded({ ...sample, shareGroup: 'workers', shareFilter: 'a/+' });
    const groupOnly = Buffer.from(encoded);
    groupOnly[1] &= ~16;
    expect(() => decodeForwarded(groupOnly)).toThrow(/flags/);
    const emptyGroup = encodeForwarded({ ...sample, shareGroup: 'g', shareFilter: 'f' });
    const groupAt = 2 + 8 + 2 + sample.topic.length + 2 + sample.publisherClientId.length;
    emptyGroup.writeUInt16BE(0, groupAt);
    expect(() => decodeForwarded(emptyGroup)).toThrow(ForwardDecodeError);
    expect(() => encodeForwarded({ ...sample, shareGroup: 'g', shareFilter: 'f', redirects: 256 })).toThrow(RangeError);
    const noCount = encodeForwarded({ ...sample, shareGroup: 'g', shareFilter: 'f', redirects: 1, payload: Buffer.alloc(0) });
    expect(() => decodeForwarded(noCount.subarray(0, noCount.length - 1))).toThrow(/redirect count/);
  });

  test('a decoder of the first format version refuses what it cannot read rather than misread it', () => {
    // The first decoder accepted flags up to 15: the share filter (bit 4) and redirect (bit 5) bits exceed that.
    const flags = encodeForwarded({ ...sample, shareGroup: 'g', shareFilter: 'f' })[1];
    expect(flags).toBeGreaterThan(15);
    expect(encodeForwarded(sample)[1]).toBeLessThanOrEqual(15);
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
