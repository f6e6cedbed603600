import {
  CodecError, FrameDecoder, HANDSHAKE_MAX_FRAME_BYTES, PROTOCOL_VERSION, decodeFrame, encodeFrame,
  type DecodedFrame, type Frame, type NodeIdentity,
} from '../../../../src/cluster/transport/codec.js';

/** Deterministic PRNG (mulberry32) so a failing fuzz case can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const identity: NodeIdentity = { clusterName: 'eu-west', nodeId: 'core-1', role: 'core', incarnation: 42, address: '10.0.0.1:4370' };
const nonce = Buffer.alloc(32, 7);

const samples: Frame[] = [
  { type: 'hello', version: PROTOCOL_VERSION, identity, nonce },
  { type: 'hello', version: PROTOCOL_VERSION, identity: { ...identity, role: 'agent', nodeId: 'ünïcødé-ノード', incarnation: Number.MAX_SAFE_INTEGER }, nonce },
  { type: 'challenge', version: PROTOCOL_VERSION, identity: { ...identity, role: 'replicant' }, nonce },
  { type: 'auth', proof: Buffer.alloc(32, 1) },
  { type: 'welcome', proof: Buffer.alloc(32, 2) },
  { type: 'reject', reason: 'wrong-secret', detail: 'proof does not match' },
  { type: 'reject', reason: 'version-mismatch', detail: '' },
  { type: 'session', session: 2 ** 52 + 3, peerSession: 0, received: 123456789 },
  { type: 'close', reason: 'duplicate-connection', detail: 'kept the other one' },
  { type: 'data', channel: 1, seq: 1, payload: Buffer.from('route ops') },
  { type: 'data', channel: 255, seq: 2 ** 40 + 5, payload: Buffer.alloc(0) },
  { type: 'ack', seq: 99 },
  { type: 'ping', timestamp: 1234.5678 },
  { type: 'pong', timestamp: 0 },
];

function stream(frames: Frame[]): Buffer {
  return Buffer.concat(frames.map(encodeFrame));
}

function decodeAll(decoder: FrameDecoder, chunks: Buffer[]): DecodedFrame[] {
  return chunks.flatMap((chunk) => decoder.push(chunk));
}

/** Anything but a CodecError escaping the decoder fails the test; returns what was decoded before the error. */
function decodeTolerantly(chunks: Buffer[], maxFrameBytes = 1 << 20): { frames: DecodedFrame[]; error?: CodecError } {
  const decoder = new FrameDecoder(maxFrameBytes);
  const frames: DecodedFrame[] = [];
  for (const chunk of chunks) {
    try {
      frames.push(...decoder.push(chunk));
    } catch (err) {
      if (!(err instanceof CodecError)) throw new Error(`decoder threw a non-CodecError: ${String(err)}`);
      return { frames, error: err };
    }
  }
  return { frames };
}

function splitRandomly(buf: Buffer, random: () => number): Buffer[] {
  const chunks: Buffer[] = [];
  let at = 0;
  while (at < buf.length) {
    const size = 1 + Math.floor(random() * Math.min(64, buf.length - at));
    chunks.push(buf.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

describe('frame codec', () => {
  test.each(samples.map((f) => [f.type, f] as const))('%s frames decode to what was encoded', (_type, frame) => {
    expect(decodeFrame(encodeFrame(frame))).toEqual(frame);
  });

  test('a byte-by-byte stream decodes to the same frames as the whole buffer', () => {
    const whole = stream(samples);
    const decoder = new FrameDecoder();
    const oneByOne = decodeAll(decoder, [...whole].map((b) => Buffer.from([b])));
    expect(oneByOne).toEqual(samples);
    expect(decoder.bufferedBytes).toBe(0);
  });

  test('random chunk splits of a long stream always give the same frames', () => {
    const random = rng(1);
    const frames: Frame[] = [];
    for (let i = 0; i < 300; i++) frames.push(samples[Math.floor(random() * samples.length)] as Frame);
    const whole = stream(frames);
    for (let round = 0; round < 50; round++) {
      expect(decodeAll(new FrameDecoder(), splitRandomly(whole, random))).toEqual(frames);
    }
  });

  test('a frame spanning several chunks is reassembled without corrupting its payload', () => {
    const payload = Buffer.alloc(200_000);
    for (let i = 0; i < payload.length; i++) payload[i] = i % 251;
    const frame: Frame = { type: 'data', channel: 2, seq: 7, payload };
    const chunks = splitRandomly(encodeFrame(frame), rng(2));
    const decoded = decodeAll(new FrameDecoder(), chunks);
    expect(decoded).toHaveLength(1);
    expect((decoded[0] as { payload: Buffer }).payload.equals(payload)).toBe(true);
  });

  test('a frame above the limit is refused from its length prefix alone, before it is buffered', () => {
    const decoder = new FrameDecoder(HANDSHAKE_MAX_FRAME_BYTES);
    const big = encodeFrame({ type: 'data', channel: 1, seq: 1, payload: Buffer.alloc(HANDSHAKE_MAX_FRAME_BYTES) });
    expect(() => decoder.push(big.subarray(0, 4))).toThrow(expect.objectContaining({ code: 'frame-too-large' }));
  });

  test('after an error the decoder stays failed', () => {
    const decoder = new FrameDecoder();
    expect(() => decoder.push(Buffer.from([0, 0, 0, 1, 0xee]))).toThrow(expect.objectContaining({ code: 'unknown-frame-type' }));
    expect(() => decoder.push(encodeFrame({ type: 'ack', seq: 1 }))).toThrow(CodecError);
  });

  test.each<[string, Buffer, string]>([
    ['zero length', Buffer.from([0, 0, 0, 0]), 'empty-frame'],
    ['unknown type', Buffer.from([0, 0, 0, 1, 0x7f]), 'unknown-frame-type'],
    ['ACK too short', Buffer.from([0, 0, 0, 4, 0x11, 0, 0, 0]), 'truncated'],
    ['ACK too long', Buffer.from([0, 0, 0, 10, 0x11, 0, 0, 0, 0, 0, 0, 0, 1, 9]), 'trailing-bytes'],
    ['sequence above 2^53', Buffer.from([0, 0, 0, 9, 0x11, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]), 'integer-overflow'],
    ['DATA on channel 0', Buffer.from([0, 0, 0, 10, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 1]), 'bad-value'],
    ['HELLO without magic', Buffer.from([0, 0, 0, 7, 0x01, 0x47, 0x45, 0x54, 0x20, 0, 1]), 'bad-magic'],
  ])('%s is refused with a typed error', (_name, bytes, code) => {
    expect(() => new FrameDecoder().push(bytes)).toThrow(expect.objectContaining({ name: 'CodecError', code }));
  });

  test('an HTTP request on the cluster port is refused as too large, not buffered', () => {
    expect(() => new FrameDecoder(HANDSHAKE_MAX_FRAME_BYTES).push(Buffer.from('GET / HTTP/1.1\r\n\r\n')))
      .toThrow(expect.objectContaining({ code: 'frame-too-large' }));
  });

  test('a name that is not UTF-8 is refused', () => {
    const hello = encodeFrame({ type: 'hello', version: PROTOCOL_VERSION, identity: { ...identity, nodeId: 'ab' }, nonce });
    const at = hello.indexOf(Buffer.from('ab'));
    hello[at] = 0xc3; // start of a 2-byte sequence followed by an ASCII byte
    expect(() => decodeFrame(hello)).toThrow(expect.objectContaining({ code: 'bad-utf8' }));
  });

  test('a HELLO of another protocol version decodes to its version only', () => {
    const hello = encodeFrame({ type: 'hello', version: PROTOCOL_VERSION, identity, nonce });
    hello.writeUInt16BE(PROTOCOL_VERSION + 1, 9);
    expect(decodeFrame(hello)).toEqual({ type: 'foreign-hello', version: PROTOCOL_VERSION + 1 });
  });

  test('unknown REJECT and CLOSE reason codes decode as unknown (a newer peer may send them)', () => {
    const reject = encodeFrame({ type: 'reject', reason: 'wrong-cluster', detail: 'x' });
    reject[5] = 200;
    expect(decodeFrame(reject)).toEqual({ type: 'reject', reason: 'unknown', detail: 'x' });
  });

  test('the encoder refuses values it cannot represent', () => {
    expect(() => encodeFrame({ type: 'data', channel: 0, seq: 1, payload: Buffer.alloc(0) })).toThrow(CodecError);
    expect(() => encodeFrame({ type: 'ack', seq: -1 })).toThrow(CodecError);
    expect(() => encodeFrame({ type: 'ack', seq: 2 ** 53 })).toThrow(CodecError);
    expect(() => encodeFrame({ type: 'auth', proof: Buffer.alloc(31) })).toThrow(CodecError);
    expect(() => encodeFrame({ type: 'hello', version: 1, identity: { ...identity, nodeId: 'x'.repeat(256) }, nonce })).toThrow(CodecError);
  });

  test('a long detail is truncated to fit, not refused', () => {
    const decoded = decodeFrame(encodeFrame({ type: 'close', reason: 'shutdown', detail: 'é'.repeat(2000) }));
    expect(decoded.type).toBe('close');
    expect(Buffer.byteLength((decoded as { detail: string }).detail)).toBeLessThanOrEqual(1024);
  });
});

describe('frame decoder fuzzing', () => {
  test('5000 random byte strings, randomly chunked: only frames or a CodecError, never another exception', () => {
    const random = rng(3);
    let errors = 0;
    for (let i = 0; i < 5000; i++) {
      const bytes = Buffer.alloc(Math.floor(random() * 200));
      for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(random() * 256);
      // Make short lengths likely so the body decoders see the random bytes, not just the size check.
      if (bytes.length >= 5 && random() < 0.7) bytes.writeUInt32BE(Math.floor(random() * (bytes.length - 3)), 0);
      if (bytes.length >= 5 && random() < 0.7) bytes[4] = [1, 2, 3, 4, 5, 6, 7, 0x10, 0x11, 0x12, 0x13][Math.floor(random() * 11)] as number;
      if (decodeTolerantly(splitRandomly(bytes, random)).error) errors++;
    }
    expect(errors).toBeGreaterThan(1000);
  });

  test('5000 mutations of valid streams (flips, truncations, insertions, deletions) never escape as untyped errors', () => {
    const random = rng(4);
    let decodedSomething = 0;
    for (let i = 0; i < 5000; i++) {
      const picked = Array.from({ length: 1 + Math.floor(random() * 5) }, () => samples[Math.floor(random() * samples.length)] as Frame);
      let bytes = Buffer.from(stream(picked));
      const mutations = 1 + Math.floor(random() * 4);
      for (let m = 0; m < mutations && bytes.length > 0; m++) {
        const at = Math.floor(random() * bytes.length);
        const kind = Math.floor(random() * 4);
        if (kind === 0) bytes[at] = (bytes[at] as number) ^ (1 << Math.floor(random() * 8));
        else if (kind === 1) bytes = bytes.subarray(0, at);
        else if (kind === 2) bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from([Math.floor(random() * 256)]), bytes.subarray(at)]);
        else bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
      }
      const { frames } = decodeTolerantly(splitRandomly(bytes, random));
      for (const frame of frames) {
        if (frame.type !== 'foreign-hello') expect(() => encodeFrame(frame)).not.toThrow();
      }
      if (frames.length > 0) decodedSomething++;
    }
    expect(decodedSomething).toBeGreaterThan(500);
  });
});
