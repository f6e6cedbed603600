import { decodeMessage, encodeMessage } from '../../../src/routesync/codec.js';
import { CodecError } from '../../../src/routesync/errors.js';
import type { SyncMessage } from '../../../src/routesync/messages.js';
import { forEachSeed, type Rng } from './prng.js';

const SAMPLES: SyncMessage[] = [
  { type: 'init', protocol: 1, cluster: 'eu-west', actor: 'node-1', incarnation: 42, role: 'core', conn: 3 },
  {
    type: 'init_ack',
    incarnation: 42,
    conn: 3,
    result: 'ok',
    cluster: 'eu-west',
    actor: 'node-2',
    actorIncarnation: Number.MAX_SAFE_INTEGER,
    role: 'replicant',
    knownIncarnation: 0,
    lanes: [
      { actor: 'node-1', incarnation: 41, version: 7 },
      { actor: 'agent/us', incarnation: 1, version: 0 },
    ],
  },
  { type: 'init_ack', incarnation: 1, conn: 1, result: 'stale_incarnation', cluster: 'c', actor: 'n', actorIncarnation: 1, role: 'core', knownIncarnation: 9, lanes: [] },
  {
    type: 'ops',
    incarnation: 42,
    conn: 3,
    seq: 17,
    deltas: [
      {
        actor: 'node-1',
        incarnation: 42,
        base: 5,
        version: 6,
        ops: [
          { op: 'add', filter: 'sensors/+/temp/#', routeId: '' },
          { op: 'delete', filter: '$SYS/broker/load', routeId: '' },
          { op: 'add', filter: 'sensors/+/temp/#', routeId: 'group-a' },
          { op: 'add', filter: 'caf\u00e9/\u{1F600}/' + 'x'.repeat(300), routeId: 'g\u00e9' },
        ],
      },
      { actor: 'rep-9', incarnation: 2, base: 0, version: 1, ops: [] },
    ],
  },
  {
    type: 'snapshot',
    incarnation: 42,
    conn: 3,
    seq: 18,
    lane: { actor: 'rep-9', incarnation: 2, version: 1 },
    part: 0,
    last: true,
    routes: [
      { filter: '#', routeId: '' },
      { filter: 'a//b', routeId: 'x' },
    ],
  },
  { type: 'snapshot', incarnation: 1, conn: 1, seq: 1, lane: { actor: 'n', incarnation: 1, version: 0 }, part: 3, last: false, routes: [] },
  { type: 'heartbeat', incarnation: 42, conn: 3, afterSeq: 0, lanes: [{ actor: 'node-1', incarnation: 42, version: 6 }] },
  { type: 'ack', incarnation: 42, conn: 3, seq: 18, resync: [{ actor: 'rep-9', incarnation: 2 }], reinit: false },
  { type: 'ack', incarnation: 7, conn: 99, seq: 0, resync: [], reinit: true },
];

/** Raw message bytes: numbers are varints, strings length-prefixed, `{ b: n }` one raw byte. */
function raw(...parts: Array<number | string | { b: number }>): Buffer {
  const bytes: number[] = [];
  for (const part of parts) {
    if (typeof part === 'object') bytes.push(part.b);
    else if (typeof part === 'number') bytes.push(...varint(part));
    else {
      const utf8 = Buffer.from(part, 'utf8');
      bytes.push(...varint(utf8.length), ...utf8);
    }
  }
  return Buffer.from(bytes);
}

function varint(n: number): number[] {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}

const OPS = { b: 3 };
const SNAPSHOT = { b: 4 };

function expectCodecError(bytes: Uint8Array, fragment: string): void {
  let caught: unknown;
  try {
    decodeMessage(bytes);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(CodecError);
  expect((caught as CodecError).message).toContain(fragment);
}

/** Decoding either succeeds with a message that re-encodes to the same bytes, or throws a CodecError. */
function decodesCleanly(bytes: Buffer): 'ok' | 'rejected' {
  let message: SyncMessage;
  try {
    message = decodeMessage(bytes);
  } catch (error) {
    if (error instanceof CodecError) return 'rejected';
    throw new Error(`untyped failure on ${bytes.toString('hex')}: ${String(error)}`);
  }
  expect(encodeMessage(message).equals(bytes)).toBe(true);
  return 'ok';
}

describe('codec round trips', () => {
  it.each(SAMPLES.map((m) => [m.type, m] as const))('round-trips %s', (_type, message) => {
    const bytes = encodeMessage(message);
    expect(decodeMessage(bytes)).toEqual(message);
  });

  it('decodes from a plain Uint8Array view as well', () => {
    const bytes = encodeMessage(SAMPLES[0]);
    const copy = new Uint8Array(bytes.length + 4).subarray(2, 2 + bytes.length);
    copy.set(bytes);
    expect(decodeMessage(copy)).toEqual(SAMPLES[0]);
  });

  it('refuses to encode numbers that do not fit', () => {
    expect(() => encodeMessage({ ...SAMPLES[0], incarnation: -1 } as SyncMessage)).toThrow(CodecError);
    expect(() => encodeMessage({ ...SAMPLES[0], conn: 1.5 } as SyncMessage)).toThrow(CodecError);
  });
});

describe('codec rejects malformed input, saying what is wrong', () => {
  const stream = [1, 1, 1] as const; // incarnation, conn, seq

  it.each<[string, Buffer, string]>([
    ['an empty buffer', Buffer.alloc(0), 'type: truncated'],
    ['an unknown type', raw({ b: 99 }), 'unknown message type 99'],
    ['trailing bytes', Buffer.concat([encodeMessage(SAMPLES[0]), Buffer.from([0])]), '1 trailing bytes'],
    ['an overlong varint', raw({ b: 1 }, { b: 0x81 }, { b: 0 }), 'overlong varint'],
    ['a varint above 2^53', raw({ b: 1 }, { b: 0xff }, { b: 0xff }, { b: 0xff }, { b: 0xff }, { b: 0xff }, { b: 0xff }, { b: 0xff }, { b: 0x7f }), 'above 2^53'],
    ['an endless varint', raw({ b: 1 }, ...Array.from({ length: 9 }, () => ({ b: 0xff }))), 'longer than 8 bytes'],
    ['an empty actor', raw({ b: 1 }, 1, 'c', '', 1, 'core', 1), 'init.actor: is empty'],
    ['an actor of 256 bytes', raw({ b: 1 }, 1, 'c', 'x'.repeat(256), 1, 'core', 1), 'longer than 255'],
    ['conn 0', raw({ b: 1 }, 1, 'c', 'n', 1, 'core', 0), 'init.conn: must be at least 1'],
    ['a string longer than the buffer', raw({ b: 1 }, 1, { b: 50 }, 'c'), 'init.cluster: string of 50 bytes'],
    ['invalid UTF-8', Buffer.concat([raw({ b: 1 }, 1), Buffer.from([2, 0xc3, 0x28])]), 'init.cluster: invalid UTF-8'],
    ['an unknown init result', raw({ b: 2 }, 1, 1, { b: 9 }), 'unknown result code 9'],
    ['an ops message without deltas', raw(OPS, ...stream, 0), 'at least one delta'],
    ['seq 0 on ops', raw(OPS, 1, 1, 0, 1, 'n', 1, 0, 1, 0), 'ops.seq: must be at least 1'],
    ['a delta that does not move forward', raw(OPS, ...stream, 1, 'n', 1, 4, 4, 0), 'ops.deltas[0].version: version 4 does not follow base 4'],
    ['an unknown operation', raw(OPS, ...stream, 1, 'n', 1, 0, 1, 1, { b: 7 }, 'a', ''), 'ops.deltas[0].ops[0].op: unknown operation 7'],
    ['an invalid filter', raw(OPS, ...stream, 1, 'n', 1, 0, 1, 1, { b: 1 }, 'a/#/b', ''), "ops.deltas[0].ops[0].filter: '#' at offset 2 is not the last level"],
    ['a $share filter', raw(OPS, ...stream, 1, 'n', 1, 0, 1, 1, { b: 1 }, '$share/g/a', ''), 'is a $share filter'],
    ['an empty filter', raw(OPS, ...stream, 1, 'n', 1, 0, 1, 1, { b: 1 }, '', 'xx'), 'filter: is empty'],
    ['a NUL in a route id', raw(OPS, ...stream, 1, 'n', 1, 0, 1, 1, { b: 1 }, 'a', 'x\u0000'), 'routeId: contains U+0000'],
    ['two operations on one route', raw(OPS, ...stream, 1, 'n', 1, 0, 1, 2, { b: 1 }, 'a', '', { b: 0 }, 'a', ''), 'ops.deltas[0].ops[1]: second operation on route "a"'],
    ['a count beyond the bytes left', raw(OPS, ...stream, 1, 'n', 1, 0, 1, 1_000_000), 'ops.deltas[0].ops: 1000000 elements cannot fit'],
    ['a duplicate snapshot route', raw(SNAPSHOT, ...stream, 'n', 1, 1, 0, { b: 1 }, 2, 'a', '', 'a', ''), 'snapshot.routes[1]: duplicate route "a"'],
    ['a boolean that is not 0 or 1', raw(SNAPSHOT, ...stream, 'n', 1, 1, 0, { b: 2 }, 0), 'snapshot.last: expected 0 or 1, got 2'],
    ['a duplicate heartbeat lane', raw({ b: 5 }, 1, 1, 0, 2, 'n', 1, 1, 'n', 1, 2), 'heartbeat.lanes[1]: duplicate actor "n"'],
    ['a duplicate resync lane', raw({ b: 6 }, 1, 1, 0, { b: 0 }, 2, 'n', 1, 'n', 1), 'ack.resync[1]: duplicate actor "n"'],
  ])('rejects %s', (_what, bytes, fragment) => {
    expectCodecError(bytes, fragment);
  });

  it('rejects every truncation of every valid message', () => {
    for (const message of SAMPLES) {
      const bytes = encodeMessage(message);
      for (let cut = 0; cut < bytes.length; cut++) {
        expect(() => decodeMessage(bytes.subarray(0, cut))).toThrow(CodecError);
      }
    }
  });
});

describe('codec fuzzing', () => {
  function randomBytes(rng: Rng, n: number): Buffer {
    return Buffer.from(Array.from({ length: n }, () => rng.int(256)));
  }

  it('never fails untyped on random buffers', () => {
    let rejected = 0;
    forEachSeed(3000, (rng) => {
      const typed = Buffer.concat([Buffer.from([1 + rng.int(6)]), randomBytes(rng, rng.int(64))]);
      if (decodesCleanly(rng.chance(0.9) ? typed : randomBytes(rng, rng.int(64))) === 'rejected') rejected++;
    });
    expect(rejected).toBeGreaterThan(0);
  });

  it('never fails untyped on mutated valid messages, and what it accepts re-encodes identically', () => {
    const outcomes = { ok: 0, rejected: 0 };
    forEachSeed(3000, (rng) => {
      const bytes = Buffer.from(encodeMessage(rng.pick(SAMPLES)));
      for (let k = rng.between(1, 3); k > 0; k--) {
        const at = rng.int(bytes.length);
        if (rng.chance(0.5)) bytes[at] ^= 1 << rng.int(8);
        else bytes[at] = rng.int(256);
      }
      outcomes[decodesCleanly(bytes)]++;
    });
    expect(outcomes.rejected).toBeGreaterThan(0);
    expect(outcomes.ok).toBeGreaterThan(0);
  });
});
