import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log/logger.js';

export interface AdminResponse {
  status: number;
  body: unknown;
  contentType?: string;
}

export type AdminHandler = (query: URLSearchParams) => AdminResponse | Promise<AdminResponse>;

/**
 * The node's HTTP admin endpoint: health, readiness, metrics and the JSON API. Modules register their own routes
 * (`/api/v1/cluster`, `/api/v1/links` later) so the server itself knows none of them.
 */
export class AdminServer {
  private readonly routes = new Map<string, AdminHandler>();
  private server?: http.Server;

  constructor(private readonly logger: Logger) {}

  route(method: 'GET' | 'POST' | 'DELETE', path: string, handler: AdminHandler): void {
    this.routes.set(`${method} ${path}`, handler);
  }

  async listen(host: string, port: number): Promise<AddressInfo> {
    const server = http.createServer((req, res) => void this.dispatch(req, res));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new Error(`admin listener ${host}:${port}: ${err.message}`)));
      server.listen(port, host, resolve);
    });
    return server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async dispatch(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const handler = this.routes.get(`${req.method} ${url.pathname}`);
    let response: AdminResponse;
    if (!handler) {
      response = { status: 404, body: { error: `no route ${req.method} ${url.pathname}` } };
    } else {
      try {
        response = await handler(url.searchParams);
      } catch (err) {
        this.logger.error({ err, path: url.pathname }, 'admin handler failed');
        response = { status: 500, body: { error: (err as Error).message } };
      }
    }
    const text = typeof response.body === 'string' ? response.body : JSON.stringify(response.body, null, 2);
    res.writeHead(response.status, { 'content-type': response.contentType ?? (typeof response.body === 'string' ? 'text/plain; charset=utf-8' : 'application/json') });
    res.end(text);
  }
}
