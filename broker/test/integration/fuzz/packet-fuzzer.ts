import { generate, type Packet } from 'mqtt-packet';
import { frame, remainingLength } from '../../harness/mqtt-raw.js';

/**
 * Seeded generator of hostile MQTT input: random bytes, and valid packets mutated at the byte level (bit flips,
 * truncation, insertion, corrupted remaining length, splices of two packets). The same seed gives the same cases,
 * so a failure is reproduced with MERIDIAN_FUZZ_SEED.
 */
export class Random {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** mulberry32: small, fast, good enough to drive a fuzzer. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(maxExclusive: number): number {
    return Math.floor(this.next() * maxExclusive);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }

  bytes(length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i++) out[i] = this.int(256);
    return out;
  }

  chance(p: number): boolean {
    return this.next() < p;
  }
}

export interface FuzzCase {
  kind: string;
  /** Writes to send, in order, on one fresh connection. */
  chunks: Buffer[];
}

const INTERESTING_BYTES = [0x00, 0x01, 0x02, 0x03, 0x7f, 0x80, 0xff, 0xfe, 0xc0, 0xed, 0xef, 0x23, 0x2b, 0x2f, 0x24];

function topicFor(rng: Random): string {
  return rng.pick(['fuzz/a', 'fuzz/+/b', '#', 'fuzz/#', '$SYS/x', 'a/b/c/d/e', '', '/', '+', 'fuzz/\u00e9', 'x'.repeat(rng.int(300))]);
}

/** A valid packet of a random type, as the generator writes it. */
export function validPacket(rng: Random): Buffer {
  const messageId = 1 + rng.int(65535);
  const qos = rng.int(3) as 0 | 1 | 2;
  const candidates: (() => Packet)[] = [
    () => ({ cmd: 'publish', topic: topicFor(rng).replace(/[+#]/g, 'w') || 't', payload: rng.bytes(rng.int(200)), qos, dup: rng.chance(0.2), retain: rng.chance(0.3), messageId: qos > 0 ? messageId : undefined }),
    () => ({ cmd: 'subscribe', messageId, subscriptions: Array.from({ length: 1 + rng.int(3) }, () => ({ topic: topicFor(rng) || 'fuzz/s', qos: rng.int(3) as 0 | 1 | 2 })) }),
    () => ({ cmd: 'unsubscribe', messageId, unsubscriptions: [topicFor(rng) || 'fuzz/u'] }),
    () => ({ cmd: 'puback', messageId }),
    () => ({ cmd: 'pubrec', messageId }),
    () => ({ cmd: 'pubrel', messageId }),
    () => ({ cmd: 'pubcomp', messageId }),
    () => ({ cmd: 'pingreq' }),
    () => ({ cmd: 'disconnect' }),
    () => connectPacket(rng),
  ];
  const packet = rng.pick(candidates)();
  try {
    return generate(packet);
  } catch {
    // The generator refuses a few combinations (e.g. an empty topic); those are covered by the mutations.
    return generate({ cmd: 'pingreq' });
  }
}

export function connectPacket(rng: Random): Packet {
  const withWill = rng.chance(0.3);
  return {
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4,
    clientId: `fuzz${rng.int(50)}`, clean: rng.chance(0.7), keepalive: rng.int(120),
    will: withWill ? { topic: `fuzz/will/${rng.int(10)}`, payload: rng.bytes(rng.int(50)), qos: rng.int(3) as 0 | 1 | 2, retain: rng.chance(0.5) } : undefined,
  };
}

export function mutate(rng: Random, packet: Buffer, other: Buffer): Buffer {
  const bytes = Buffer.from(packet);
  const at = (): number => rng.int(Math.max(bytes.length, 1));
  switch (rng.int(9)) {
    case 0: { // flip 1-4 bits
      for (let i = rng.int(4); i >= 0 && bytes.length > 0; i--) {
        const pos = at();
        bytes[pos] = (bytes[pos] as number) ^ (1 << rng.int(8));
      }
      return bytes;
    }
    case 1: { // set a byte to an interesting value
      if (bytes.length > 0) bytes[at()] = rng.pick(INTERESTING_BYTES);
      return bytes;
    }
    case 2: // truncate
      return bytes.subarray(0, at());
    case 3: // append random bytes
      return Buffer.concat([bytes, rng.bytes(1 + rng.int(64))]);
    case 4: { // insert random bytes in the middle
      const pos = at();
      return Buffer.concat([bytes.subarray(0, pos), rng.bytes(1 + rng.int(8)), bytes.subarray(pos)]);
    }
    case 5: { // delete a slice
      const pos = at();
      return Buffer.concat([bytes.subarray(0, pos), bytes.subarray(pos + 1 + rng.int(8))]);
    }
    case 6: { // replace the remaining length with another value, from tiny to absurd or malformed
      const body = bytes.subarray(1 + remainingLengthSize(bytes));
      const length = rng.pick([0, 1, body.length + 1, body.length - 1, 127, 128, 16383, 16384, 2097151, 268435455, rng.int(1 << 28)]);
      const encoded = rng.chance(0.1) ? Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f]) : remainingLength(Math.max(0, length));
      return Buffer.concat([bytes.subarray(0, 1), encoded, body]);
    }
    case 7: // splice the head of this packet with the tail of another
      return Buffer.concat([bytes.subarray(0, at()), other.subarray(rng.int(Math.max(other.length, 1)))]);
    default: { // change the packet type and flags, keep the body
      if (bytes.length > 0) bytes[0] = rng.int(256);
      return bytes;
    }
  }
}

function remainingLengthSize(packet: Buffer): number {
  let n = 0;
  while (n < 4 && 1 + n < packet.length && ((packet[1 + n] as number) & 0x80)) n++;
  return Math.min(n + 1, Math.max(packet.length - 1, 0));
}

/** Splits `bytes` into 1–4 writes at random points (the server must not assume packet-aligned reads). */
function split(rng: Random, bytes: Buffer): Buffer[] {
  const parts: Buffer[] = [];
  let rest = bytes;
  while (rest.length > 1 && parts.length < 3 && rng.chance(0.3)) {
    const cut = 1 + rng.int(rest.length - 1);
    parts.push(rest.subarray(0, cut));
    rest = rest.subarray(cut);
  }
  parts.push(rest);
  return parts;
}

export function fuzzCase(rng: Random, maxPacketSize: number): FuzzCase {
  const connect = generate(connectPacket(rng));
  const roll = rng.int(100);
  if (roll < 15) return { kind: 'random-bytes', chunks: split(rng, rng.bytes(1 + rng.int(400))) };
  if (roll < 30) return { kind: 'mutated-connect', chunks: split(rng, mutate(rng, connect, validPacket(rng))) };
  if (roll < 40) return { kind: 'connect+random-bytes', chunks: [connect, ...split(rng, rng.bytes(1 + rng.int(400)))] };
  if (roll < 45) {
    const announced = maxPacketSize + 1 + rng.int(maxPacketSize * 4);
    return { kind: 'connect+oversized', chunks: [connect, Buffer.concat([Buffer.from([0x30]), remainingLength(announced), rng.bytes(rng.int(256))])] };
  }
  if (roll < 50) return { kind: 'connect+reserved-type', chunks: [connect, frame(rng.pick([0x00, 0xf0, 0x20, 0x90, 0xb0, 0xd0]) | rng.int(16), rng.bytes(rng.int(20)))] };
  const packets = [connect];
  for (let i = 1 + rng.int(5); i > 0; i--) {
    const valid = validPacket(rng);
    packets.push(rng.chance(0.6) ? mutate(rng, valid, validPacket(rng)) : valid);
  }
  return { kind: 'connect+mutated-packets', chunks: split(rng, Buffer.concat(packets)) };
}
