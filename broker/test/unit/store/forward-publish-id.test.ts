import { describe, expect, it } from '@jest/globals';
import { decodeForwarded, encodeForwarded, ForwardDecodeError, type ForwardedMessage } from '../../../src/cluster/forward-codec.js';

// The publish identity on the Forward channel (format version 2; see store/README.md, "QoS 2 receive state").
const message: ForwardedMessage = { topic: 'default/t/1', payload: Buffer.from('m1'), qos: 2, retain: false, publisherClientId: 'pub', timestamp: 1700000000000 };

describe('publish identity in a forwarded message', () => {
  it('travels in version 2, with a copy identity too; a message without one stays version 1', () => {
    const withId = encodeForwarded({ ...message, publishId: 'core-0.3:17', copy: { incarnation: 3, seq: 9, attempt: 1 } });
    expect(withId.readUInt8(0)).toBe(2);
    expect(decodeForwarded(withId)).toEqual({ ...message, publishId: 'core-0.3:17', copy: { incarnation: 3, seq: 9, attempt: 1 } });
    const plain = encodeForwarded(message);
    expect(plain.readUInt8(0)).toBe(1);
    expect(decodeForwarded(plain).publishId).toBeUndefined();
  });

  it('an empty identity is refused both ways; a truncated one is a decode error', () => {
    expect(() => encodeForwarded({ ...message, publishId: '' })).toThrow(/empty publish id/);
    const encoded = encodeForwarded({ ...message, payload: Buffer.alloc(0), publishId: 'core-0.3:17' });
    expect(() => decodeForwarded(encoded.subarray(0, encoded.length - 3))).toThrow(ForwardDecodeError);
    const empty = Buffer.from(encoded);
    empty.writeUInt16BE(0, encoded.length - 'core-0.3:17'.length - 2);
    expect(() => decodeForwarded(empty.subarray(0, encoded.length - 'core-0.3:17'.length))).toThrow(/empty publish id/);
  });
});
