import net, { type AddressInfo } from 'node:net';

/** A port the OS reports free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Whether something can listen on 127.0.0.1:port now. */
export async function portIsFree(port: number): Promise<boolean> {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
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
