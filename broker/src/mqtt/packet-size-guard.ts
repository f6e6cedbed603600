/**
 * Tracks MQTT packet boundaries in a raw byte stream, reading only each fixed header, so that an oversized packet
 * is refused as soon as its header announces its length — before the broker buffers its body.
 * Pure; the listener feeds it every chunk a connection receives.
 */
export type GuardVerdict = { ok: true } | { ok: false; reason: 'packet_too_large' | 'malformed_length'; detail: string };

const OK: GuardVerdict = { ok: true };

export class PacketSizeGuard {
  /** Bytes of the current packet's body still to skip. */
  private remaining = 0;
  /** 0: expecting the type byte; 1..4: reading the remaining-length varint. */
  private headerBytes = 0;
  private length = 0;
  private multiplier = 1;

  constructor(private readonly maxPacketSize: number) {}

  feed(chunk: Uint8Array): GuardVerdict {
    let i = 0;
    while (i < chunk.length) {
      if (this.remaining > 0) {
        const skip = Math.min(this.remaining, chunk.length - i);
        this.remaining -= skip;
        i += skip;
        continue;
      }
      const byte = chunk[i++] as number;
      if (this.headerBytes === 0) {
        this.headerBytes = 1;
        this.length = 0;
        this.multiplier = 1;
        continue;
      }
      this.length += (byte & 0x7f) * this.multiplier;
      this.multiplier *= 128;
      this.headerBytes++;
      if (byte & 0x80) {
        if (this.headerBytes > 4) return { ok: false, reason: 'malformed_length', detail: 'remaining length longer than 4 bytes' };
        continue;
      }
      const total = this.headerBytes + this.length;
      if (total > this.maxPacketSize) {
        return { ok: false, reason: 'packet_too_large', detail: `packet of ${total} bytes exceeds limit ${this.maxPacketSize}` };
      }
      this.remaining = this.length;
      this.headerBytes = 0;
    }
    return OK;
  }
}
