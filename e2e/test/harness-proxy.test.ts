import net, { type AddressInfo } from 'node:net';
import { TcpProxy } from '../../broker/test/harness/tcp-proxy.js';

/** An echo server on loopback. */
async function echoServer(): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer((socket) => socket.pipe(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

/** Writes `chunks` through the proxy and resolves with the echoed text and the elapsed ms once all is back. */
async function roundTrip(proxy: TcpProxy, chunks: string[], gapMs = 0): Promise<{ text: string; elapsedMs: number }> {
  const socket = net.connect(proxy.port, '127.0.0.1');
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const expected = chunks.join('').length;
  let text = '';
  const started = performance.now();
  const done = new Promise<number>((resolve) => socket.on('data', (d: Buffer) => {
    text += d.toString();
    if (text.length >= expected) resolve(performance.now() - started);
  }));
  for (const c of chunks) {
    socket.write(c);
    if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
  }
  const elapsedMs = await done;
  socket.destroy();
  return { text, elapsedMs };
}

describe('TcpProxy jitter and throttle (the e2e harness link proxies)', () => {
  let echo: { server: net.Server; port: number };
  let proxy: TcpProxy | undefined;

  beforeAll(async () => { echo = await echoServer(); });
  afterEach(async () => { await proxy?.close(); proxy = undefined; });
  afterAll(async () => { await new Promise<void>((resolve) => echo.server.close(() => resolve())); });

  it('jitter adds up to jitterMs per chunk but never reorders a connection\'s bytes', async () => {
    proxy = await TcpProxy.start(echo.port, '127.0.0.1', { delayMs: 10, jitterMs: 30 });
    const chunks = Array.from({ length: 200 }, (_, i) => `${i},`);
    const { text, elapsedMs } = await roundTrip(proxy, chunks, 1);
    expect(text).toBe(chunks.join(''));
    expect(elapsedMs).toBeGreaterThanOrEqual(20); // two legs of at least delayMs
  });

  it('throttle limits each direction to bytesPerSecond, and lifting it restores full speed', async () => {
    proxy = await TcpProxy.start(echo.port, '127.0.0.1', { bytesPerSecond: 20000 });
    const payload = ['x'.repeat(20000)];
    const slow = await roundTrip(proxy, payload);
    expect(slow.text.length).toBe(20000);
    // 20 kB at 20 kB/s per direction: ≥ 1 s (both legs pipeline, so about 1 s, not 2).
    expect(slow.elapsedMs).toBeGreaterThanOrEqual(950);
    proxy.bytesPerSecond = undefined;
    const fast = await roundTrip(proxy, payload);
    expect(fast.elapsedMs).toBeLessThan(500);
    expect(proxy.bytesToTarget).toBe(40000);
    expect(proxy.bytesFromTarget).toBe(40000);
  });

  it('a 3 MB burst under throttle (more than a lane holds before pausing the sender) arrives complete at the throttled rate', async () => {
    proxy = await TcpProxy.start(echo.port, '127.0.0.1', { bytesPerSecond: 4 << 20 });
    const chunks = Array.from({ length: 48 }, () => 'y'.repeat(64 * 1024)); // 3 MB > the 1 MB lane limit
    const { text, elapsedMs } = await roundTrip(proxy, chunks);
    expect(text.length).toBe(3 * 1024 * 1024);
    expect(elapsedMs).toBeGreaterThanOrEqual(700); // 3 MB at 4 MB/s
  });
});
