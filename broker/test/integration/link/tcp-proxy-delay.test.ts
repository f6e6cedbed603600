import net, { type AddressInfo } from 'node:net';
import { TcpProxy } from '../../harness/tcp-proxy.js';

/** An echo server on loopback; resolves with it and its port. */
async function echoServer(): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer((socket) => socket.pipe(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

describe('TcpProxy delayMs and listenPort (used by e2e/bench/links.sh)', () => {
  let echo: { server: net.Server; port: number };
  let proxy: TcpProxy | undefined;

  beforeAll(async () => { echo = await echoServer(); });
  afterEach(async () => { await proxy?.close(); proxy = undefined; });
  afterAll(async () => { await new Promise<void>((resolve) => echo.server.close(() => resolve())); });

  it('delays each direction by delayMs, keeps the byte order and counts the bytes', async () => {
    proxy = await TcpProxy.start(echo.port, '127.0.0.1', { delayMs: 40 });
    const socket = net.connect(proxy.port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const chunks = Array.from({ length: 50 }, (_, i) => `${i},`);
    const expected = chunks.join('');
    let received = '';
    const started = performance.now();
    const done = new Promise<number>((resolve) => socket.on('data', (d: Buffer) => {
      received += d.toString();
      if (received.length >= expected.length) resolve(performance.now() - started);
    }));
    for (const c of chunks) socket.write(c);
    const elapsed = await done;
    socket.destroy();
    expect(received).toBe(expected);
    expect(elapsed).toBeGreaterThanOrEqual(79);
    expect(proxy.bytesToTarget).toBe(expected.length);
    expect(proxy.bytesFromTarget).toBe(expected.length);
  });

  it('listens on the requested port', async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    proxy = await TcpProxy.start(echo.port, '127.0.0.1', { listenPort: port });
    expect(proxy.port).toBe(port);
  });
});
