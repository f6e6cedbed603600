/**
 * The "WAN" between two benchmark regions: named loopback TCP proxies (the harness `TcpProxy`) with byte
 * counters and an optional one-way delay, controlled over HTTP so the shell script and the load helper can read
 * and reset the counters between phases.
 *
 *   node links-proxy.js --control-port C --proxy toB=LISTEN:TARGET [--proxy ...] [--delay-ms D]
 *
 *   GET  /stats          {"toB": {"toTarget": n, "fromTarget": n, "connections": n, "delayMs": d}, ...}
 *   POST /reset          zeroes every counter
 *   POST /delay?ms=40    sets the one-way delay of every proxy (change it only while the links are idle)
 *   POST /cut?name=toB   closes the proxy's connections and refuses new ones (a link outage)
 *   POST /restore?name=toB  forwards again
 */
import http from 'node:http';
import { TcpProxy } from '../../../broker/test/harness/tcp-proxy.js';

interface ProxySpec { name: string; listenPort: number; targetPort: number }

function parseArgs(argv: string[]): { controlPort: number; delayMs: number; proxies: ProxySpec[] } {
  let controlPort = 0;
  let delayMs = 0;
  const proxies: ProxySpec[] = [];
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`links-proxy: ${flag} needs a value`);
    if (flag === '--control-port') controlPort = Number(value);
    else if (flag === '--delay-ms') delayMs = Number(value);
    else if (flag === '--proxy') {
      const match = /^([\w-]+)=(\d+):(\d+)$/.exec(value);
      if (!match) throw new Error(`links-proxy: --proxy ${value}: expected NAME=LISTEN_PORT:TARGET_PORT`);
      proxies.push({ name: match[1], listenPort: Number(match[2]), targetPort: Number(match[3]) });
    } else throw new Error(`links-proxy: unknown flag ${flag}`);
  }
  if (!controlPort || proxies.length === 0) throw new Error('links-proxy: --control-port and at least one --proxy are required');
  return { controlPort, delayMs, proxies };
}

function stats(proxies: Map<string, TcpProxy>): Record<string, { toTarget: number; fromTarget: number; connections: number; delayMs: number }> {
  const out: Record<string, { toTarget: number; fromTarget: number; connections: number; delayMs: number }> = {};
  for (const [name, p] of proxies) {
    out[name] = { toTarget: p.bytesToTarget, fromTarget: p.bytesFromTarget, connections: p.connectionsAccepted, delayMs: p.delayMs };
  }
  return out;
}

async function main(): Promise<void> {
  const { controlPort, delayMs, proxies: specs } = parseArgs(process.argv.slice(2));
  const proxies = new Map<string, TcpProxy>();
  for (const spec of specs) {
    proxies.set(spec.name, await TcpProxy.start(spec.targetPort, '127.0.0.1', { listenPort: spec.listenPort, delayMs }));
  }
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method === 'POST' && url.pathname === '/reset') {
      for (const p of proxies.values()) p.resetCounters();
    } else if (req.method === 'POST' && url.pathname === '/delay') {
      const ms = Number(url.searchParams.get('ms'));
      if (!Number.isFinite(ms) || ms < 0) {
        res.writeHead(400).end(`bad delay ${url.searchParams.get('ms')}\n`);
        return;
      }
      for (const p of proxies.values()) p.delayMs = ms;
    } else if (req.method === 'POST' && (url.pathname === '/cut' || url.pathname === '/restore')) {
      const proxy = proxies.get(url.searchParams.get('name') ?? '');
      if (!proxy) {
        res.writeHead(400).end(`no proxy named ${JSON.stringify(url.searchParams.get('name'))}; known: ${[...proxies.keys()].join(', ')}\n`);
        return;
      }
      if (url.pathname === '/cut') {
        proxy.refuse();
        proxy.cut();
      } else {
        proxy.restore();
      }
    } else if (!(req.method === 'GET' && url.pathname === '/stats')) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(stats(proxies))}\n`);
  });
  await new Promise<void>((resolve) => server.listen(controlPort, '127.0.0.1', resolve));
  const stop = (): void => {
    server.close();
    void Promise.all([...proxies.values()].map((p) => p.close())).then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  console.error((err as Error).message);
  process.exit(1);
});
