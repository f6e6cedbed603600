/**
 * Bench payloads carry a small header so any subscriber, in this process or another, can measure
 * end-to-end latency: magic, publish wall-clock time (ms, sub-millisecond precision), publisher index, sequence.
 */
const MAGIC = 0x4d424e31; // "MBN1"
export const HEADER_BYTES = 20;

export interface PayloadHeader {
  sentAtMs: number;
  publisher: number;
  sequence: number;
}

/** Wall-clock milliseconds with sub-millisecond precision, comparable between processes on one machine. */
export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Builds payloads of a fixed size: the header, then a constant filler byte. */
export class PayloadFactory {
  private readonly filler: Buffer;

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < HEADER_BYTES) {
      throw new RangeError(`payload size must be an integer >= ${HEADER_BYTES} bytes (the latency header), got ${size}`);
    }
    this.filler = Buffer.alloc(size, 0x61);
  }

  create(publisher: number, sequence: number): Buffer {
    const payload = Buffer.allocUnsafe(this.size);
    this.filler.copy(payload, HEADER_BYTES, HEADER_BYTES);
    payload.writeUInt32BE(MAGIC, 0);
    payload.writeDoubleBE(wallClockMs(), 4);
    payload.writeUInt32BE(publisher >>> 0, 12);
    payload.writeUInt32BE(sequence >>> 0, 16);
    return payload;
  }
}

/** The header of a bench payload, or undefined for any other payload (e.g. from mosquitto_pub). */
export function readHeader(payload: Uint8Array): PayloadHeader | undefined {
  if (payload.length < HEADER_BYTES) return undefined;
  const view = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.length);
  if (view.readUInt32BE(0) !== MAGIC) return undefined;
  return { sentAtMs: view.readDoubleBE(4), publisher: view.readUInt32BE(12), sequence: view.readUInt32BE(16) };
}
