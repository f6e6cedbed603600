import net, { type AddressInfo } from 'node:net';

/**
 * Ports handed out are below Linux's default ephemeral range (32768–60999): a port the OS picks for an outgoing
 * connection or a `listen(0)` can then never take a node's port between allocation and (re)start.
 */
const RANGE = { low: 20000, high: 32767 };
const handedOut = new Set<number>();

/** A port free on `host` (default 127.0.0.1) right now, outside the ephemeral range, not handed out before by this process. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = RANGE.low + Math.floor(Math.random() * (RANGE.high - RANGE.low + 1));
    if (handedOut.has(port) || !(await portIsFree(port, host))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`harness: no free port found in ${RANGE.low}-${RANGE.high} after 200 attempts`);
}

/** Keeps `freePort` from handing out ports a caller chose itself (free now, bound later by their owners). */
export function reservePorts(ports: Iterable<number>): void {
  for (const port of ports) handedOut.add(port);
}

/** A port the OS picks (ephemeral range), free right now. */
export async function ephemeralPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Whether something can listen on host:port now. */
export async function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

export class PortInUseError extends Error {
  override name = 'PortInUseError';
  constructor(readonly port: number, readonly purpose: string) {
    super(`port ${port} (${purpose}) is already in use on 127.0.0.1`);
  }
}

/** Throws PortInUseError for the first requested port that is taken. */
export async function assertPortsFree(requested: ReadonlyArray<{ port: number; purpose: string }>): Promise<void> {
  for (const { port, purpose } of requested) if (!(await portIsFree(port))) throw new PortInUseError(port, purpose);
}
