import { PacketSizeGuard } from '../../../src/mqtt/packet-size-guard.js';

describe('PacketSizeGuard', () => {
  test('passes packets within the limit, split across chunks anywhere', () => {
    const pingreq = [0xc0, 0x00];
    const publish = [0x30, 0x05, 0x00, 0x01, 0x61, 0x62, 0x63];
    const bytes = Uint8Array.from([...pingreq, ...publish, ...pingreq]);
    for (let split = 0; split <= bytes.length; split++) {
      const guard = new PacketSizeGuard(7);
      expect(guard.feed(bytes.subarray(0, split))).toEqual({ ok: true });
      expect(guard.feed(bytes.subarray(split))).toEqual({ ok: true });
    }
  });

  test('refuses a packet whose header announces more than the limit', () => {
    const guard = new PacketSizeGuard(100);
    // remaining length 200 = 0xC8 0x01 → whole packet 1 + 2 + 200 bytes
    expect(guard.feed(Uint8Array.from([0x30, 0xc8, 0x01]))).toEqual({ ok: false, reason: 'packet_too_large', detail: 'packet of 203 bytes exceeds limit 100' });
  });

  test('refuses a remaining length of more than four bytes', () => {
    const guard = new PacketSizeGuard(1 << 28);
    expect(guard.feed(Uint8Array.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))).toMatchObject({ ok: false, reason: 'malformed_length' });
  });
});
