import { HEADER_BYTES, PayloadFactory, readHeader, wallClockMs } from '../../../src/bench/payload.js';

describe('bench payloads', () => {
  it('have the requested size and round-trip their header', () => {
    const before = wallClockMs();
    const payload = new PayloadFactory(64).create(12, 3456);
    const after = wallClockMs();
    expect(payload).toHaveLength(64);
    const header = readHeader(payload);
    expect(header).toMatchObject({ publisher: 12, sequence: 3456 });
    expect(header?.sentAtMs).toBeGreaterThanOrEqual(before);
    expect(header?.sentAtMs).toBeLessThanOrEqual(after);
  });

  it('reads headers from a Uint8Array view at an offset', () => {
    const payload = new PayloadFactory(HEADER_BYTES).create(1, 2);
    const backing = new Uint8Array(payload.length + 8);
    backing.set(payload, 8);
    expect(readHeader(backing.subarray(8))).toMatchObject({ publisher: 1, sequence: 2 });
  });

  it('ignores payloads that are not bench payloads', () => {
    expect(readHeader(Buffer.from('hello from mosquitto_pub, long enough'))).toBeUndefined();
    expect(readHeader(Buffer.alloc(4))).toBeUndefined();
  });

  it('refuses sizes that cannot hold the header', () => {
    expect(() => new PayloadFactory(HEADER_BYTES - 1)).toThrow(/at least|>=/);
  });
});
